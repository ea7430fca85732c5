"""Motion vector ⇄ MOTION payload, with the state encoder and decoder both keep.

`FrameCoder.encode` and `FrameCoder.decode` share `_classes` and `_advance`, so the two
sides derive the reconstruction and the entropy-model context from the same code:
- intra: levels of the value itself; context from fixed typical magnitudes; the
  adaptive state is reset, so an intra packet alone resynchronises a decoder;
- predicted: levels of the residual against the previous reconstruction; context from a
  running mean of |residual| (field units, so it survives qscale changes).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .entropy import class_of, decode_levels, encode_levels
from .errors import BitstreamError
from .motion import vector_length
from .quant import LIMITS, PerField, dequantise, qscale_factor, quantise

INTRA_TYPICAL = PerField(angle=15.0, t=0.1, exp=0.05, face=0.1)  # expected |value| of an intra frame
ADAPT_RATE = 0.125  # weight of the newest |residual| in the running mean (≈ 8-frame memory)


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
        self._base_step = steps.expand(num_kp, num_face)
        self._intra_mean = INTRA_TYPICAL.expand(num_kp, num_face)
        self._limit = LIMITS.expand(num_kp, num_face)

    def initial_state(self) -> CoderState:
        """State of a coder that has not seen an intra frame yet."""
        return CoderState(None, self._base_step)

    def encode(self, state: CoderState, vector: np.ndarray, qscale: int, intra: bool) -> tuple[bytes, CoderState]:
        """Quantise and range-code one (6 + 3K + P,) vector; returns (payload, state after it)."""
        if state.reconstruction is None and not intra:
            raise ValueError("the first frame of a stream must be intra")
        step, prediction = self._step_and_prediction(state, qscale, intra)
        levels = quantise(vector, prediction, step, self.num_kp)
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

    def _classes(self, state: CoderState, step: np.ndarray, intra: bool) -> np.ndarray:
        return class_of((self._intra_mean if intra else state.mean_abs) / step)

    def _advance(self, state: CoderState, levels: np.ndarray, prediction: np.ndarray, step: np.ndarray,
                 intra: bool) -> CoderState:
        reconstruction = dequantise(levels, prediction, step)
        if intra:
            return CoderState(reconstruction, self._base_step)
        residual = np.abs(levels) * step
        return CoderState(reconstruction, state.mean_abs + (residual - state.mean_abs) * ADAPT_RATE)
