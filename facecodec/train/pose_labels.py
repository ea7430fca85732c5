"""Head-pose pseudo-labels for the training frames: MediaPipe landmarks + PnP (`facecodec.landmarks`).

The paper supervises the pose estimator with a pretrained pose network (HopeNet); here the labels
come from a landmark fit, computed once per cached frame and stored beside the frame cache as
(T, 3) float32 (yaw, pitch, roll) degrees, NaN where no face was found.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def pose_cache_path(frames_path: Path) -> Path:
    return frames_path.with_name(frames_path.stem + "_pose.npy")


def compute_pose_labels(frames_paths: list[Path], chunk: int = 64) -> list[np.ndarray]:
    """Labels for each cached clip; computes (and stores) those that are missing."""
    from ..landmarks import FaceLandmarker, head_pose

    out, landmarker = [], None
    try:
        for path in frames_paths:
            target = pose_cache_path(path)
            if not target.is_file():
                landmarker = landmarker or FaceLandmarker()
                frames = np.load(path, mmap_mode="r")
                size = frames.shape[1]
                poses = [head_pose(landmarker.detect(np.asarray(frames[i : i + chunk])), size=size)
                         for i in range(0, len(frames), chunk)]
                np.save(target, np.concatenate(poses).astype(np.float32))
                log.info("pose labels: %s", target.name)
            out.append(np.load(target))
    finally:
        if landmarker is not None:
            landmarker.close()
    return out


def load_pose_labels(frames_paths: list[Path]) -> list[np.ndarray] | None:
    """Cached labels for every clip, or None when any clip has none yet."""
    paths = [pose_cache_path(p) for p in frames_paths]
    if not all(p.is_file() for p in paths):
        return None
    return [np.load(p) for p in paths]
