"""`Motion`: what one frame of a call carries (head pose and expression of the speaker).

face-vid2vid keypoints of a frame are x = R(yaw, pitch, roll) · x_c + t + exp; the
canonical keypoints x_c come from the source image, so a frame only needs
(yaw, pitch, roll, t, exp). Streams with the expression channel (`facecodec.expression`)
also carry P coefficients `face` of the mouth, eyes, brows and jaw. `Motion` holds them for
ONE frame; the networks work on batches, see `split_batch` / `stack_batch`.

Vector layout (`to_vector`, float32, length 6 + 3K + P): [yaw, pitch, roll, t0, t1, t2,
exp[0,0], exp[0,1], exp[0,2], exp[1,0], ..., face[0], ..., face[P-1]] (expression flattened
keypoint-major; P = 0 without the channel).
"""

from __future__ import annotations

import dataclasses

import numpy as np

POSE_DIMS = 6  # yaw, pitch, roll, t0, t1, t2 at the head of the vector


def vector_length(num_kp: int, num_face: int = 0) -> int:
    """Length of a motion vector for `num_kp` keypoints and `num_face` coefficients: 6 + 3K + P."""
    return POSE_DIMS + 3 * num_kp + num_face


def _frozen_f32(value, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.array(value, dtype=np.float32).reshape(-1)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"Motion.{name}: expected shape {shape}, got {np.shape(value)}")
    array = array.reshape(shape)
    array.setflags(write=False)
    return array


@dataclasses.dataclass(frozen=True, eq=False)
class Motion:
    """Head pose and expression of one frame.

    yaw, pitch, roll: degrees (typical ±45, estimator range −99…+96).
    t: (3,) float32 translation, normalised image coordinates (typically |t| < 0.3).
    exp: (K, 3) float32 expression deltas per keypoint, normalised coordinates.
    face: (P,) float32 expression-channel coefficients, canonical units relative to the source
        (`facecodec.expression`; typically |face| < 1); empty without the channel.
    Arrays are stored read-only so a `Motion` can be shared safely.
    """

    yaw: float
    pitch: float
    roll: float
    t: np.ndarray
    exp: np.ndarray
    face: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))

    def __post_init__(self) -> None:
        for name in ("yaw", "pitch", "roll"):
            object.__setattr__(self, name, float(np.float32(getattr(self, name))))
        object.__setattr__(self, "t", _frozen_f32(self.t, (3,), "t"))
        exp = np.asarray(self.exp)
        if exp.ndim != 2 or exp.shape[1] != 3:
            raise ValueError(f"Motion.exp: expected shape (K, 3), got {exp.shape}")
        object.__setattr__(self, "exp", _frozen_f32(exp, exp.shape, "exp"))
        face = np.asarray(self.face)
        if face.ndim != 1:
            raise ValueError(f"Motion.face: expected shape (P,), got {face.shape}")
        object.__setattr__(self, "face", _frozen_f32(face, face.shape, "face"))

    @property
    def num_kp(self) -> int:
        """K, the number of keypoints."""
        return self.exp.shape[0]

    @property
    def num_face(self) -> int:
        """P, the number of expression-channel coefficients (0 without the channel)."""
        return self.face.shape[0]

    def to_vector(self) -> np.ndarray:
        """(6 + 3K + P,) float32 vector in the layout of the module docstring."""
        head = np.array([self.yaw, self.pitch, self.roll], dtype=np.float32)
        return np.concatenate([head, self.t, self.exp.reshape(-1), self.face])

    @classmethod
    def from_vector(cls, vector: np.ndarray, num_kp: int, num_face: int = 0) -> Motion:
        """Inverse of `to_vector`; `vector` must have length 6 + 3·num_kp + num_face."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        length = vector_length(num_kp, num_face)
        if vector.size != length:
            raise ValueError(f"motion vector for K={num_kp}, P={num_face} needs {length} values, got {vector.size}")
        exp_end = POSE_DIMS + 3 * num_kp
        return cls(vector[0], vector[1], vector[2], vector[3:6], vector[6:exp_end].reshape(num_kp, 3), vector[exp_end:])

    @classmethod
    def neutral(cls, num_kp: int, num_face: int = 0) -> Motion:
        """Frontal head, no translation, neutral expression (used before any frame is decoded)."""
        return cls.from_vector(np.zeros(vector_length(num_kp, num_face), np.float32), num_kp, num_face)


def split_batch(yaw, pitch, roll, t, exp, face=None) -> list[Motion]:
    """Batch arrays — yaw/pitch/roll (B,), t (B, 3), exp (B, K, 3), face (B, P) or None — to B `Motion`s."""
    yaw, pitch, roll = (np.asarray(a, np.float32).reshape(-1) for a in (yaw, pitch, roll))
    t = np.asarray(t, np.float32).reshape(len(yaw), 3)
    exp = np.asarray(exp, np.float32)  # (B, K, 3)
    face = np.zeros((len(yaw), 0), np.float32) if face is None else np.asarray(face, np.float32).reshape(len(yaw), -1)
    return [Motion(yaw[b], pitch[b], roll[b], t[b], exp[b], face[b]) for b in range(len(yaw))]


def stack_batch(motions: list[Motion]) -> tuple[np.ndarray, ...]:
    """Inverse of `split_batch`: (yaw (B,), pitch (B,), roll (B,), t (B, 3), exp (B, K, 3)), float32."""
    angles = np.array([[m.yaw, m.pitch, m.roll] for m in motions], np.float32).reshape(-1, 3)
    t = np.stack([m.t for m in motions]) if motions else np.zeros((0, 3), np.float32)
    exp = np.stack([m.exp for m in motions]) if motions else np.zeros((0, 0, 3), np.float32)
    return angles[:, 0], angles[:, 1], angles[:, 2], t, exp


def stack_faces(motions: list[Motion]) -> np.ndarray:
    """(B, P) float32 expression-channel coefficients of `motions` (P = 0 without the channel)."""
    return np.stack([m.face for m in motions]) if motions else np.zeros((0, 0), np.float32)
