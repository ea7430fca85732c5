"""`python -m facecodec.serving serve | prepare`: what `make serve` runs (`make demo` is `python -m
facecodec.tools.demo`), and a Kubernetes pod's two steps: `prepare` renders the repository in an init
container, `serve --prepared` serves it read-only and drains on SIGTERM (k8s/, docs/kubernetes.md)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from ..commands import run_command
from . import security
from . import settings as settings_mod
from .launch import add_repository_arguments


def cmd_serve(args) -> int:
    from .launch import prepared_repository, serve_forever, status_lines
    from .security import server_from_arguments
    from .server import TritonServer

    tls, admin_key = server_from_arguments(args)

    if args.prepared:
        repo_context = contextlib.nullcontext(args.prepared)
    else:
        if args.repository is None or args.onnx is None:
            raise ValueError("serve needs --repository and --onnx, or --prepared DIR")
        settings = settings_mod.from_arguments(args)
        repo_context = prepared_repository(args.repository, args.onnx, settings, weights=args.weights)
    with repo_context as repo:
        server = TritonServer(
            repo, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
            log_path=args.log, drain_seconds=args.drain_seconds, tls=tls, admin_key=admin_key,
        )
        with server:
            print("tritonserver is ready (Ctrl-C stops it)\n  " + "\n  ".join(status_lines(server)), flush=True)
            return serve_forever(server)


def cmd_prepare(args) -> int:
    from .launch import prepare

    print(prepare(args.repository, args.onnx, settings_mod.from_arguments(args), args.out, weights=args.weights))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facecodec.serving", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="export if missing, then serve until Ctrl-C (SIGTERM drains)")
    add_repository_arguments(p, required=False)
    p.add_argument("--prepared", type=Path, help="serve this repository as it is (from `prepare`; may be read-only)")
    p.add_argument("--weights", type=Path, help="facecodec .safetensors weights (default: shipped weights)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback; a pod: 0.0.0.0)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--log", type=Path, help="server log file, '-' for stdout (default: a temporary file)")
    p.add_argument(
        "--drain-seconds", type=float, default=None,
        help="on SIGTERM, serve live call sessions for up to this long (tritonserver --exit-timeout-secs; "
        "default: Triton's 30 s)",
    )
    security.add_server_arguments(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("prepare", help="render a servable repository (configs + ONNX) into --out, export if needed")
    add_repository_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="the repository to write (e.g. a pod's volume)")
    p.add_argument("--weights", type=Path, help="facecodec .safetensors weights (default: shipped weights)")
    p.set_defaults(func=cmd_prepare)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="      %(name)s: %(message)s")
    return run_command(lambda: args.func(args), logging.getLogger("facecodec.serving"))


if __name__ == "__main__":
    sys.exit(main())
