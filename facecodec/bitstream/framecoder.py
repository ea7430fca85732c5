"""Motion vector ⇄ MOTION payload, with the state encoder and decoder both keep.

`FrameCoder.encode` and `FrameCoder.decode` share `_classes` and `_advance`, so the two
sides derive the reconstruction and the entropy-model context from the same code:
- intra: levels of the value itself; context from fixed typical magnitudes; the
  adaptive state is reset, so an intra packet alone resynchronises a decoder;
- predicted: levels of the residual against the previous reconstruction; context from a
  running mean of |residual| (field units, so it survives qscale changes).

Compact streams (version 3) model predicted frames better (issue 21, same range coder):
- after an intra frame the running means restart from typical |residual|s of real talking heads
  (`RESET_TYPICAL`), not from one step;
- the keypoints of a face move together: the head's 6 pose symbols are coded first, and how far they
  moved against their expectation (their buckets, so the decoder knows it before the rest) scales the
  expected |residual| of every expression value of the frame by sqrt(activity) (`_staged`).
Measured on real clips (docs/benchmarks.md): second-order prediction (x̂ₜ₋₁ + a(x̂ₜ₋₁ − x̂ₜ₋₂)) costs more
bits than it saves at every a tried (the estimated motion is not smooth at this step size), so the
prediction stays first-order.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .entropy import Staged, class_of, decode_levels, encode_levels
from .errors import BitstreamError
from .motion import POSE_DIMS, vector_length
from .quant import LIMITS, PerField, dequantise, qscale_factor, quantise

INTRA_TYPICAL = PerField(angle=15.0, t=0.1, exp=0.05, face=0.1)  # expected |value| of an intra frame
ADAPT_RATE = 0.125  # weight of the newest |residual| in the running mean (≈ 8-frame memory)
# compact streams: the running means after an intra frame, the mean |frame-to-frame change| of the plain
# sender's motion on real clips (7 clips, lite weights, expression channel; issue 21)
RESET_TYPICAL = PerField(angle=0.4, t=0.005, exp=0.0018, face=0.023)


@dataclasses.dataclass(frozen=True)
class CoderState:
    """Shared state after a frame: its reconstruction and the residual-magnitude context.

    reconstruction: (6 + 3K + P,) float64, or None before the first intra frame.
    mean_abs: (6 + 3K + P,) float64 running mean of |residual| in field units (degrees, ...).
    """

    reconstruction: np.ndarray | None
    mean_abs: np.ndarray


class FrameCoder:
    """Codes (6 + 3K + P,) motion vectors for one stream's K, P and base quantiser steps."""

    def __init__(self, num_kp: int, steps: PerField, num_face: int = 0, *, trimmed: bool = False) -> None:
        self.num_kp, self.num_face = num_kp, num_face
        self.trimmed = trimmed  # compact streams: payloads end where the range coder's message does, not on a word
        # and the context model of the module docstring
        self._reset = (RESET_TYPICAL if trimmed else steps).expand(num_kp, num_face)
        self._base_step = steps.expand(num_kp, num_face)
        self._intra_mean = INTRA_TYPICAL.expand(num_kp, num_face)
        self._limit = LIMITS.expand(num_kp, num_face)

    def initial_state(self) -> CoderState:
        """State of a coder that has not seen an intra frame yet."""
        return CoderState(None, self._reset)

    def encode(self, state: CoderState, vector: np.ndarray, qscale: int, intra: bool,
               dead_zone: float = 0.0) -> tuple[bytes, CoderState]:
        """Quantise and range-code one (6 + 3K + P,) vector; returns (payload, state after it).
        `dead_zone` (predicted frames; fraction of a step, 0 ≤ dz < 0.5): residuals within (0.5 + dz)
        steps code as 0, larger ones round towards 0 by dz: motion below visibility costs no bits. The
        decoder needs nothing: dequantisation is the same."""
        if state.reconstruction is None and not intra:
            raise ValueError("the first frame of a stream must be intra")
        step, prediction = self._step_and_prediction(state, qscale, intra)
        levels = quantise(vector, prediction, step, self.num_kp, 0.0 if intra else dead_zone)
        payload = encode_levels(levels, self._classes(state, step, intra), trim=self.trimmed)
        return payload, self._advance(state, levels, prediction, step, intra)

    def decode(self, state: CoderState, payload: bytes, qscale: int, intra: bool) -> CoderState:
        """Inverse of `encode`: the state after the frame (its reconstruction included)."""
        if state.reconstruction is None and not intra:
            raise BitstreamError("predicted frame without a reconstructed previous frame")
        step, prediction = self._step_and_prediction(state, qscale, intra)
        levels = decode_levels(payload, self._classes(state, step, intra), padded=self.trimmed)
        after = self._advance(state, levels, prediction, step, intra)
        # an encoder's reconstruction stays within half a step of a clipped value; anything past a
        # step beyond the limits (or not finite) is a forged payload, not motion the model can draw
        if not np.all(np.abs(after.reconstruction) <= self._limit + step):
            raise BitstreamError("motion payload decodes to values beyond the field limits")
        return after

    def _step_and_prediction(self, state: CoderState, qscale: int, intra: bool) -> tuple[np.ndarray, np.ndarray]:
        step = self._base_step * qscale_factor(qscale)
        prediction = np.zeros(vector_length(self.num_kp, self.num_face)) if intra else state.reconstruction
        return step, prediction

    def _classes(self, state: CoderState, step: np.ndarray, intra: bool) -> np.ndarray | Staged:
        if intra or not self.trimmed:
            return class_of((self._intra_mean if intra else state.mean_abs) / step)
        return _staged(state.mean_abs / step)

    def _advance(self, state: CoderState, levels: np.ndarray, prediction: np.ndarray, step: np.ndarray,
                 intra: bool) -> CoderState:
        reconstruction = dequantise(levels, prediction, step)
        if intra:
            return CoderState(reconstruction, self._reset)
        residual = np.abs(levels) * step
        return CoderState(reconstruction, state.mean_abs + (residual - state.mean_abs) * ADAPT_RATE)


def _staged(expected: np.ndarray) -> Staged:
    """Classes of a compact predicted frame from its expected |level|s (6 + 3K + P,): the pose's own, and
    the expression values' scaled by sqrt(activity), activity = (mean over the pose of the smallest |level|
    its bucket allows + ½) / (their mean expected |level| + ½). Sums run in a fixed order and only
    IEEE-exact operations are used, so both sides choose the same models on every platform."""
    head = expected[:POSE_DIMS]
    expected_head = _ordered_sum(head) / POSE_DIMS

    def tail(buckets: np.ndarray) -> np.ndarray:
        smallest = np.where(buckets >= 1, np.ldexp(1.0, np.maximum(buckets - 1, 0)), 0.0)
        activity = (_ordered_sum(smallest) / POSE_DIMS + 0.5) / (expected_head + 0.5)
        return class_of(expected[POSE_DIMS:] * np.sqrt(activity))

    return Staged(class_of(head), tail)


def _ordered_sum(values: np.ndarray) -> float:
    total = 0.0
    for value in values.tolist():
        total += value
    return total
