"""experiments/aed_oracle.py: the flow oracle moves the keyframe's pixels where the real frame has them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")
SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "aed_oracle.py"
spec = importlib.util.spec_from_file_location("aed_oracle", SCRIPT)
aed_oracle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(aed_oracle)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    inner = (slice(16, -16), slice(16, -16))  # away from the border the shift wraps around
    mse = np.mean((a[inner].astype(np.float64) - b[inner]) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def test_the_oracle_follows_a_shift_and_its_coarse_flow_nearly_does(sample_frames):
    keyframe = sample_frames[0]
    moved = np.roll(keyframe, (2, 3), axis=(0, 1))  # the "real frame": 3 px right, 2 px down
    exact, coarse = (aed_oracle.flow_oracle(moved[None], keyframe, size)[0] for size in (None, 32))
    frozen = _psnr(keyframe, moved)
    assert _psnr(exact, moved) > frozen + 20  # ≈ 57 dB against 23 dB frozen
    assert _psnr(coarse, moved) > frozen + 20
    assert exact.shape == keyframe.shape and exact.dtype == np.uint8
