"""Dense optical flow as a motion target: for each driving pixel on the face, where the source shows it.

Why: identity (AED) follows the face's motion to about a pixel, and the landmark terms do not
ask for that: a thin-plate spline through the driving frame's MediaPipe landmarks puts them within
1 px and still loses identity, while the keyframe warped by the flow OpenCV's DIS measures between
the frames, inside the face only, beats repeating the source (`docs/benchmarks.md`, "Where the
identity gap sits"). DIS runs on the CPU beside the sampler: ≈ 5 ms per 256² pair on the idle 2-core VM,
≈ 25 ms while training shares its cores (≈ 8 % of a CPU step of 8 pairs); 32 pairs ≈ 0.15 s on one core, about
a GPU step, so a thread pool measures the pairs side by side.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch

from ..models.generator import depth_averaged_flow


def measure_flow(driving: np.ndarray, source: np.ndarray) -> np.ndarray:
    """DIS optical flow (OpenCV, medium preset) between two (S, S, 3) uint8 RGB frames → (S, S, 2) px:
    driving pixel (x, y) + flow = the source pixel it shows."""
    grey = lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # noqa: E731
    # a fresh DIS object per pair (≈ 0.1 ms): the pool's threads must not share one
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(grey(driving), grey(source), None)


def _uint8(image: torch.Tensor) -> np.ndarray:
    """(3, S, S) in [0, 1] → (S, S, 3) uint8."""
    return (image.detach().permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()


def face_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """landmarks (L, ≥ 2) normalised to [-1, 1] (NaN: no face) → (size, size) float32, 1 inside their
    convex hull (the face from brow to chin), 0 elsewhere and everywhere without a face."""
    mask = np.zeros((size, size), np.uint8)
    xy = landmarks[:, :2]
    if np.isfinite(xy).all():
        pixels = np.round((xy + 1) * (size - 1) / 2).astype(np.int32)
        cv2.fillConvexPoly(mask, cv2.convexHull(pixels), 1)
    return mask.astype(np.float32)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="dis")


def dense_flow_targets(sources: torch.Tensor, drivings: torch.Tensor,
                       landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sources (B, 3, S, S) and drivings (B, N, 3, S, S) in [0, 1]; landmarks (B, 1 + N, L, ≥ 2)
    normalised (`data.normalise_landmarks`, source first) →

    target (B·N, 2, S, S): for each driving pixel, the source position (x, y) it shows, in the flow's
    units ([-1, 1], align_corners=True: ±1 are the outer pixel centres), by DIS optical flow;
    weight (B·N, 1, S, S): the driving frame's face (landmark hull), 0 without a face.
    """
    b, n, _, s, _ = drivings.shape
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
    source_images = [_uint8(x) for x in sources]
    pairs = [(_uint8(drivings[i, j]), source_images[i]) for i in range(b) for j in range(n)]
    # OpenCV releases the GIL while it measures
    flows = list(_pool().map(lambda pair: measure_flow(*pair), pairs))
    targets = [np.stack([xs + f[..., 0], ys + f[..., 1]]) * (2 / (s - 1)) - 1 for f in flows]
    weights = [face_mask(landmarks[i, 1 + j].cpu().numpy(), s)[None] for i in range(b) for j in range(n)]
    device = drivings.device
    return torch.from_numpy(np.stack(targets)).to(device), torch.from_numpy(np.stack(weights)).to(device)


def dense_flow_loss(deformation: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean L1 (|Δx| + |Δy|, normalised units: 1 px at 256² = 0.0078) between the depth-averaged
    flow of `deformation` (B, D, h, w, 3), brought to the target's size as the source skip brings it
    (bilinear, align_corners=True), and `target` (B, 2, S, S) under `weight` (B, 1, S, S)."""
    flow = torch.nn.functional.interpolate(depth_averaged_flow(deformation), size=target.shape[-2:],
                                           mode="bilinear", align_corners=True)
    total = weight.sum()
    if total <= 0:
        return flow.new_zeros(())
    return ((flow - target).abs().sum(1, keepdim=True) * weight).sum() / total
