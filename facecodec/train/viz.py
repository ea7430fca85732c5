"""Training pictures: sample grids (source | driving | generated | warped source | occlusion | blend)
and the loss plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..media import to_frames
from ..models import FaceVid2Vid
from ..models.generator import warp_image
from .forward import run_model

GRID_COLUMNS = ("source", "driving", "generated", "warped source", "occlusion", "blend mask")


@torch.no_grad()
def sample_grid(model: FaceVid2Vid, sources: torch.Tensor, drivings: torch.Tensor, path: Path) -> None:
    """One row per (source, driving) pair; masks in grey, white = trusted / taken from the source."""
    captured = {}
    hook = model.generator.decoder.register_forward_hook(lambda m, i, o: captured.update(blend=o[1]))
    was_training = model.training
    model.eval()
    try:
        out = run_model(model, sources, drivings)
    finally:
        hook.remove()
        model.train(was_training)
    n, size = drivings.shape[1], sources.shape[-1]
    grey = lambda m: F.interpolate(m, size=(size, size), mode="bilinear").expand(-1, 3, -1, -1)  # noqa: E731
    blend = captured.get("blend")
    columns = [
        sources.repeat_interleave(n, 0),
        drivings.flatten(0, 1),
        out.generated,
        warp_image(sources.repeat_interleave(n, 0), out.deformation, size),
        grey(out.occlusion),
        grey(blend) if blend is not None else torch.zeros_like(out.generated),
    ]
    rows = np.concatenate([np.concatenate(list(to_frames(c)), axis=0) for c in columns], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rows).save(path)


def plot_losses(log_path: Path, out_path: Path, val_path: Path | None = None) -> None:
    """Weighted total and each unweighted term against step (log-scale), plus validation if logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    val = [json.loads(line) for line in val_path.read_text().splitlines()] if val_path and val_path.is_file() else []
    fig, axes = plt.subplots(1, 2 if val else 1, figsize=(12 if val else 7, 4.5), squeeze=False)
    ax = axes[0, 0]
    steps = [r["step"] for r in rows]
    for key in [k for k in rows[-1] if k not in ("step", "wall_s", "it_per_s")]:
        ax.plot(steps, [r.get(key, np.nan) for r in rows], label=key, lw=1.2 if key == "total" else 0.8)
    ax.set(xlabel="step", ylabel="loss (terms unweighted)", yscale="log", title="training losses")
    ax.legend(fontsize=7, ncol=2)
    if val:
        ax = axes[0, 1]
        vs = [v["step"] for v in val]
        ax.plot(vs, [v["lpips_alex"] for v in val], "o-", label="model stLPIPS-alex")
        ax.plot(vs, [v["baseline_lpips_alex"] for v in val], "--", label="repeat source stLPIPS-alex")
        ax.set(xlabel="step", ylabel="stLPIPS-alex (lower is better)", title="validation identities")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
