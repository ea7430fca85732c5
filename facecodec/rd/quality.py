"""Quality of decoded clips against one original clip: PSNR, SSIM and shift-tolerant LPIPS.

The metric definitions are `facecodec.eval.metrics` (PSNR, SSIM, stLPIPS networks); this module only
organises them for a sweep, where one original is compared with dozens of decodes:

- the original's LPIPS features are computed once per clip and reused for every decode (the
  distance is `StLpips.forward` written over cached features: Σ_layers mean(lin((f_a − f_b)²)));
- LPIPS, which costs ~0.13 s (AlexNet) or ~0.5 s (VGG) of CPU per 256² frame, can be taken on
  every n-th frame (`LpipsPlan`, the same frames for every codec); PSNR and SSIM use every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..eval.metrics import Lpips, nanmean, psnr, ssim
from ..media import to_tensor_batch

HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips_alex": False, "lpips_vgg": False}
HEADS = ("alex", "vgg")


@dataclass(frozen=True)
class LpipsPlan:
    """Which stLPIPS networks run on which frames: net → stride (every stride-th frame from frame 0,
    the same frames for every decode). VGG costs ~4× AlexNet, so it may take a sparser stride."""

    strides: tuple[tuple[str, int], ...] = (("alex", 1),)

    def __post_init__(self) -> None:
        for net, stride in self.strides:
            if net not in HEADS or stride < 1:
                raise ValueError(f"LPIPS plan entry {net}:{stride}: net must be one of {HEADS}, stride ≥ 1")

    @classmethod
    def parse(cls, text: str) -> LpipsPlan:
        """'alex:4,vgg:20' (a missing stride is 1)."""
        items = [t.split(":") for t in text.split(",") if t]
        return cls(tuple((i[0], int(i[1]) if len(i) > 1 else 1) for i in items))

    @property
    def nets(self) -> tuple[str, ...]:
        return tuple(net for net, _ in self.strides)

    def frames(self, net: str, count: int) -> np.ndarray:
        return np.arange(0, count, dict(self.strides)[net])

    def describe(self) -> str:
        return ", ".join(f"{net} on every {stride}-th frame" if stride > 1 else f"{net} on every frame"
                         for net, stride in self.strides)


class QualityMeter:
    """Per-frame metrics of decodes of ONE original clip (T, H, W, 3) uint8."""

    def __init__(self, original: np.ndarray, plan: LpipsPlan | None = None, *, lpips: Lpips | None = None,
                 batch: int = 8):
        self.original = original
        self.plan = plan or LpipsPlan()
        self.lpips = lpips or Lpips(self.plan.nets, batch=batch)
        self.batch = batch
        self.lpips_frames = {net: self.plan.frames(net, len(original)) for net in self.plan.nets}
        self._reference = {net: self._features(self.lpips.models[net], original[self.lpips_frames[net]])
                           for net in self.plan.nets}

    @property
    def metrics(self) -> list[str]:
        return ["psnr", "ssim", *(f"lpips_{net}" for net in self._reference)]

    def per_frame(self, decoded: np.ndarray) -> dict[str, np.ndarray]:
        """{'psnr': (T,), 'ssim': (T,), 'lpips_<net>': (len(lpips_frames[net]),)} for a decode of the original."""
        if decoded.shape != self.original.shape:
            raise ValueError(f"decoded clip is {decoded.shape}, original {self.original.shape}")
        out = {"psnr": psnr(self.original, decoded), "ssim": ssim(self.original, decoded)}
        for net, reference in self._reference.items():
            out[f"lpips_{net}"] = self._distance(self.lpips.models[net], decoded[self.lpips_frames[net]], reference)
        return out

    def summary(self, decoded: np.ndarray) -> dict[str, float]:
        """Clip means of every metric (frames with infinite PSNR — identical — are left out of its mean)."""
        values = self.per_frame(decoded)
        return {name: nanmean(v) for name, v in values.items()}

    def _features(self, model, frames: np.ndarray) -> list[list[torch.Tensor]]:
        with torch.inference_mode():
            return [model.features(to_tensor_batch(frames[i : i + self.batch]))
                    for i in range(0, len(frames), self.batch)]

    def _distance(self, model, frames: np.ndarray, reference: list[list[torch.Tensor]]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i, ref in zip(range(0, len(frames), self.batch), reference):
                feats = model.features(to_tensor_batch(frames[i : i + self.batch]))
                total = sum(lin((fa - fb).pow(2)).mean(dim=(1, 2, 3)) for lin, fa, fb in zip(model.lins, feats, ref))
                out.append(total.double().numpy())
        return np.concatenate(out)

