"""Quick validation on held-out identities: the model vs repeating the source frame.

Fixed pairs (source = a clip's first cached frame, drivings spread over the clip), PSNR and
shift-tolerant LPIPS at 256². The evaluation tools produce the official numbers; this one tracks
training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..models import FaceVid2Vid
from .data import ClipFrames
from .forward import run_model
from ..perceptual import StLpips
from ..quality import psnr


@dataclass(frozen=True)
class ValidationSet:
    sources: torch.Tensor  # (C, 3, S, S), one per clip
    drivings: torch.Tensor  # (C, N, 3, S, S)


def validation_set(clips: list[ClipFrames], drivings_per_clip: int) -> ValidationSet:
    """Source = frame 0; drivings evenly spaced over the rest of each clip."""
    srcs, drvs = [], []
    for clip in clips:
        idx = np.linspace(1, len(clip.frames) - 1, drivings_per_clip).round().astype(int)
        to_t = lambda a: torch.from_numpy(np.array(a)).permute(0, 3, 1, 2).float().div_(255)  # noqa: E731  (copy: mmap is read-only)
        srcs.append(to_t(clip.frames[:1])[0])
        drvs.append(to_t(clip.frames[idx]))
    return ValidationSet(torch.stack(srcs), torch.stack(drvs))


@torch.no_grad()
def validate(model: FaceVid2Vid, data: ValidationSet, metrics: dict[str, StLpips], chunk: int = 2) -> dict[str, float]:
    """Mean PSNR and stLPIPS of the model and of the repeat-source baseline."""
    was_training = model.training
    model.eval()
    gen = []
    try:
        for i in range(0, len(data.sources), chunk):
            gen.append(run_model(model, data.sources[i : i + chunk], data.drivings[i : i + chunk]).generated)
    finally:
        model.train(was_training)
    n = data.drivings.shape[1]
    generated, target = torch.cat(gen), data.drivings.flatten(0, 1)
    repeated = data.sources.repeat_interleave(n, 0)
    host = {k: v.cpu().numpy() for k, v in (("generated", generated), ("target", target), ("repeated", repeated))}
    out = {name: float(psnr(host[k], host["target"], peak=1.0).mean())
           for name, k in (("psnr", "generated"), ("baseline_psnr", "repeated"))}
    for name, metric in metrics.items():
        out[f"lpips_{name}"], out[f"baseline_lpips_{name}"] = _mean_lpips(metric, target, generated, repeated)
    return out


def _mean_lpips(metric: StLpips, target: torch.Tensor, *candidates: torch.Tensor, chunk: int = 8) -> list[float]:
    """Mean distance of each candidate batch to the target; the target's features are computed once."""
    sums = [0.0] * len(candidates)
    for i in range(0, len(target), chunk):
        ft = metric.features(target[i : i + chunk])
        for j, c in enumerate(candidates):
            sums[j] += float(metric.distance(metric.features(c[i : i + chunk]), ft).sum())
    return [s / len(target) for s in sums]
