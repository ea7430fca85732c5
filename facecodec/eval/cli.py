"""`facecodec eval` and `facecodec freeview-grid`: argument parsing only; the work is in `run`/`freeview`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..bitstream.keyframe import add_keyframe_quality_argument
from ..expression import add_expression_argument
from ..bitstream.refresh import RefreshPolicy
from ..codec.refine import RefineConfig, add_refine_argument


def load_model(args: argparse.Namespace):
    """The networks named by --preset/--weights/--checkpoint, with a label of the weights used."""
    from ..codec.pipeline import TorchNetworks
    from ..weights import build_model, file_sha256, weights_path
    from .run import ModelInfo

    model = build_model(args.preset, checkpoint=args.checkpoint, weights=args.weights)
    path = weights_path(args.preset, checkpoint=args.checkpoint, weights=args.weights)
    label = f"reference checkpoint `{path}`" if args.checkpoint is not None else f"`{path}`"
    if path is not None and Path(path).is_file():  # the digest, so saved clips of other weights are not read back
        label += f" (sha256 {file_sha256(path)[:12]})"
    return ModelInfo(TorchNetworks(model), model.cfg.name, model.cfg.num_kp, label)


def cmd_eval(args: argparse.Namespace) -> int:
    from .run import run_eval, validation_clips

    if args.videos is not None:
        clips = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in {".mp4", ".mkv", ".mov", ".avi"})
        clips_from = f"all videos in `{args.videos}`"
    else:
        clips = validation_clips(args.manifest)
        clips_from = f"validation identities of `{args.manifest}` (facecodec.identity_split)"
    doc = run_eval(load_model(args), clips[: args.max_clips], args.report, clips_from=clips_from,
                   max_frames=args.max_frames, lpips_nets=tuple(args.lpips), identity=not args.no_aed,
                   videos=not args.no_videos, freeview_image=args.freeview, transfer=args.transfer,
                   refresh=RefreshPolicy.from_arguments(args), keyframe_quality=args.keyframe_quality,
                   refine=RefineConfig(steps=args.refine) if args.refine > 0 else None, expression=args.expression)
    print(args.report / "report.md")
    for output in ("model", "baseline"):
        print(output, {k: round(v, 4) for k, v in doc["mean"][output].items()})
        print(f"{output} mouth and eyes", {k: round(v, 3) for k, v in doc["mean_expression"][output].items()})
    return 0


def cmd_freeview_grid(args: argparse.Namespace) -> int:
    from ..landmarks import FaceLandmarker
    from ..media import read_still
    from .freeview import evaluate_freeview, save_grid
    from .report import write_json

    model = load_model(args)
    with FaceLandmarker() as landmarker:
        result = evaluate_freeview(model.networks, read_still(args.image), landmarker)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    weights = model.weights.replace("*", "").replace("`", "")  # markdown label → plain text
    save_grid(args.out, result, title=f"free view, {args.preset} weights: {weights}")
    write_json(args.out.with_suffix(".json"), {"image": str(args.image), "weights": model.weights, **result.to_dict()})
    print(args.out)
    return 0


def add_eval_parsers(sub, add_model_args) -> None:
    """Register `eval` and `freeview-grid` on the top-level subparsers."""
    p = sub.add_parser("eval", help="self-reenactment quality vs the repeated-source baseline, free view, transfer")
    add_model_args(p)
    clips = p.add_mutually_exclusive_group(required=True)
    clips.add_argument("--videos", type=Path, help="evaluate every video in this folder")
    clips.add_argument("--manifest", type=Path, help="MANIFEST.tsv of the face data: evaluate its validation split")
    p.add_argument("--report", type=Path, required=True, help="output folder (report.md, metrics.json, ...)")
    p.add_argument("--max-frames", type=int, default=None, help="first N frames of each clip (default: all)")
    p.add_argument("--max-clips", type=int, default=None)
    p.add_argument("--lpips", nargs="+", choices=["alex", "vgg"], default=["alex", "vgg"])
    p.add_argument("--no-aed", action="store_true", help="skip identity embeddings (dlib)")
    p.add_argument("--no-videos", action="store_true", help="skip the side-by-side MP4s")
    add_keyframe_quality_argument(p)
    add_expression_argument(p)
    RefreshPolicy.add_arguments(p)
    add_refine_argument(p)
    p.add_argument("--freeview", type=Path, metavar="IMAGE",
                   help="also render and measure the free-view grid (an image, or a video's first frame)")
    p.add_argument("--transfer", type=Path, nargs=2, metavar=("PORTRAIT", "DRIVER"),
                   help="also drive PORTRAIT (image, or a video's first frame) with DRIVER (video) and measure "
                   "identity")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("freeview-grid", help="PNG grid of one face at yaw/pitch/roll ±30° and frontalised")
    add_model_args(p)
    p.add_argument("--image", type=Path, required=True, help="an image, or a video (its first frame)")
    p.add_argument("--out", type=Path, default=Path("docs/figures/freeview_grid.png"))
    p.set_defaults(func=cmd_freeview_grid)
