"""Synthetic talking-head motion for rate measurements and tests (no model needed).

Each motion component is Gaussian-smoothed white noise (a smooth random walk around
neutral) plus independent per-frame "estimator" noise at about half a quantiser step.
Defaults aim at a calm, talking speaker at 25 fps: head angles drift within ±20°
(≈ 0.5°/frame), expression moves faster than translation.
"""

from __future__ import annotations

import numpy as np

from .motion import Motion
from .quant import PerField

AMPLITUDE = PerField(angle=10.0, t=0.02, exp=0.03, face=0.08)  # standard deviation of the smooth part
SMOOTHING = PerField(angle=15.0, t=20.0, exp=6.0, face=3.0)  # Gaussian kernel sigma, frames
NOISE = PerField(angle=0.25, t=0.002, exp=0.002, face=0.004)  # per-frame noise standard deviation
ANGLE_RANGE = 20.0  # degrees; angles are clipped to ±ANGLE_RANGE


def _smooth_noise(rng: np.random.Generator, num_frames: int, dims: int, sigma: float) -> np.ndarray:
    """(num_frames, dims) unit-variance Gaussian-smoothed white noise."""
    radius = int(4 * sigma) + 1
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= np.sqrt(np.sum(kernel**2))  # keeps unit variance
    white = rng.standard_normal((num_frames + 2 * radius, dims))
    return np.stack([np.convolve(white[:, d], kernel, mode="valid") for d in range(dims)], axis=1)


def random_walk_motion(num_frames: int, num_kp: int = 15, *, seed: int = 0,
                       amplitude: PerField = AMPLITUDE, smoothing: PerField = SMOOTHING,
                       noise: PerField = NOISE, num_face: int = 0) -> list[Motion]:
    """`num_frames` `Motion`s of K = `num_kp` keypoints and P = `num_face` expression-channel
    coefficients; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    groups = (("angle", 3), ("t", 3), ("exp", 3 * num_kp), ("face", num_face))  # vector layout order
    parts = [getattr(amplitude, name) * _smooth_noise(rng, num_frames, dims, getattr(smoothing, name))
             for name, dims in groups if dims]
    vectors = np.concatenate(parts, axis=1)  # (N, 6 + 3K + P)
    vectors[:, :3] = np.clip(vectors[:, :3], -ANGLE_RANGE, ANGLE_RANGE)
    vectors += rng.standard_normal(vectors.shape) * noise.expand(num_kp, num_face)
    return [Motion.from_vector(v, num_kp, num_face) for v in vectors]
