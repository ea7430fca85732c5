"""Pseudo-labels for the training frames from MediaPipe (`facecodec.landmarks`), computed once.

* landmarks: (T, 478, 3) float16 pixels (x, y and MediaPipe's relative depth z) of the cached
  frames, NaN where no face was found. They supervise the motion directly
  (`losses.landmark_flow_loss`: the flow at a driving frame's landmark must point at the same
  landmark in the source), and, lifted to 3-D and rotated, the free-view flow
  (`losses.freeview_flow_loss`).
* head pose: (T, 3) float32 (yaw, pitch, roll) degrees, a PnP fit of those landmarks. The paper
  supervises its pose estimator with a pretrained pose network (HopeNet); here PyPI-shipped
  weights give the labels instead.

Both are stored beside the frame cache (`<stem>_lmk3.npy`, `<stem>_pose.npy`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def pose_cache_path(frames_path: Path) -> Path:
    return frames_path.with_name(frames_path.stem + "_pose.npy")


def landmark_cache_path(frames_path: Path) -> Path:
    return frames_path.with_name(frames_path.stem + "_lmk3.npy")


def compute_face_labels(frames_paths: list[Path], chunk: int = 64) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(poses, landmarks) for each cached clip; computes (and stores) those that are missing."""
    from tqdm import tqdm

    from ..landmarks import FaceLandmarker, head_pose

    landmarker = None
    poses, landmarks = [], []
    try:
        for path in tqdm(frames_paths, desc="face labels", leave=False):
            lmk_path, pose_path = landmark_cache_path(path), pose_cache_path(path)
            if not lmk_path.is_file():
                landmarker = landmarker or FaceLandmarker()
                frames = np.load(path, mmap_mode="r")
                points = np.concatenate([landmarker.detect(np.asarray(frames[i : i + chunk]), depth=True)
                                         for i in range(0, len(frames), chunk)])
                np.save(lmk_path, points.astype(np.float16))
                log.info("landmarks: %s", lmk_path.name)
            points = np.load(lmk_path).astype(np.float32)
            if not pose_path.is_file():
                size = np.load(path, mmap_mode="r").shape[1]
                np.save(pose_path, head_pose(points[..., :2], size=size).astype(np.float32))
            poses.append(np.load(pose_path))
            landmarks.append(points)
    finally:
        if landmarker is not None:
            landmarker.close()
    return poses, landmarks
