"""Which CPU runtime renders a lite frame fastest: ONNX Runtime as exported, ONNX Runtime with the 5-D
GridSample rewritten as gathers (`facecodec.ort_rewrite`, the default runner), OpenVINO (fp32), each with
2 threads, spinning or sleeping between ops, ONNX Runtime's graph optimisation levels and 1 thread; and
the receiver's whole frame (`SessionStore.decode`:
keypoints, expression flow, warp) on each. Interleaved rounds, one process, real inputs (the sample
clip's frame 0 as the source, later frames driving, the expression channel on), so load drifts hit
every candidate alike.

    PYTHONPATH=. python experiments/warp_runtimes.py [--rounds 15] [--out warp_runtimes.json]

OpenVINO needs `pip install facecodec[openvino]`; without it its rows are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from facecodec.bitstream import decode_stream, stream_bytes
from facecodec.codec.pipeline import OrtNetworks
from facecodec.codec.receiver import frame_requests
from facecodec.codec.sender import Sender, stream_header
from facecodec.codec.session import SessionStore
from facecodec.media import read_video
from facecodec.runtime import OpenVinoRunner, OrtRunner
from facecodec.serving import repository


def candidates(warp: Path, threads: int) -> dict:
    runners = {
        "ORT as exported, spinning": OrtRunner(warp, threads, spin=True, rewrite=False),
        "ORT as exported, sleeping": OrtRunner(warp, threads, spin=False, rewrite=False),
        "ORT rewritten, spinning": OrtRunner(warp, threads, spin=True),
        "ORT rewritten, sleeping": OrtRunner(warp, threads, spin=False),
        "ORT rewritten, spinning, basic graph optimisation": OrtRunner(warp, threads, optimization="basic"),
        "ORT rewritten, spinning, extended graph optimisation": OrtRunner(warp, threads, optimization="extended"),
        "ORT rewritten, spinning, 1 thread": OrtRunner(warp, 1),
    }
    try:
        import openvino  # noqa: F401

        runners["OpenVINO fp32"] = OpenVinoRunner(warp, threads)
        runners["OpenVINO bf16"] = OpenVinoRunner(warp, threads, precision="bf16")
    except ImportError:
        print("openvino not installed: its rows are left out", file=sys.stderr)
    for runner in runners.values():
        runner.activate()
    return runners


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, default=Path("samples/talking_00086_4s.mp4"))
    p.add_argument("--onnx", type=Path, default=Path("artifacts/onnx/lite"))
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-expression", dest="expression", action="store_false")
    p.add_argument("--torch-threads", type=int, help="torch.set_num_threads (the receiver's keypoints)")
    p.add_argument("--blas-threads", type=int, help="numpy's BLAS threads (threadpoolctl; the expression flow)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")
    onnx = repository.ensure_export(args.onnx, "lite")
    networks = OrtNetworks(onnx)
    clip = read_video(args.video, max_frames=40)
    expression = None
    if args.expression:
        from facecodec.expression import ExpressionSender

        expression = ExpressionSender()
    header = stream_header("lite", 15, 256, 25.0, expression=expression)
    frames = decode_stream(stream_bytes(header, Sender(networks, header, expression=expression).send(clip))).frames
    requests = list(frame_requests(frames, session_id=1))
    runners = candidates(onnx / "warp_decoder.onnx", args.threads)
    stores = {}
    for name, runner in runners.items():
        local = dict(networks.runners)
        local["warp_decoder"] = runner
        store = SessionStore(lambda n, f, local=local: local[n].infer(f), max_sessions=1, idle_s=1e9)
        store.decode([requests[0]])
        stores[name] = store
    load = [os.getloadavg()[0]]
    warp_ms = {n: [] for n in runners}
    frame_ms = {n: [] for n in runners}
    cpu_ms = {n: [] for n in runners}
    outputs = {}
    for r in range(args.rounds):
        request = requests[1 + r % (len(requests) - 2)]
        for name, store in stores.items():
            start, cpu = time.perf_counter(), time.process_time()
            (frame,) = store.decode([request])
            frame_ms[name].append(1e3 * (time.perf_counter() - start))
            cpu_ms[name].append(1e3 * (time.process_time() - cpu))
            warp_ms[name].append(runners[name].last_inference_ms)
            outputs[name] = frame
    load.append(os.getloadavg()[0])
    reference = outputs["ORT as exported, spinning"]
    rows = [{"runtime": n, "warp_ms_p50": float(np.median(warp_ms[n])), "frame_ms_p50": float(np.median(frame_ms[n])),
             "frames_per_s": 1e3 / float(np.median(frame_ms[n])), "cpu_ms_p50": float(np.median(cpu_ms[n])),
             "max_abs_vs_exported": float(np.abs(outputs[n] - reference).max())} for n in runners]
    print(f"2 threads; 1-min load average {load[0]:.2f} → {load[1]:.2f}; {args.rounds} interleaved rounds, p50")
    print("| runtime | warp ms | whole frame ms (keypoints, expression flow, warp) | frames/s | CPU ms per frame (all "
          "threads) | max abs vs exported |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['runtime']} | {row['warp_ms_p50']:.1f} | {row['frame_ms_p50']:.1f} | "
              f"{row['frames_per_s']:.1f} | {row['cpu_ms_p50']:.1f} | {row['max_abs_vs_exported']:.1e} |")
    if args.out:
        args.out.write_text(json.dumps({"load": load, "rows": rows, "threads": args.threads}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
