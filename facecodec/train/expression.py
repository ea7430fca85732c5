"""The expression channel in training: the receiver's expression flow for every (source, driving)
pair, from the cached landmarks (the loss on the mouth and eyes is `losses.expression_region_loss`).

With the flow in the loop, the generator learns to draw what the warp cannot: the inside of an
opening mouth, lids over an eye. The flow is the one the codec sends: the driving frame's
coefficients against its source (`ExpressionBasis.encode`), quantised at the stream's step.
"""

from __future__ import annotations

import numpy as np
import torch

from ..bitstream.quant import DEFAULT_STEPS
from ..expression import FLOW_CHANNELS, ExpressionBasis, ExpressionWarp


def to_pixels(points: np.ndarray, size: int, flipped: bool) -> np.ndarray:
    """Inverse of `data.normalise_landmarks`: (…, L, 3) normalised → pixels of the UNflipped frame."""
    out = np.array(points, np.float64)
    if flipped:
        out[..., 0] *= -1
    out[..., :2] += 1
    return out * (size / 2)


def mirror_flow(flow: np.ndarray) -> np.ndarray:
    """The flow (…, 3, E, E) of a horizontally mirrored image: read mirrored, its x offset negated."""
    out = flow[..., ::-1].copy()
    out[..., 0, :, :] *= -1
    return out


def batch_expression_flows(landmarks: torch.Tensor, flipped: np.ndarray, basis: ExpressionBasis, size: int,
                           image_size: int, step: float = DEFAULT_STEPS.face) -> torch.Tensor:
    """landmarks (B, 1 + N, L, 3) normalised (source first), flipped (B,) → (B·N, 3, E, E) float32,
    source-major like `forward.run_model`'s drivings; pairs without both faces get no flow."""
    b, n1 = landmarks.shape[:2]
    out = np.zeros((b, n1 - 1, FLOW_CHANNELS, size, size), np.float32)
    for i in range(b):
        points = to_pixels(landmarks[i].numpy(), image_size, bool(flipped[i]))
        if not np.isfinite(points[0]).all():
            continue
        warp = ExpressionWarp(basis, basis.source_face(points[0]), size, image_size=image_size)
        for j in range(1, n1):
            if np.isfinite(points[j]).all():
                coefficients = np.rint(basis.encode(points[j], points[0]) / step) * step
                out[i, j - 1] = warp.flow(coefficients)
        if flipped[i]:
            out[i] = mirror_flow(out[i])
    return torch.from_numpy(out.reshape(b * (n1 - 1), FLOW_CHANNELS, size, size))
