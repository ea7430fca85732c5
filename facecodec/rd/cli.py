"""Arguments and command of `facecodec rd` (registered by `facecodec.cli`)."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

from ..presets import PRESETS
from .anchors import ANCHORS, DEFAULT_ANCHORS

log = logging.getLogger("facecodec.rd")


def _names(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def add_rd_parser(sub) -> None:
    p = sub.add_parser("rd", help="rate–distortion comparison against x264/x265/AV1 anchors; writes a report")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos", nargs="+", help="video files and/or folders of .mp4")
    src.add_argument("--manifest", type=Path, help="data MANIFEST.tsv: use clips of the validation identities")
    src.add_argument("--from-json", type=Path, help="re-write report and plots from an earlier rd.json (no measuring)")
    p.add_argument("--num-clips", type=int, default=3, help="with --manifest: how many validation identities")
    p.add_argument("--report", type=Path, required=True, help="output folder (report.md, rd.json, plots)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="lite")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--weights", type=Path, help="facecodec .safetensors weights (default: shipped weights)")
    model.add_argument("--checkpoint", type=Path, help="public face-vid2vid checkpoint (vox256 only)")
    p.add_argument("--max-frames", type=int, default=100)
    p.add_argument("--codecs", type=_names, default=list(DEFAULT_ANCHORS),
                   help=f"comma-separated anchors from {','.join(ANCHORS)}")
    p.add_argument("--lpips", default="alex:1", help="stLPIPS networks and frame strides, e.g. alex:4,vgg:20 "
                   "(LPIPS on every N-th frame; PSNR and SSIM use every frame)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    p.add_argument("--settings", help="facecodec settings to sweep, ';'-separated labels (default: the "
                   "standard sweep, which includes the default and the pre-issue-21 stream), e.g. "
                   "'q24, avif50;q24, kf90, legacy'")
    p.add_argument("--no-expression", dest="expression", action="store_false",
                   help="leave the expression channel out of facecodec's streams (on by default, as in a call)")
    p.add_argument("--anchors-from", type=Path, help="rd.json of an earlier run on the same clips, frames and "
                   "--lpips: reuse its anchor points (e.g. to re-measure facecodec with new weights)")
    p.set_defaults(func=cmd_rd)


def cmd_rd(args: argparse.Namespace) -> int:
    import torch

    from ..codec.pipeline import TorchNetworks
    from ..weights import build_model, weights_path
    from .neural import DEFAULT_SETTING, DEFAULT_SWEEP, NeuralSetting
    from .quality import LpipsPlan
    from .report import RdRun, write_report
    from .sweep import Sweep, find_videos, load_clip, validation_videos

    if args.from_json:
        return _rewrite(args.from_json, args.report)
    for codec in args.codecs:
        if codec not in ANCHORS:
            raise ValueError(f"unknown anchor codec {codec!r}; choose from {','.join(ANCHORS)}")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    paths = (validation_videos(args.manifest, args.num_clips, args.max_frames) if args.manifest
             else find_videos(args.videos))
    model = build_model(args.preset, checkpoint=args.checkpoint, weights=args.weights)
    weights_file = weights_path(args.preset, checkpoint=args.checkpoint, weights=args.weights)
    weights = weights_info(weights_file, reference=args.checkpoint is not None)
    plan = LpipsPlan.parse(args.lpips)
    from ..expression import expression_sender

    settings = DEFAULT_SWEEP
    if args.settings:
        settings = tuple(NeuralSetting.from_label(label.strip()) for label in args.settings.split(";"))
        if DEFAULT_SETTING not in settings:
            raise ValueError(f"--settings must include the default setting {DEFAULT_SETTING.label!r}")
    sweep = Sweep(TorchNetworks(model), args.preset, model.cfg.num_kp, args.codecs, settings, lpips=plan,
                  expression=expression_sender(args.expression))
    cached = _cached_anchor_points(args.anchors_from, plan) if args.anchors_from else {}
    points, quantisation, clips = [], {}, []
    for path in paths:
        clip = load_clip(path, args.max_frames)
        clips.append({"name": clip.name, "path": str(path), "frames": len(clip.frames), "fps": clip.fps,
                      "seconds": clip.seconds})
        clip_points, gap = sweep.run(clip, cached.get((clip.name, len(clip.frames)), []))
        points += clip_points
        if gap is not None:
            quantisation[clip.name] = gap
    command = shlex.join(["facecodec", *sys.argv[1:]]) if "rd" in sys.argv[1:] else "facecodec rd (in-process call)"
    run = RdRun(command, args.preset, weights, clips, plan, list(args.codecs), points, quantisation,
                time.perf_counter() - start)
    for path in write_report(run, args.report).values():
        print(path)
    return 0


def _cached_anchor_points(path: Path, plan) -> dict:
    """{(clip name, frames): anchor RdPoints} of an earlier rd.json measured with the same LPIPS plan."""
    import json

    from .sweep import FACECODEC, RdPoint

    data = json.loads(Path(path).read_text())
    if data.get("lpips_frame_strides") != dict(plan.strides):
        raise ValueError(f"{path} was measured with LPIPS {data.get('lpips_frame_strides')}, not {dict(plan.strides)}")
    frames = {c["name"]: c["frames"] for c in data["clips"]}
    out: dict = {}
    for p in data["points"]:
        if p["codec"] != FACECODEC:
            out.setdefault((p["clip"], frames[p["clip"]]), []).append(RdPoint.from_json(p))
    return out


def _rewrite(path: Path, out: Path) -> int:
    import json

    from .report import RdRun, write_report

    for written in write_report(RdRun.from_json(json.loads(Path(path).read_text())), out).values():
        print(written)
    return 0


def weights_info(path: Path | None, *, reference: bool = False) -> dict:
    """{"kind", "path", "sha256"} of the weights measured; kind says random / reference / how long trained."""
    from ..weights import file_sha256

    if path is None:
        return {"kind": "random (seed 0) — no weights file found", "path": None, "sha256": None}
    kind = "reference checkpoint"
    if not reference:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        kind = "trained"
        if "steps" in meta:
            wall = f", {float(meta['train_wall_s']) / 60:.0f} min" if "train_wall_s" in meta else ""
            kind += f" ({meta['steps']} steps{wall})"
    return {"kind": kind, "path": str(path), "sha256": file_sha256(path)}
