"""Face landmarks and head pose for evaluation: MediaPipe face mesh (478 points) and a PnP fit.

The landmark model is the one bundled inside the `mediapipe` wheel (0.10.21 is the last release
whose legacy `solutions.face_mesh` ships its .tflite files); nothing is downloaded at run time.
mediapipe is an optional dependency of the `eval` tools and is imported lazily.

Head pose (`head_pose`) fits a fixed 3-D face model — nine rigid-ish points of MediaPipe's canonical
face mesh — to the 2-D landmarks with `cv2.solvePnP` and a pinhole camera whose focal length is
the image size. Angle convention (degrees), in OpenCV camera axes (x right, y down, z away from
the camera), decomposed as R = Rx(pitch) · Ry(yaw) · Rz(roll), the same order as
`facecodec.kinematics.rotation_matrix`:

* yaw   > 0: the head turns to ITS right, so the nose moves towards the image's LEFT edge;
* pitch > 0: the head tilts down (chin towards the chest);
* roll  > 0: the head tilts clockwise on screen (the top of the head moves to the image's right).

A frontal face is (0, 0, 0); mirroring the image negates yaw and roll and keeps pitch.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

NUM_LANDMARKS = 478  # 468 mesh points + 2 × 5 iris points (refined model)

# Landmark index → canonical face model vertex (MediaPipe `canonical_face_model.obj`, Apache-2.0,
# centimetres; x to the image right, y up, z towards the camera). Eye corners and the nose are
# rigid; the mouth corners and chin move with speech and are kept so a handful of points span the face.
POSE_LANDMARKS = {
    1: (0.0, -1.126865, 7.475604),  # nose tip
    168: (0.0, 3.271027, 5.236015),  # nose bridge between the eyes
    152: (0.0, -9.403378, 4.264492),  # chin
    33: (-4.445859, 2.663991, 3.173422),  # eye outer corner, image left
    133: (-1.856432, 2.585245, 3.757904),  # eye inner corner, image left
    362: (1.856432, 2.585245, 3.757904),  # eye inner corner, image right
    263: (4.445859, 2.663991, 3.173422),  # eye outer corner, image right
    61: (-2.456206, -4.342621, 4.283884),  # mouth corner, image left
    291: (2.456206, -4.342621, 4.283884),  # mouth corner, image right
}
_POSE_INDEX = np.array(list(POSE_LANDMARKS), dtype=np.int64)
# Into OpenCV camera axes for a face looking at the camera: flip y (down) and z (away).
_POSE_MODEL = np.array(list(POSE_LANDMARKS.values()), dtype=np.float64) * np.array([1.0, -1.0, -1.0])


def _import_mediapipe():
    """Import mediapipe (optional dependency); restore the one protobuf API its bindings probe.

    protobuf ≥ 5 removed `MessageFactory.GetPrototype`; mediapipe 0.10.21's C++ bindings look it
    up at import and print an (otherwise harmless) AttributeError without it.
    """
    try:
        from google.protobuf import message_factory
    except ImportError:  # pragma: no cover - protobuf comes with onnx
        message_factory = None
    if message_factory is not None and not hasattr(message_factory.MessageFactory, "GetPrototype"):
        def get_prototype(self, descriptor):
            return message_factory.GetMessageClass(descriptor)

        message_factory.MessageFactory.GetPrototype = get_prototype
    try:
        import mediapipe
    except ImportError as err:
        raise ImportError(
            "face landmarks need mediapipe 0.10.21 (it bundles the face-mesh model): "
            "pip install --no-deps 'mediapipe==0.10.21' 'opencv-contrib-python-headless>=4.9,<4.12' 'absl-py>=2,<3'"
        ) from err
    return mediapipe


class FaceLandmarker:
    """MediaPipe face mesh on RGB frames → 478 landmarks per frame in pixels.

    Each frame is processed independently (no tracking between frames), so results do not depend on
    frame order and a decoded frame is judged the same way as its original. Speed: ≈ 10 ms per 256²
    frame on the 2-core dev machine (face detection + mesh + iris refinement).
    """

    def __init__(self, *, min_confidence: float = 0.5):
        mp = _import_mediapipe()
        with warnings.catch_warnings():  # mediapipe's graph setup uses a deprecated protobuf call
            warnings.simplefilter("ignore", DeprecationWarning)
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=min_confidence,
            )

    def detect(self, frames: np.ndarray, *, depth: bool = False) -> np.ndarray:
        """frames (T, H, W, 3) uint8 RGB → landmarks (T, 478, 2) float32 pixels (x, y).

        depth=True: (T, 478, 3) with z, MediaPipe's relative depth (origin near the head's centre,
        larger = farther from the camera) in the same pixel units as x. A frame without a face
        gives a row of NaN.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (T, H, W, 3) uint8 RGB frames, got {frames.shape} {frames.dtype}")
        t, h, w, _ = frames.shape
        out = np.full((t, NUM_LANDMARKS, 3 if depth else 2), np.nan, np.float32)
        for i, frame in enumerate(frames):
            result = self._mesh.process(np.ascontiguousarray(frame))
            if not result.multi_face_landmarks:
                continue
            points = result.multi_face_landmarks[0].landmark
            out[i] = [(p.x * w, p.y * h, p.z * w)[: out.shape[-1]] for p in points]
        return out

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def rotation_to_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """A rotation matrix (3, 3) = Rx(pitch) · Ry(yaw) · Rz(roll) → (yaw, pitch, roll) in degrees."""
    r = np.asarray(rotation, np.float64)
    yaw = math.asin(float(np.clip(r[0, 2], -1.0, 1.0)))
    pitch = math.atan2(-r[1, 2], r[2, 2])
    roll = math.atan2(-r[0, 1], r[0, 0])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def head_pose(landmarks: np.ndarray, size: int = 256) -> np.ndarray:
    """Landmarks (T, 478, 2) pixels of size×size frames → (T, 3) float32 (yaw, pitch, roll) degrees.

    Conventions: module docstring. Frames whose landmarks are NaN give NaN angles.
    """
    import cv2

    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected landmarks (T, {NUM_LANDMARKS}, 2), got {landmarks.shape}")
    camera = np.array([[size, 0, size / 2], [0, size, size / 2], [0, 0, 1]], np.float64)
    no_distortion = np.zeros(4)
    out = np.full((len(landmarks), 3), np.nan, np.float32)
    for i, points in enumerate(landmarks[:, _POSE_INDEX]):
        if not np.isfinite(points).all():
            continue
        points = np.ascontiguousarray(points)
        ok, rvec, tvec = cv2.solvePnP(_POSE_MODEL, points, camera, no_distortion, flags=cv2.SOLVEPNP_SQPNP)
        if not ok:
            continue
        rvec, tvec = cv2.solvePnPRefineLM(_POSE_MODEL, points, camera, no_distortion, rvec, tvec)
        out[i] = rotation_to_angles(cv2.Rodrigues(rvec)[0])
    return out
