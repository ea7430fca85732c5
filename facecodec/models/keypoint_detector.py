"""Canonical keypoint detector: source image → K canonical 3-D keypoints x_c (identity geometry).

An encoder–decoder lifts a low-resolution copy of the image to a 3-D volume; each keypoint is the
expectation of the coordinate grid under a softmax heatmap over all voxels.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from .blocks import AntiAliasDownsample, DownBlock2d, UpBlock3d, coordinate_grid


@dataclass(frozen=True)
class KeypointDetectorConfig:
    num_kp: int = 15
    image_channels: int = 3
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    depth: int = 16  # depth of the lifted volume
    temperature: float = 0.1
    scale_factor: float = 0.25  # input is blurred and subsampled by this factor first


class CanonicalKeypointDetector(nn.Module):
    """(B, 3, S, S) in [0, 1] → x_c (B, K, 3), coordinates in [-1, 1], last axis (x, y, z)."""

    def __init__(self, cfg: KeypointDetectorConfig):
        super().__init__()
        self.cfg = cfg
        self.predictor = _LiftingHourglass(cfg)
        self.kp = nn.Conv3d(self.predictor.out_channels, cfg.num_kp, 3, padding=1)
        if cfg.scale_factor != 1:
            self.down = AntiAliasDownsample(cfg.image_channels, cfg.scale_factor)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.down(image) if self.cfg.scale_factor != 1 else image
        logits = self.kp(self.predictor(x))  # (B, K, D, h, w)
        b, k, d, h, w = logits.shape
        heat = torch.softmax(logits.view(b, k, -1) / self.cfg.temperature, dim=2).view(b, k, d, h, w, 1)
        grid = coordinate_grid(d, h, w, like=logits)  # (D, h, w, 3)
        return (heat * grid).sum(dim=(2, 3, 4))  # (B, K, 3)


class _LiftingHourglass(nn.Module):
    """2-D encoder (no skips) → 1×1 conv → reshape to 3-D → 3-D decoder."""

    def __init__(self, cfg: KeypointDetectorConfig):
        super().__init__()
        width = lambda i: min(cfg.max_features, cfg.block_expansion * 2**i)  # noqa: E731
        n = cfg.num_blocks
        self.down_blocks = nn.Sequential(
            OrderedDict(
                (f"down{i}", DownBlock2d(cfg.image_channels if i == 0 else width(i), width(i + 1)))
                for i in range(n)
            )
        )
        self.conv = nn.Conv2d(width(n), width(n) * cfg.depth, 1)
        self.up_blocks = nn.Sequential(
            OrderedDict((f"up{i}", UpBlock3d(width(n - i), width(n - i - 1))) for i in range(n))
        )
        self.depth = cfg.depth
        self.out_channels = width(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(self.down_blocks(x))  # (B, c·D, h, w)
        b, c, h, w = out.shape
        return self.up_blocks(out.view(b, c // self.depth, self.depth, h, w))  # (B, c0, D, 4h·.., ..)
