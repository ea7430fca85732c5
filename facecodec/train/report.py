"""Run summary for the model card: steps, wall time, loss trend, and a final validation with both
shift-tolerant LPIPS nets (AlexNet is close to the training loss's features, so VGG is reported too)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .data import load_clips
from ..perceptual import StLpips
from ..identity_split import split_identities
from .validate import validate, validation_set


def loss_trend(run_dir: Path, window: int = 10) -> dict[str, dict[str, float]]:
    """Mean of each logged term over the first and the last `window` rows."""
    rows = [json.loads(line) for line in (run_dir / "losses.jsonl").read_text().splitlines() if line.strip()]
    keys = [k for k in rows[-1] if k not in ("step", "wall_s")]
    mean = lambda rs, k: float(np.nanmean([r.get(k, np.nan) for r in rs]))  # noqa: E731
    return {k: {"first": mean(rows[:window], k), "last": mean(rows[-window:], k)} for k in keys}


def final_validation(model, data_dir: Path, cache: Path, pairs_per_clip: int = 8, frame_stride: int = 2) -> dict:
    """Validation identities only: PSNR, stLPIPS-alex and -vgg of the model and of repeating the source."""
    manifest = data_dir.parent / "MANIFEST.tsv"
    _, val_ids = split_identities(manifest)
    clips = load_clips(data_dir.parent, manifest, val_ids, cache, frame_stride=frame_stride)
    data = validation_set(clips, pairs_per_clip)
    metrics = {"alex": StLpips("alex"), "vgg": StLpips("vgg")}
    return {"identities": val_ids, "clips": len(clips), "pairs": len(clips) * pairs_per_clip,
            **validate(model, data, metrics)}
