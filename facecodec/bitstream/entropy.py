"""Adaptive range coding of integer levels (constriction's range coder).

A level r is split exp-Golomb style into a signed bucket b = sign(r) · bitlength(|r|)
(−24…24) and, for |b| ≥ 2, |b| − 1 raw mantissa bits. Buckets are range-coded with a
discrete Laplace model P(r) ∝ θ^|r| summed over the bucket; each symbol picks one of
`NUM_CLASSES` Laplace scales (its "class") from context both sides track identically.
Mantissas are coded uniformly (they are nearly uniform once |r| ≥ 2).

The model tables are built from IEEE-exact operations only (sqrt, ×, ÷; no exp/log),
so encoder and decoder agree bit for bit on any platform.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import constriction
import numpy as np

from .errors import BitstreamError

NUM_BUCKETS = 24  # |level| < 2**24
NUM_CLASSES = 48
_MODELS = constriction.stream.model


def _class_means() -> np.ndarray:
    """(NUM_CLASSES,) mean |level| of each class: 2^(j/4) / 16, j = 0…47 (0.0625 … 215)."""
    root = np.sqrt(np.sqrt(2.0))  # 2^(1/4); products and ldexp below are exact or correctly rounded
    quarter_octaves = np.array([1.0, root, root * root, root * root * root])
    j = np.arange(NUM_CLASSES)
    return np.ldexp(quarter_octaves[j % 4], j // 4 - 4)


def _bucket_table(mean_abs: float) -> np.ndarray:
    """(2·NUM_BUCKETS + 1,) unnormalised probabilities of signed buckets −24…24."""
    theta = mean_abs / (np.sqrt(1.0 + mean_abs * mean_abs) + 1.0)  # E|r| = 2θ / (1 − θ²)
    masses, power = [], theta  # power = θ^(2^(b−1)), by repeated squaring
    for _ in range(NUM_BUCKETS):
        masses.append(power * (1.0 - power) / (1.0 - theta))  # Σ θ^k over 2^(b−1) ≤ k < 2^b
        power = power * power
    half = np.array(masses)
    return np.concatenate([half[::-1], [1.0], half])


_MEANS = _class_means()
_EDGES = np.sqrt(_MEANS[:-1] * _MEANS[1:])  # geometric midpoints between class means
_TABLES = np.stack([_bucket_table(m) for m in _MEANS])  # (NUM_CLASSES, 49)


def class_of(mean_abs_levels: np.ndarray) -> np.ndarray:
    """Class index (int) whose Laplace mean |level| is nearest to each expected |level|."""
    return np.searchsorted(_EDGES, mean_abs_levels).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Staged:
    """Per-symbol classes in two stages: `head` (k,) for the first k symbols, and `tail`, the classes of
    the others from the first k symbols' bucket magnitudes |b| (k,) int: context both sides know once
    those symbols are decoded (the decoder reads them before choosing the rest's models)."""

    head: np.ndarray
    tail: Callable[[np.ndarray], np.ndarray]

    def resolve(self, levels: np.ndarray) -> np.ndarray:
        """All classes, given the levels (the encoder's side)."""
        k = len(self.head)
        return np.concatenate([self.head, self.tail(bucket_magnitudes(levels[:k]))])


Classes = np.ndarray | Staged


def bucket_magnitudes(levels: np.ndarray) -> np.ndarray:
    """|bucket| = bitlength(|level|) of each level (0 for 0), int64."""
    return np.frexp(np.abs(np.asarray(levels, np.int64)).astype(np.float64))[1].astype(np.int64)


def _split(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """levels → (bucket symbols 0…48, mantissas, mantissa alphabet sizes) — the last two for |b| ≥ 2."""
    magnitude = np.abs(levels)
    buckets = np.frexp(magnitude.astype(np.float64))[1].astype(np.int64)  # exact bit length; 0 → 0
    wide = buckets >= 2
    sizes = 1 << (buckets[wide] - 1)
    mantissas = magnitude[wide] - sizes
    symbols = np.sign(levels) * buckets + NUM_BUCKETS
    return symbols.astype(np.int32), mantissas.astype(np.int32), sizes.astype(np.int32)


def _join(symbols: np.ndarray, mantissas: np.ndarray) -> np.ndarray:
    """Inverse of `_split`, given the mantissas of the buckets with |b| ≥ 2 in order."""
    signed = symbols.astype(np.int64) - NUM_BUCKETS
    buckets = np.abs(signed)
    magnitude = np.where(buckets >= 1, 1 << np.maximum(buckets - 1, 0), 0)
    magnitude[buckets >= 2] += mantissas
    return np.sign(signed) * magnitude


def encode_levels(levels: np.ndarray, classes: Classes, *, trim: bool = False) -> bytes:
    """Range-code (N,) int levels with per-symbol model `classes` (N,); big-endian 32-bit words, or with
    `trim` the shortest byte string that `decode_levels(..., padded=True)` reads back to the same levels
    (saves ≈ 1.8 of the ≈ 1.5 + 1 bytes the last word and the coder's flush leave; see `_trimmed`).
    `classes` may be `Staged`: the same symbols, the tail's models chosen from the head's buckets."""
    staged = classes
    if isinstance(classes, Staged):
        classes = classes.resolve(np.asarray(levels, np.int64))
    if np.any(np.abs(levels) >= 2**NUM_BUCKETS):
        raise ValueError(f"levels must satisfy |level| < 2**{NUM_BUCKETS}")
    symbols, mantissas, sizes = _split(np.asarray(levels, np.int64))
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols, _MODELS.Categorical(perfect=False), _TABLES[classes])
    if sizes.size:
        encoder.encode(mantissas, _MODELS.Uniform(), sizes)
    data = encoder.get_compressed().astype(">u4").tobytes()
    return _trimmed(data, np.asarray(levels, np.int64), staged) if trim else data


def _trimmed(data: bytes, levels: np.ndarray, classes: Classes) -> bytes:
    """The shortest prefix of `data`, its last byte possibly raised by one, that still decodes to `levels`
    once zero-padded: any number in the coder's final interval ends the message, and the one with the most
    trailing zero bytes is nearly always the kept prefix or that prefix plus one. Checked by decoding, so a
    trimmed payload is exact by construction (≤ 2 decodes per byte dropped)."""
    best = data
    for length in range(len(data) - 1, -1, -1):
        prefix = int.from_bytes(data[:length], "big")
        found = None
        for candidate in (prefix, prefix + 1):
            if candidate >> (8 * length):  # the raise carried out of the prefix
                continue
            trial = candidate.to_bytes(length, "big")
            try:
                if np.array_equal(decode_levels(trial, classes, padded=True), levels):
                    found = trial
                    break
            except BitstreamError:
                pass
        if found is None:
            return best
        best = found
    return best


def decode_levels(data: bytes, classes: Classes, *, padded: bool = False) -> np.ndarray:
    """Inverse of `encode_levels`; raises BitstreamError on data no encoder could produce. `padded`: a
    trimmed payload (`encode_levels(trim=True)`), read as if zero bytes followed it to a whole word."""
    if padded:
        data = bytes(data) + bytes(-len(data) % 4)
    if len(data) % 4:
        raise BitstreamError(f"range-coded payload must be whole 32-bit words, got {len(data)} bytes")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, ">u4").astype(np.uint32))
    try:
        if isinstance(classes, Staged):  # the head's symbols first: they choose the tail's models
            head = decoder.decode(_MODELS.Categorical(perfect=False), _TABLES[classes.head])
            tail = classes.tail(np.abs(head.astype(np.int64) - NUM_BUCKETS))
            symbols = np.concatenate([head, decoder.decode(_MODELS.Categorical(perfect=False), _TABLES[tail])])
        else:
            symbols = decoder.decode(_MODELS.Categorical(perfect=False), _TABLES[classes])
        buckets = np.abs(symbols.astype(np.int64) - NUM_BUCKETS)
        sizes = (1 << (buckets[buckets >= 2] - 1)).astype(np.int32)
        mantissas = decoder.decode(_MODELS.Uniform(), sizes) if sizes.size else np.zeros(0, np.int32)
    except AssertionError as exc:  # constriction signals undecodable data with AssertionError
        raise BitstreamError(f"range-coded payload is not decodable: {exc}") from exc
    return _join(symbols, mantissas)
