"""What computing the warp decoder in bf16 (OpenVINO's CPU plugin on CPUs with bf16 units) costs the picture:
each clip's plain-sender motion is coded once and the whole call rendered by the receiver with the warp
decoder in OpenVINO fp32 and in bf16 (every other network in ONNX Runtime, fp32), then measured against
the camera frames (PSNR and SSIM on every frame, stLPIPS per `--lpips`) and against each other.

    PYTHONPATH=. python experiments/warp_precision.py --manifest ../shared/data/faces/MANIFEST.tsv --clips 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from facecodec.bitstream import decode_stream, stream_bytes
from facecodec.codec.pipeline import OrtNetworks
from facecodec.codec.receiver import receive
from facecodec.codec.sender import Sender, stream_header
from facecodec.eval.metrics import psnr
from facecodec.media import to_frames
from facecodec.rd.quality import LpipsPlan, QualityMeter
from facecodec.runtime import OpenVinoRunner
from facecodec.serving import repository
from facecodec.tools.stream_rate import SAMPLE, _sender_side

PRECISIONS = ("f32", "bf16")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, help="validation clips from this manifest (else the shipped sample)")
    p.add_argument("--clips", type=int, default=3)
    p.add_argument("--max-frames", type=int, default=100)
    p.add_argument("--lpips", default="alex:2,vgg:10")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    from facecodec.eval.run import validation_clips
    from facecodec.expression import ExpressionSender

    clips = validation_clips(args.manifest)[: args.clips] if args.manifest else [SAMPLE]
    onnx = repository.ensure_export(Path("artifacts/onnx/lite"), "lite")
    networks = OrtNetworks(onnx)
    ort_warp = networks.runners["warp_decoder"]
    warps = {prec: OpenVinoRunner(onnx / "warp_decoder.onnx", 2, precision=prec) for prec in PRECISIONS}
    for runner in warps.values():
        runner.activate()
    expression, plan, rows = ExpressionSender(), LpipsPlan.parse(args.lpips), {}
    lpips = None
    for path in clips:
        networks.runners["warp_decoder"] = ort_warp
        frames, fps, motion = _sender_side(networks, path, max_frames=args.max_frames, expression=expression)
        header = stream_header("lite", 15, frames.shape[1], fps, expression=expression)
        decoded = decode_stream(stream_bytes(header, Sender(None, header, expression=expression).send(frames, motion)))
        meter = QualityMeter(frames, plan, lpips=lpips)
        lpips = meter.lpips
        rendered = {}
        for prec, runner in warps.items():
            networks.runners["warp_decoder"] = runner
            rendered[prec] = to_frames(receive(networks, decoded.frames))
            rows.setdefault(prec, []).append(meter.summary(rendered[prec]))
        between = float(np.mean(psnr(rendered["f32"], rendered["bf16"])))
        rows.setdefault("between", []).append({"psnr_f32_vs_bf16": between})
        print(path.stem, {prec: {k: round(v, 4) for k, v in rows[prec][-1].items()} for prec in PRECISIONS},
              f"f32 vs bf16 PSNR {between:.2f} dB", flush=True)
    means = {prec: {k: float(np.mean([r[k] for r in rows[prec]])) for k in rows[prec][0]} for prec in rows}
    print("| warp precision | " + " | ".join(means["f32"]) + " |")
    print("| --- |" + " --- |" * len(means["f32"]))
    for prec in PRECISIONS:
        print(f"| {prec} | " + " | ".join(f"{v:.4f}" for v in means[prec].values()) + " |")
    print(f"f32 vs bf16 renders: PSNR {means['between']['psnr_f32_vs_bf16']:.2f} dB (mean over clips)")
    if args.out:
        args.out.write_text(json.dumps({"clips": [str(c) for c in clips], "rows": rows, "means": means}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
