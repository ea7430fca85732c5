"""`make demo` (`python -m facecodec.tools.demo`): networks exported (if missing), tritonserver
started, one real-time call on a clip through it, the results written to a folder, the server stopped."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

from ..bitstream import RefreshPolicy
from ..client.calls import CallReport, Connection, call
from ..commands import run_command
from ..expression import ExpressionSender, add_expression_argument, expression_sender
from ..serving import settings as settings_mod
from ..serving.launch import add_repository_arguments, prepared_repository, status_lines
from ..serving.server import TritonServer
from ..serving.settings import ServingSettings


def run_demo(
    video: Path,
    out_dir: Path,
    *,
    template: Path,
    onnx_dir: Path,
    settings: ServingSettings,
    max_frames: int | None = None,
    refresh: RefreshPolicy | None = None,
    progress: Callable[[str], None] = print,
    expression: ExpressionSender | None = None,
    live: bool = True,
) -> CallReport:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress(f"[1/4] networks: {onnx_dir} (preset {settings.preset}; exported now if missing or stale)")
    with prepared_repository(template, onnx_dir, settings) as repo:
        progress(f"[2/4] starting tritonserver on free loopback ports (repository {repo})")
        with TritonServer(repo, log_path=out_dir / "tritonserver.log", settle=True) as server:
            for line in status_lines(server):
                progress("      " + line)
            mode = "live: the receiver renders the newest motion" if live else "--no-drop: every frame decoded"
            progress(f"[3/4] call: {video} → motion_encoder → packets → decoder session, paced in real time ({mode})")
            report = call(
                Connection(server.grpc_url),
                video,
                out_dir,
                max_frames=max_frames,
                refresh=refresh,
                progress=lambda line: progress("      " + line),
                expression=expression,
                live=live,
            ).report
            progress("[4/4] stopping tritonserver")
    write_summary(report, out_dir, video)
    return report


def write_summary(report: CallReport, out_dir: Path, video: Path) -> None:
    (out_dir / "summary.json").write_text(json.dumps({"video": str(video), **report.as_dict()}, indent=1) + "\n")
    rows = [
        ("clip", f"{video} ({report.frames} frames at {report.fps_target:g} fps)"),
        (
            "bit rate",
            f"{report.kbps:.1f} kbit/s ({report.kbps_motion:.1f} kbit/s motion; "
            f"{report.keyframe_bytes} B in {report.keyframes} source keyframe{'s' if report.keyframes > 1 else ''})",
        ),
        ("decoded frame rate", f"{report.fps_decoded:.1f} fps"),
        ("frames", frame_counts(report)),
        ("latency capture → decoded frame", f"p50 {report.latency_ms_p50:.0f} ms, p95 {report.latency_ms_p95:.0f} ms"
                                            f", p99 {report.latency_ms_p99:.0f} ms (frames delivered)"),
        ("PSNR decoded vs input", f"{report.psnr_db:.1f} dB"),
        *((name, path) for name, path in report.outputs.items()),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    (out_dir / "summary.md").write_text(f"# facecodec demo call\n\n| | |\n| --- | --- |\n{table}\n")


def frame_counts(report: CallReport) -> str:
    mode = "live" if report.live else "--no-drop"
    return (f"{report.frames_delivered} delivered, {report.frames_dropped} dropped by the receiver, "
            f"{report.frames_sent} of {report.frames} captured sent, {report.frames_lost} lost on the link ({mode})")


def cmd_demo(args: argparse.Namespace) -> int:
    report = run_demo(
        args.video,
        args.out,
        template=args.repository,
        onnx_dir=args.onnx,
        settings=settings_mod.from_arguments(args),
        max_frames=args.max_frames,
        refresh=RefreshPolicy.from_arguments(args),
        progress=lambda line: print(line, flush=True),
        expression=expression_sender(args.expression),
        live=not args.no_drop,
    )
    print(
        f"\ndemo: {report.frames} frames, {report.kbps:.1f} kbit/s, decoded at {report.fps_decoded:.1f} fps "
        f"({frame_counts(report)}), latency p50 {report.latency_ms_p50:.0f} ms, p95 {report.latency_ms_p95:.0f} ms "
        f"→ {args.out}/ (decoded.mp4, side_by_side.mp4, summary.md)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facecodec.tools.demo", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    add_repository_arguments(p)
    p.add_argument("--video", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-frames", type=int)
    p.add_argument("--no-drop", action="store_true",
                   help="decode every frame however late (offline); default: live, the newest motion when behind")
    RefreshPolicy.add_arguments(p)
    add_expression_argument(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="      %(name)s: %(message)s")
    return run_command(lambda: cmd_demo(args), logging.getLogger("facecodec.demo"))


if __name__ == "__main__":
    sys.exit(main())
