"""Scalar quantisation of motion vectors, with closed-loop temporal prediction.

Each field (angles, translation, keypoint expression, expression-channel coefficients) has a base
step; a per-packet quantiser scale index `qscale` (0…47, signalled in every MOTION packet)
multiplies all steps by `qscale_factor(qscale)`, from 1/8 to 7.5 in 1/8-octave-like increments
(24 → 1.0).

Intra frames code levels of the value itself; predicted frames code levels of the
residual against the DECODER's reconstruction of the previous frame, so encoder and
decoder run the same `dequantise` and never drift. Only IEEE-exact operations
(+, −, ×, ÷, rint) are used, so reconstructions are bit-identical on every platform.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .motion import POSE_DIMS, vector_length

QSCALE_MIN = 0
QSCALE_MAX = 47
QSCALE_UNITY = 24  # qscale_factor(24) == 1.0
MAX_LEVEL = 2**24 - 1  # largest |level| the entropy coder represents


def qscale_factor(qscale: int) -> float:
    """Step multiplier of a quantiser scale index: (8 + q mod 8) · 2^(q div 8) / 64 (exact in binary)."""
    if not QSCALE_MIN <= qscale <= QSCALE_MAX:
        raise ValueError(f"qscale must be in [{QSCALE_MIN}, {QSCALE_MAX}], got {qscale}")
    return (8 + qscale % 8) * 2.0 ** (qscale // 8) / 64.0


@dataclasses.dataclass(frozen=True)
class PerField:
    """One number per motion field: angles (degrees), t and exp (normalised coordinates), face
    (expression-channel coefficients, canonical units of `facecodec.expression`)."""

    angle: float
    t: float
    exp: float
    face: float = 0.01

    def expand(self, num_kp: int, num_face: int = 0) -> np.ndarray:
        """(6 + 3K + P,) float64 vector laid out like `Motion.to_vector`."""
        out = np.full(vector_length(num_kp, num_face), self.exp, dtype=np.float64)
        out[:3] = self.angle
        out[3:POSE_DIMS] = self.t
        out[POSE_DIMS + 3 * num_kp:] = self.face
        return out


DEFAULT_STEPS = PerField(angle=0.5, t=0.004, exp=0.004, face=0.01)
# Values are clipped to ±LIMITS before quantisation (estimator hard range is −99…+96 degrees).
LIMITS = PerField(angle=180.0, t=4.0, exp=4.0, face=4.0)


def check_steps(steps: PerField) -> None:
    """Raise ValueError unless every step is finite, fine levels stay below MAX_LEVEL, and no step
    exceeds its field's limit (a coarser one could only code 0 or values the model never saw)."""
    smallest_scale = qscale_factor(QSCALE_MIN)
    for name in ("angle", "t", "exp", "face"):
        step, limit = getattr(steps, name), getattr(LIMITS, name)
        smallest_step = 2 * limit / (smallest_scale * (MAX_LEVEL - 1))  # residuals span 2 · limit
        if not (np.isfinite(step) and smallest_step < step <= limit):
            raise ValueError(f"quantiser step for {name} must be in ({smallest_step:.2g}, {limit:g}], got {step}")


def quantise(x: np.ndarray, prediction: np.ndarray, step: np.ndarray, num_kp: int,
             dead_zone: float = 0.0) -> np.ndarray:
    """Levels (int64) of `x` clipped to LIMITS, relative to `prediction`; all (6 + 3K + P,), `step` > 0.
    `dead_zone` dz ∈ [0, 0.5): |level| = ⌊|r| + ½ − dz⌋ (0: rounding to nearest; the encoder's choice)."""
    if not 0.0 <= dead_zone < 0.5:
        raise ValueError(f"dead zone must be in [0, 0.5) steps, got {dead_zone}")
    limit = LIMITS.expand(num_kp, x.size - vector_length(num_kp))
    clipped = np.clip(np.asarray(x, np.float64), -limit, limit)
    ratio = (clipped - prediction) / step
    if dead_zone == 0.0:
        return np.rint(ratio).astype(np.int64)
    return (np.sign(ratio) * np.maximum(np.floor(np.abs(ratio) + 0.5 - dead_zone), 0.0)).astype(np.int64)


def dequantise(levels: np.ndarray, prediction: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Reconstruction prediction + levels · step, float64 (6 + 3K + P,); the decoder's only formula."""
    return prediction + levels.astype(np.float64) * step
