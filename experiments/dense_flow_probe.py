"""Capacity probe for the dense-flow term: can the motion network fit DIS optical flow on one batch?

    .venv/bin/python experiments/dense_flow_probe.py [--train motion|all] [--steps 120] [--lr 1e-3]

One fixed batch of training pairs (2 sources × 4 driving frames, no augmentation, seed 1), the
shipped weights, BatchNorm statistics frozen, and only `train.dense_flow.dense_flow_loss` to
minimise. If the term cannot fall here, the architecture cannot follow the flow and no amount of
training with `--dense-flow` will help; if it falls, what a run lacks is steps. Prints the term
every 10 steps. Needs the face data (`../shared/data/faces`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from facecodec.train.cli import DEFAULT_CACHE
from facecodec.train.config import LossWeights, TrainConfig
from facecodec.train.data import PairSampler
from facecodec.train.dense_flow import dense_flow_loss, dense_flow_targets
from facecodec.train.forward import run_model
from facecodec.train.loop import RunPaths, prepare_run
from facecodec.weights import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/faces/train"))
    parser.add_argument("--train", choices=["motion", "all"], default="motion", help="which networks learn")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = TrainConfig(losses=LossWeights(dense_flow=1.0))
    clips, _, poses, landmarks = prepare_run(cfg, RunPaths(args.data, Path("runs/dense-flow-probe"), DEFAULT_CACHE))
    batch = PairSampler(clips, 4, np.random.default_rng(1), augment=False, poses=poses, landmarks=landmarks).sample(2)
    targets = dense_flow_targets(batch.sources, batch.drivings, batch.landmarks)
    model = build_model("lite").train()
    for module in model.modules():  # one batch would skew the running statistics
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    learning = list((model.motion if args.train == "motion" else model).parameters())
    model.requires_grad_(False)
    for p in learning:
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(learning, lr=args.lr)
    for step in range(args.steps + 1):
        loss = dense_flow_loss(run_model(model, batch.sources, batch.drivings).deformation, *targets)
        if step % 10 == 0 or step == args.steps:
            print(f"step {step:4d}  dense flow {loss.item():.4f} (normalised units; 1 px = 0.0078)", flush=True)
        if step == args.steps:
            break
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


if __name__ == "__main__":
    main()
