"""Where the motion stream's bits go, and what prediction, context, dead zone and coarser steps would save.

    .venv/bin/python experiments/motion_coding_probe.py --manifest ../shared/data/faces/MANIFEST.tsv --clips 6

The plain sender's motion (shipped lite weights, expression channel on) of the shipped sample and the first
`--clips` validation clips (at most 300 frames each) is estimated once (cached in `--cache`). Then:

1. ideal code lengths (−log₂ p under the coder's own discrete-Laplace bucket models, mantissas uniform; no
   framing) per field group, for the first-order prediction the coder uses and for second-order ones
   x̂ₜ₋₁ + a·(x̂ₜ₋₁ − x̂ₜ₋₂), and the residual's rms in steps (intra every 25 frames, qscale 24);
2. the real compact stream (`facecodec.bitstream.Encoder`, whole packets: framing, trimmed payloads) at the
   defaults, with dead zones and with coarser expression / expression-channel steps.

What these cost the picture and the mouth/eye measures is `python -m facecodec.tools.stream_rate --settings`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from facecodec.bitstream import Encoder, Motion, StreamHeader
from facecodec.bitstream import entropy
from facecodec.bitstream.framecoder import INTRA_TYPICAL
from facecodec.bitstream.quant import DEFAULT_STEPS

K, P = 15, 16
GROUPS = {"pose": slice(0, 3), "t": slice(3, 6), "exp": slice(6, 6 + 3 * K), "face": slice(6 + 3 * K, 6 + 3 * K + P)}


def motions(manifest: Path, clips: int, cache: Path) -> dict[str, np.ndarray]:
    if cache.exists():
        return dict(np.load(cache))
    from facecodec.codec.pipeline import TorchNetworks
    from facecodec.eval.run import validation_clips
    from facecodec.expression import expression_sender
    from facecodec.tools.stream_rate import SAMPLE, _sender_side
    from facecodec.weights import build_model

    networks, expression = TorchNetworks(build_model("lite")), expression_sender(True)
    out = {}
    for path in [SAMPLE] + validation_clips(manifest)[:clips]:
        _, _, motion = _sender_side(networks, path, max_frames=300, expression=expression)
        out[path.stem] = np.stack([m.to_vector() for m in motion.to_motions()])
    np.savez(cache, **out)
    return out


def _bits(levels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    symbols, _, sizes = entropy._split(levels)
    tables = entropy._TABLES[classes]
    bits = -np.log2(tables[np.arange(len(symbols)), symbols] / tables.sum(1))
    wide = np.abs(symbols - entropy.NUM_BUCKETS) >= 2
    bits[wide] += np.log2(sizes)
    return bits


def ideal_rates(data: dict[str, np.ndarray], a: float) -> tuple[dict[str, float], float]:
    """kbit/s per group (25 fps) of predicted + intra frames, and the residual rms in steps."""
    step = DEFAULT_STEPS.expand(K, P)
    intra_mean = INTRA_TYPICAL.expand(K, P)
    total, squared, frames = np.zeros(len(step)), 0.0, 0
    for vectors in data.values():
        previous, before, mean = None, None, step.copy()
        for n, v in enumerate(vectors.astype(np.float64)):
            intra = n % 25 == 0
            prediction = np.zeros(len(step)) if intra else previous + a * (previous - before) if before is not None \
                else previous
            levels = np.rint((v - prediction) / step).astype(np.int64)
            total += _bits(levels, entropy.class_of((intra_mean if intra else mean) / step))
            reconstruction = prediction + levels * step
            squared += float(np.mean(((reconstruction - v) / step) ** 2))
            mean = step.copy() if intra else mean + (np.abs(levels) * step - mean) * 0.125
            before, previous = (None if intra else previous), reconstruction
        frames += len(vectors)
    return {g: float(total[s].sum() / frames * 25 / 1000) for g, s in GROUPS.items()}, float(np.sqrt(squared / frames))


def stream_rate(data: dict[str, np.ndarray], compact: bool = True, dead_zone: float = 0.0, **steps) -> float:
    """kbit/s of the real MOTION packets (25 fps, no keyframe) over every clip."""
    size, frames = 0, 0
    for vectors in data.values():
        header = StreamHeader(face_basis=1, num_face=P, compact=compact,
                              steps=dataclasses.replace(DEFAULT_STEPS, **steps))
        encoder = Encoder(header, dead_zone=dead_zone)
        size += sum(len(encoder.encode(Motion.from_vector(v, K, P), 40 * n)) for n, v in enumerate(vectors))
        frames += len(vectors)
    return 8 * size / (frames / 25) / 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--cache", type=Path, default=Path("artifacts/motion_coding_probe.npz"))
    args = p.parse_args()
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    data = motions(args.manifest, args.clips, args.cache)
    print(f"{len(data)} clips, {sum(len(v) for v in data.values())} frames")
    print("| prediction | pose | t | exp | face | all | residual rms (steps) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for a in (0.0, 0.25, 0.5, 1.0):
        rates, rms = ideal_rates(data, a)
        name = "first order" if a == 0 else f"second order, a = {a:g}"
        cells = " | ".join(f"{rates[g]:.3f}" for g in GROUPS)
        print(f"| {name} | {cells} | {sum(rates.values()):.3f} | {rms:.3f} |")
    print("\n| stream (real packets) | kbit/s |\n| --- | --- |")
    print(f"| legacy packets (versions 1/2) | {stream_rate(data, compact=False):.3f} |")
    for label, options in (("compact (default)", {}), ("dead zone 0.2", {"dead_zone": 0.2}),
                           ("face step 0.02", {"face": 0.02}),
                           ("face 0.02, dead zone 0.2", {"face": 0.02, "dead_zone": 0.2}),
                           ("face 0.02, exp 0.006, dead zone 0.2", {"face": 0.02, "exp": 0.006, "dead_zone": 0.2}),
                           ("face 0.03, exp 0.006, dead zone 0.3", {"face": 0.03, "exp": 0.006, "dead_zone": 0.3})):
        print(f"| {label} | {stream_rate(data, **options):.3f} |")


if __name__ == "__main__":
    main()
