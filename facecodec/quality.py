"""PSNR, the one pixel-fidelity measure every layer shares (numpy only: the torch-free client reports it too)."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, *, peak: float = 255.0, per_frame: bool = True) -> np.ndarray | float:
    """PSNR in dB of two arrays of one shape; inf where they are equal.

    per_frame: one value per frame (the first axis), over all its pixels and channels, (T,) float64;
    else one value for the whole arrays. `peak`: 255 for uint8 frames, 1 for images in [0, 1].
    """
    if a.shape != b.shape:
        raise ValueError(f"expected two arrays of one shape, got {a.shape} and {b.shape}")
    err = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    mse = err.reshape(len(err), -1).mean(axis=1) if per_frame else err.mean()
    with np.errstate(divide="ignore"):
        value = 10 * np.log10(peak**2 / mse)
    return value if per_frame else float(value)
