"""All per-frame metrics of a decoded clip against its original, with the face models loaded once.

`FaceAnalysis` (landmarks, head pose, identity embedding) is computed once per image sequence and
reused: the original clip is analysed once and compared with both the codec's output and the
repeated-source baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import metrics

HIGHER_IS_BETTER = {"psnr", "ssim"}
UNITS = {
    "psnr": "dB", "ssim": "", "lpips_alex": "", "lpips_vgg": "", "akd": "px at 256²",
    "aed": "dlib 128-D L2", "pose_err": "° mean |Δ| of yaw, pitch, roll",
}


@dataclass(frozen=True)
class FaceAnalysis:
    """Per-frame face measurements; NaN rows where no face was found (or a model was disabled)."""

    landmarks: np.ndarray  # (T, 478, 2) pixels
    pose: np.ndarray  # (T, 3) degrees (yaw, pitch, roll), see facecodec.landmarks
    embedding: np.ndarray  # (T, 128) identity embedding

    def __len__(self) -> int:
        return len(self.landmarks)

    @property
    def faces_found(self) -> int:
        return int(np.isfinite(self.landmarks).all(axis=(1, 2)).sum())


class Evaluator:
    """Loads the metric models once: MediaPipe landmarks, stLPIPS nets, dlib identity (optional)."""

    def __init__(self, *, lpips_nets: tuple[str, ...] = ("alex", "vgg"), identity: bool = True):
        from ..landmarks import FaceLandmarker

        self.landmarker = FaceLandmarker()
        self.lpips = metrics.Lpips(lpips_nets)
        self.identity = None
        if identity:
            from .identity import IdentityEmbedder

            self.identity = IdentityEmbedder()

    @property
    def metric_names(self) -> list[str]:
        return ["psnr", "ssim", *self.lpips.names, "akd", "aed", "pose_err"]

    def analyse(self, frames: np.ndarray) -> FaceAnalysis:
        """frames (T, H, W, 3) uint8 → landmarks, head pose and identity embedding per frame."""
        from ..landmarks import head_pose
        from .identity import EMBEDDING_DIM

        landmarks = self.landmarker.detect(frames)
        pose = head_pose(landmarks, size=frames.shape[1])
        if self.identity is not None:
            embedding = self.identity.embed(frames, landmarks)
        else:
            embedding = np.full((len(frames), EMBEDDING_DIM), np.nan)
        return FaceAnalysis(landmarks, pose, embedding)

    def compare(self, original: np.ndarray, faces_original: FaceAnalysis,
                outputs: dict[str, tuple[np.ndarray, FaceAnalysis]]) -> dict[str, dict[str, np.ndarray]]:
        """Per-frame metrics (T,) of each output (frames, their analysis) against `original`, keyed
        {output: {metric: values}} with `metric_names`. An output of ONE frame (a frozen frame, like
        the baseline) is compared with every original frame and analysed / embedded only once."""
        perceptual = self.lpips.against(original, {k: frames for k, (frames, _) in outputs.items()})
        result = {}
        for key, (frames, faces) in outputs.items():
            full = np.broadcast_to(frames, original.shape)
            out = {"psnr": metrics.psnr(original, full), "ssim": metrics.ssim(original, full), **perceptual[key]}
            # (1, ...) analyses broadcast against the original's (T, ...)
            out["akd"] = metrics.keypoint_distance(faces_original.landmarks, faces.landmarks)
            out["aed"] = metrics.identity_distance(faces_original.embedding, faces.embedding)
            out["pose_err"] = metrics.pose_error(faces_original.pose, faces.pose)
            result[key] = out
        return result

    def close(self) -> None:
        self.landmarker.close()
