"""Arguments and command of `facecodec train` (registered by `facecodec.cli`)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..presets import PRESETS, get_preset

DEFAULT_CACHE = Path.home() / ".cache" / "facecodec" / "frames"


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a preset on talking-head clips (self-supervised, resumable)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="lite")
    p.add_argument("--data", type=Path, required=True, help="folder of training clips; MANIFEST.tsv beside it")
    p.add_argument("--out", type=Path, required=True, help="run directory (checkpoint, logs, samples)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--steps", type=int, default=100_000, help="total steps to reach (counting resumed ones)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt when present")
    p.add_argument("--lr", type=float, help="learning rate (default: TrainConfig.lr); also applies on --resume, "
                   "e.g. to finish a run at a lower rate")
    p.add_argument("--init-from", type=Path, metavar="CHECKPOINT",
                   help="start from another run's checkpoint.pt or from weights (.safetensors, e.g. the shipped "
                   "weights/lite.safetensors): weights only, fresh optimiser, step 0")
    p.add_argument("--sources-per-batch", type=int,
                   help="sources per step, each with its drivings (default: TrainConfig; raise it on a GPU)")
    p.add_argument("--pose-balance", type=float,
                   help="0…1: draw large head turns more often (1 = every 10° |yaw| bin alike; default 0)")
    p.add_argument("--face-crop", type=float, metavar="WEIGHT",
                   help="weight of the full-resolution face-crop loss (LossWeights.face_crop; default 0 = off)")
    p.add_argument("--decoder-loss", type=float, metavar="WEIGHT",
                   help="weight of the loss on the decoder's own image before the blend (LossWeights.decoder; "
                   "default 0 = off)")
    p.add_argument("--dense-flow", type=float, metavar="WEIGHT",
                   help="weight of the loss that asks the flow to follow DIS optical flow on the driving face "
                   "(LossWeights.dense_flow, facecodec.train.dense_flow; default 0 = off)")
    p.add_argument("--expression", action="store_true",
                   help="render with the expression channel's flow (mouth, eyes: facecodec.expression) in the loop")
    p.add_argument("--expression-region", type=float, metavar="WEIGHT",
                   help="perceptual + L1 on mouth and eye crops at full resolution (default 0: off)")
    p.add_argument("--max-minutes", type=float, help="stop (checkpoint, export) after this much wall time")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="decoded-frame cache (uint8 .npy)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads; on a shared, loaded CPU one thread ran 10× faster than two (no barrier waits)")
    p.add_argument("--prefetch", type=int, metavar="STEPS",
                   help="prepare this many steps' batches ahead on a background thread (default: 2 with --device "
                   "cuda, where the GPU would wait for them; 0 on the CPU, whose cores the step already uses)")
    p.add_argument("--export", type=Path, help="after training, write fp16 weights (.safetensors) here")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from .config import TrainConfig
    from .publish import export_weights
    from .loop import RunPaths, train

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: this torch build sees no CUDA GPU (CPU wheel, or no driver); "
                             "leave --device out to train on the CPU")
    cfg = dataclasses.replace(TrainConfig(), preset=args.preset, threads=args.threads)
    if args.lr is not None:
        cfg = dataclasses.replace(cfg, lr=args.lr)
    if args.face_crop is not None:
        cfg = dataclasses.replace(cfg, losses=dataclasses.replace(cfg.losses, face_crop=args.face_crop))
    if args.decoder_loss is not None:
        if args.decoder_loss and not get_preset(args.preset).generator.source_skip:
            raise SystemExit(f"--decoder-loss: preset {args.preset!r} blends no source image in, so its decoder's "
                             "image is the output, already under the perceptual and L1 losses; leave it out")
        cfg = dataclasses.replace(cfg, losses=dataclasses.replace(cfg.losses, decoder=args.decoder_loss))
    if args.dense_flow is not None:
        cfg = dataclasses.replace(cfg, losses=dataclasses.replace(cfg.losses, dense_flow=args.dense_flow))
    if args.expression:
        cfg = dataclasses.replace(cfg, expression_channel=True)
    if args.expression_region is not None:
        cfg = dataclasses.replace(cfg, losses=dataclasses.replace(cfg.losses, expression_region=args.expression_region))
    if args.pose_balance is not None:
        cfg = dataclasses.replace(cfg, pose_balance=args.pose_balance)
    prefetch = args.prefetch if args.prefetch is not None else (2 if args.device == "cuda" else 0)
    if prefetch < 0:
        raise SystemExit(f"--prefetch: expected 0 or more steps, got {prefetch}")
    cfg = dataclasses.replace(cfg, prefetch=prefetch)
    if args.sources_per_batch is not None:
        cfg = dataclasses.replace(cfg, sources_per_batch=args.sources_per_batch)
    state = train(cfg, RunPaths(args.data, args.out, args.cache), args.steps, resume=args.resume, device=args.device,
                  init_from=args.init_from, max_minutes=args.max_minutes)
    if args.export:
        print(export_weights(state, args.out, args.export))
    return 0
