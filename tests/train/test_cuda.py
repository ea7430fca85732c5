"""`facecodec train --device cuda`: a step with every loss term, validation, sample grids and a resume
all run on the GPU (device mismatches only show there), and steps lower the loss as on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecodec.train.forward import random_affine, random_views
from facecodec.train.loop import build_state, load_checkpoint, optimise_on, save_checkpoint
from facecodec.train.losses import TrainingLoss
from facecodec.perceptual import StLpips
from facecodec.train.validate import ValidationSet, validate
from facecodec.train.viz import sample_grid
from .test_step import CFG, _fixed_batch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _cuda_state(tiny_config):
    state = build_state(CFG, tiny_config)
    state.model.to("cuda")
    state.device = "cuda"
    return state


def test_steps_with_every_term_lower_the_loss_on_cuda(tiny_config):
    torch.manual_seed(0)
    state = _cuda_state(tiny_config)
    loss_fn = TrainingLoss(CFG.losses).to("cuda")
    batch = _fixed_batch()
    theta = random_affine(4, 10, 0.1, 0.1, generator=torch.Generator().manual_seed(0))
    views = random_views(2, np.random.default_rng(0), 30.0, 0.5)
    pose_frames = (batch.drivings.flatten(0, 1), batch.pose_labels[2:])
    steps = [optimise_on(state, loss_fn, batch, theta, CFG.grad_clip, views, pose_frames) for _ in range(6)]
    assert all(np.isfinite(v) for terms in steps for v in terms.values())
    assert steps[-1]["freeview_flow"] > 0 and steps[-1]["head_pose_bins_frames"] > 0
    assert np.mean([s["total"] for s in steps[-2:]]) < 0.8 * steps[0]["total"]


def test_validation_samples_and_resume_on_cuda(tiny_config, tmp_path):
    state = _cuda_state(tiny_config)
    loss_fn = TrainingLoss(CFG.losses).to("cuda")
    batch = _fixed_batch()
    theta = random_affine(4, 10, 0.1, 0.1, generator=torch.Generator().manual_seed(0))
    optimise_on(state, loss_fn, batch, theta, CFG.grad_clip)
    val = ValidationSet(batch.sources.cuda(), batch.drivings.cuda())
    result = validate(state.model, val, {"alex": StLpips("alex").cuda()})
    assert all(np.isfinite(v) for v in result.values())
    sample_grid(state.model, val.sources, val.drivings[:, :1], tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0

    save_checkpoint(state, tmp_path / "checkpoint.pt")
    resumed = _cuda_state(tiny_config)  # the order `train` uses: model on the GPU, then the checkpoint
    load_checkpoint(resumed, tmp_path / "checkpoint.pt")
    assert resumed.step == 1
    terms = optimise_on(resumed, loss_fn, batch, theta, CFG.grad_clip)  # fused Adam needs its state on the GPU
    assert np.isfinite(terms["total"]) and resumed.step == 2
