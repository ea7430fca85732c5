"""`python -m facecodec.serving serve`: what `make serve` runs (`make demo` is `python -m facecodec.tools.demo`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..commands import run_command
from . import settings as settings_mod
from .launch import add_repository_arguments


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facecodec.serving", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="export if missing, then serve until Ctrl-C")
    add_repository_arguments(p)
    p.add_argument("--weights", type=Path, help="facecodec .safetensors weights (default: shipped weights)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--log", type=Path, help="server log file (default: a temporary file)")
    p.set_defaults(func=cmd_serve)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="      %(name)s: %(message)s")
    return run_command(lambda: args.func(args), logging.getLogger("facecodec.serving"))


if __name__ == "__main__":
    sys.exit(main())
