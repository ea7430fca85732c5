"""`python -m facecodec.serving {serve,demo}`: what `make serve` and `make demo` run."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..bitstream.refresh import RefreshPolicy
from . import settings as settings_mod


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repository", type=Path, required=True, help="model repository (configs + model.py)")
    p.add_argument("--onnx", type=Path, required=True, help="export directory (exported here if missing or stale)")
    settings_mod.add_arguments(p)


def cmd_serve(args) -> int:
    from .launch import prepared_repository, serve_forever, status_lines
    from .server import TritonServer

    settings = settings_mod.from_arguments(args)
    with prepared_repository(args.repository, args.onnx, settings, weights=args.weights) as repo:
        server = TritonServer(
            repo, http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port, log_path=args.log
        )
        with server:
            print("tritonserver is ready (Ctrl-C stops it)\n  " + "\n  ".join(status_lines(server)), flush=True)
            return serve_forever(server)


def cmd_demo(args) -> int:
    from .demo import run_demo

    report = run_demo(
        args.video,
        args.out,
        template=args.repository,
        onnx_dir=args.onnx,
        settings=settings_mod.from_arguments(args),
        max_frames=args.max_frames,
        refresh=RefreshPolicy.from_arguments(args),
        progress=lambda line: print(line, flush=True),
    )
    print(
        f"\ndemo: {report.frames} frames, {report.kbps:.1f} kbit/s, decoded at {report.fps_decoded:.1f} fps, "
        f"latency p50 {report.latency_ms_p50:.0f} ms → {args.out}/ (decoded.mp4, side_by_side.mp4, summary.md)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facecodec.serving", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="export if missing, then serve until Ctrl-C")
    _common(p)
    p.add_argument("--weights", type=Path, help="facecodec .safetensors weights (default: shipped weights)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--log", type=Path, help="server log file (default: a temporary file)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="export, serve, one real-time call, results to --out, stop")
    _common(p)
    p.add_argument("--video", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-frames", type=int)
    RefreshPolicy.add_arguments(p)
    p.set_defaults(func=cmd_demo)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="      %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:  # one clear message, no traceback
        logging.getLogger("facecodec.serving").error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
