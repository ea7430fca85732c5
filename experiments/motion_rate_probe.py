"""What sending the motion at half the frame rate costs (issue 21: "a lower motion frame rate with
receiver-side interpolation, measured for what it costs the mouth"): each clip's plain-sender motion is
coded at the full rate (25 fps) and at half (every second frame, 12.5 fps, compact packets, default
steps); the receiver renders the half-rate call at 25 fps with every missing frame's motion the mean of
its two decoded neighbours (linear in angles, translation, expression and expression-channel codes;
the last frame holds). Both calls are measured against the camera frames (PSNR, stLPIPS, mouth and eye
opening per `facecodec.eval.metrics`).

    PYTHONPATH=. python experiments/motion_rate_probe.py --manifest ../shared/data/faces/MANIFEST.tsv --clips 3

The interpolation needs the next packet: a live receiver would show each frame one motion period
(80 ms at 12.5 fps) later. This is a measurement, not a stream format (the header has no motion rate).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from facecodec.bitstream import Motion, decode_stream, stream_bytes
from facecodec.codec.pipeline import OrtNetworks
from facecodec.codec.receiver import receive
from facecodec.codec.sender import Sender, stream_header
from facecodec.eval.metrics import eye_opening, follows, mouth_opening
from facecodec.media import to_frames
from facecodec.rd.quality import LpipsPlan, QualityMeter
from facecodec.serving import repository
from facecodec.tools.stream_rate import _sender_side


def interpolate(frames: list, total: int) -> list:
    """Decoded frames of the half-rate call (frame k is camera frame 2k) → `total` frames at the full
    rate: even ones as decoded, odd ones the mean of their neighbours' motion (the last holds)."""
    out = []
    for n in range(total):
        k, odd = divmod(n, 2)
        this = frames[min(k, len(frames) - 1)]
        if not odd:
            out.append(dataclasses.replace(this, seq=n))
            continue
        after = frames[min(k + 1, len(frames) - 1)].motion
        m = this.motion
        vector = (m.to_vector() + after.to_vector()) / 2
        out.append(dataclasses.replace(this, seq=n, keyframe=None, face=None,
                                       motion=Motion.from_vector(vector, m.num_kp, m.num_face)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--clips", type=int, default=3)
    p.add_argument("--max-frames", type=int, default=100)
    p.add_argument("--lpips", default="alex:1,vgg:3", help="odd strides: even frames are decoded alike at both rates")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    from facecodec.landmarks import FaceLandmarker
    from facecodec.eval.run import validation_clips
    from facecodec.expression import ExpressionSender

    networks = OrtNetworks(repository.ensure_export(Path("artifacts/onnx/lite"), "lite"))
    face, plan, landmarker, lpips, rows = ExpressionSender(), LpipsPlan.parse(args.lpips), FaceLandmarker(), None, []
    for path in validation_clips(args.manifest)[: args.clips]:
        frames, fps, motion = _sender_side(networks, path, max_frames=args.max_frames, expression=face)
        meter = QualityMeter(frames, plan, lpips=lpips)
        lpips = meter.lpips
        original = landmarker.detect(frames)
        row = {"clip": path.stem}
        for label, step in (("full", 1), ("half", 2)):
            header = stream_header("lite", 15, frames.shape[1], fps / step, expression=face)
            data = stream_bytes(header, Sender(None, header, expression=face).send(frames[::step], motion[::step]))
            decoded = decode_stream(data)
            calls = decoded.frames if step == 1 else interpolate(decoded.frames, len(frames))
            rendered = to_frames(receive(networks, calls))
            landmarks = landmarker.detect(rendered)
            quality = meter.summary(rendered)
            for part, measure in (("mouth", mouth_opening), ("eye", eye_opening)):
                quality[f"{part}_corr"], quality[f"{part}_amp"] = follows(measure(original), measure(landmarks))
            row[label] = {"motion_kbps": decoded.stats.kbps(keyframes=False), **quality}
            print(path.stem, label, {k: round(v, 4) for k, v in row[label].items()}, flush=True)
        rows.append(row)
    keys = list(rows[0]["full"])
    print("| motion rate | " + " | ".join(keys) + " |")
    print("| --- |" + " --- |" * len(keys))
    for label in ("full", "half"):
        print(f"| {label} | " + " | ".join(f"{np.mean([r[label][k] for r in rows]):.4f}" for k in keys) + " |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
