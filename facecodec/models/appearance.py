"""Appearance feature extractor: source image → 3-D feature volume f_s.

Runs once per call on the sender's source image; the receiver keeps f_s for the whole call.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from .blocks import DownBlock2d, ResBlock3d, SameBlock2d


@dataclass(frozen=True)
class AppearanceConfig:
    image_channels: int = 3
    block_expansion: int = 64
    num_down_blocks: int = 2
    max_features: int = 256
    feature_channels: int = 32  # C of f_s
    feature_depth: int = 16  # D of f_s
    num_resblocks: int = 6


class AppearanceFeatureExtractor(nn.Module):
    """(B, 3, S, S) in [0, 1] → f_s (B, C, D, S/2^n, S/2^n)."""

    def __init__(self, cfg: AppearanceConfig):
        super().__init__()
        self.cfg = cfg
        width = lambda i: min(cfg.max_features, cfg.block_expansion * 2**i)  # noqa: E731
        self.first = SameBlock2d(cfg.image_channels, cfg.block_expansion)
        self.down_blocks = nn.ModuleList(DownBlock2d(width(i), width(i + 1)) for i in range(cfg.num_down_blocks))
        self.second = nn.Conv2d(width(cfg.num_down_blocks), cfg.feature_channels * cfg.feature_depth, 1)
        self.resblocks_3d = nn.Sequential(
            OrderedDict((f"3dr{i}", ResBlock3d(cfg.feature_channels)) for i in range(cfg.num_resblocks))
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.first(image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)  # (B, C·D, h, w), channel = c·D + d
        b, _, h, w = out.shape
        out = out.view(b, self.cfg.feature_channels, self.cfg.feature_depth, h, w)  # (B, C, D, h, w)
        return self.resblocks_3d(out)
