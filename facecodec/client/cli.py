"""Thin gRPC clients of the served codec: `python -m facecodec.client {encode,decode,call,reenact,freeview}`
(also `clients/<command>.py`). Shared flags: -u/--url, -t/--timeout, -v, and --tls-ca/--tls-cert/--tls-key
for a server that speaks TLS."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..bitstream.auth import add_key_argument, read_key
from ..bitstream.refresh import RefreshPolicy
from ..codec.pipeline import ViewEdit
from ..commands import run_command
from ..expression import add_expression_argument, expression_sender
from . import calls
from .link import LinkModel
from .remote import DEFAULT_URL
from .tls import ClientTls

log = logging.getLogger("facecodec.client")


def _shared(top: bool) -> argparse.ArgumentParser:
    """-u/-t/-v, accepted before or after the command (after it, only when given, so that a value
    given before the command is not overwritten by the command's default)."""
    p = argparse.ArgumentParser(add_help=False)
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    p.add_argument("-u", "--url", default=default(DEFAULT_URL), help=f"Triton gRPC address (default {DEFAULT_URL})")
    p.add_argument("-t", "--timeout", type=float, default=default(60.0), help="seconds to wait for a response (60)")
    p.add_argument("-v", "--verbose", action="store_true", default=default(False))
    tls = p.add_argument_group("TLS (a server started with --tls-cert)")
    tls.add_argument("--tls-ca", type=Path, default=default(None),
                     help="CA certificate (PEM) that signed the server's certificate")
    tls.add_argument("--tls-cert", type=Path, default=default(None), help="this client's certificate (PEM), mutual TLS")
    tls.add_argument("--tls-key", type=Path, default=default(None), help="this client's private key (PEM), mutual TLS")
    tls.add_argument("--tls", action="store_true", default=default(False),
                     help="TLS, the server's certificate checked against the system's CAs")
    return p


def _view_args(p: argparse.ArgumentParser) -> None:
    for axis in ("yaw", "pitch", "roll"):
        p.add_argument(f"--{axis}", type=float, help=f"free view: render at this {axis} (degrees, ±30)")
    p.add_argument("--frontalise", action="store_true", help="free view: face the camera")


def _view(args) -> ViewEdit | None:
    override = (args.yaw, args.pitch, args.roll)
    if override == (None, None, None) and not args.frontalise:
        return None
    return ViewEdit(override=override, frontalise=args.frontalise)


def cmd_encode(args, conn) -> int:
    encoder = calls.encode(conn, args.video, args.out, max_frames=args.max_frames, target_kbps=args.kbps,
                           refresh=RefreshPolicy.from_arguments(args), expression=expression_sender(args.expression),
                           key=read_key(args.key_file) if args.key_file else None)
    stats = encoder.stats
    motion = stats.kbps(keyframes=False)
    print(f"{args.out}: {stats.frames} frames, {stats.kbps():.1f} kbit/s ({motion:.1f} without the keyframe)")
    return 0


def cmd_decode(args, conn) -> int:
    frames = calls.decode(conn, args.stream, args.out, view=_view(args),
                          key=read_key(args.key_file) if args.key_file else None)
    print(f"{args.out}: {len(frames)} frames")
    return 0


def cmd_call(args, conn) -> int:
    report = calls.call(
        conn,
        args.video,
        args.out,
        max_frames=args.max_frames,
        realtime=not args.no_realtime,
        target_kbps=args.kbps,
        refresh=RefreshPolicy.from_arguments(args),
        progress=print,
        expression=expression_sender(args.expression),
        authenticate=args.authenticate,
        live=not args.no_drop,
        adapt_rate=not args.fixed_rate,
        link=LinkModel.from_arguments(args),
    ).report
    summary = report.as_dict()
    if args.out:
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"{report.frames} frames at {report.fps_target:g} fps: {report.frames_delivered} delivered, "
        f"{report.frames_dropped} dropped, {report.frames_sent} sent; decoded {report.fps_decoded:.1f} fps, "
        f"latency p50 {report.latency_ms_p50:.0f} ms / p95 {report.latency_ms_p95:.0f} ms, {report.kbps:.1f} kbit/s "
        f"({report.kbps_motion:.1f} without the keyframe), PSNR vs input {report.psnr_db:.1f} dB"
    )
    if report.packets_rejected:
        print("packets rejected: " + ", ".join(f"{k} {v}" for k, v in report.packets_rejected.items()))
    return 0


def cmd_reenact(args, conn) -> int:
    frames = calls.reenact(conn, args.portrait, args.driving, args.out, max_frames=args.max_frames,
                           expression=expression_sender(args.expression))
    print(f"{args.out}: {len(frames)} frames")
    return 0


def cmd_freeview(args, conn) -> int:
    frames = calls.freeview(
        conn,
        args.portrait,
        args.out,
        axes=tuple(args.axes),
        amplitude=args.amplitude,
        frames_per_axis=args.frames,
        frontalise=args.frontalise,
    )
    print(f"{args.out}: {len(frames)} frames")
    return 0


def build_parser() -> argparse.ArgumentParser:
    shared = _shared(top=False)
    parser = argparse.ArgumentParser(
        prog="python -m facecodec.client", description=__doc__, parents=[_shared(top=True)]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("encode", parents=[shared], help="video → motion_encoder → stream file")
    p.add_argument("video", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True, help="stream file to write")
    p.add_argument("--max-frames", type=int)
    p.add_argument("--kbps", type=float, help="target motion bit rate (default: fixed quantiser)")
    RefreshPolicy.add_arguments(p)
    add_expression_argument(p)
    add_key_argument(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", parents=[shared], help="stream file → decoder session → MP4")
    p.add_argument("stream", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True, help="MP4 to write")
    _view_args(p)
    add_key_argument(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("call", parents=[shared], help="sender + receiver of one call, paced in real time")
    p.add_argument("video", type=Path)
    p.add_argument("-o", "--out", type=Path, help="folder for decoded.mp4, side_by_side.mp4, stream.fcdc, summary.json")
    p.add_argument("--max-frames", type=int)
    p.add_argument("--kbps", type=float, help="target motion bit rate (default: fixed quantiser)")
    p.add_argument("--no-realtime", action="store_true", help="send frames as fast as possible")
    p.add_argument("--no-drop", action="store_true",
                   help="decode every frame however late (offline); default: live, the newest motion when behind")
    p.add_argument("--fixed-rate", action="store_true", help="the sender keeps its rate when the receiver is behind")
    LinkModel.add_arguments(p)
    RefreshPolicy.add_arguments(p)
    add_expression_argument(p)
    p.add_argument("--authenticate", action="store_true",
                   help="tag every packet with a fresh per-call key; the receiver drops any that does not verify")
    p.set_defaults(func=cmd_call)

    p = sub.add_parser("reenact", parents=[shared], help="portrait driven by another person's video")
    p.add_argument("portrait", type=Path, help="image, or a video whose first frame is used")
    p.add_argument("driving", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--max-frames", type=int)
    add_expression_argument(p)
    p.set_defaults(func=cmd_reenact)

    p = sub.add_parser("freeview", parents=[shared], help="portrait under yaw/pitch/roll sweeps or frontalised")
    p.add_argument("portrait", type=Path, help="image, or a video whose first frame is used")
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument(
        "--axes",
        nargs="*",
        choices=("yaw", "pitch", "roll"),
        default=["yaw"],
        help="angles to sweep (none: one frame, e.g. with --frontalise)",
    )
    p.add_argument("--amplitude", type=float, default=30.0, help="degrees, at most 30")
    p.add_argument("--frames", type=int, default=50, help="frames per swept axis")
    p.add_argument("--frontalise", action="store_true", help="zero the portrait's angles first")
    p.set_defaults(func=cmd_freeview)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    conn = calls.Connection(args.url, args.timeout, args.verbose, tls=ClientTls.from_arguments(args))
    return run_command(lambda: args.func(args, conn), log)  # ClientError is a RuntimeError


if __name__ == "__main__":
    sys.exit(main())
