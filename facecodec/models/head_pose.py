"""Head pose and expression estimator: any frame → yaw, pitch, roll bins, translation t, deltas δ.

This is the per-frame sender network: its outputs (through `bins_to_degrees`) are all a packet
carries. A ResNet-style bottleneck backbone with five linear heads.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class HeadPoseConfig:
    num_kp: int = 15
    image_channels: int = 3
    block_expansion: int = 64
    num_bins: int = 66
    bottlenecks: tuple[int, int, int, int] = (3, 3, 5, 2)  # unstrided blocks per stage
    input_scale: float = 1.0  # the input is average-pooled by 1/input_scale first


class ResBottleneck(nn.Module):
    """1×1 → 3×3 (stride s) → 1×1 with BN; strided blocks get a 1×1 strided skip."""

    def __init__(self, channels: int, stride: int):
        super().__init__()
        mid = channels // 4
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(mid, channels, 1)
        self.norm1, self.norm2, self.norm3 = nn.BatchNorm2d(mid), nn.BatchNorm2d(mid), nn.BatchNorm2d(channels)
        self.stride = stride
        if stride != 1:
            self.skip = nn.Conv2d(channels, channels, 1, stride=stride)
            self.norm4 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.stride != 1:
            x = self.norm4(self.skip(x))
        return F.relu(out + x)


class HeadPoseEstimator(nn.Module):
    """(B, 3, S, S) in [0, 1] → (yaw, pitch, roll) logits (B, bins) each, t (B, 3), δ (B, K, 3)."""

    def __init__(self, cfg: HeadPoseConfig):
        super().__init__()
        self.cfg = cfg
        be = cfg.block_expansion
        widths = (4 * be, 8 * be, 16 * be, 32 * be)
        self.conv1 = nn.Conv2d(cfg.image_channels, be, 7, padding=3, stride=2)
        self.norm1 = nn.BatchNorm2d(be)
        # Stage i: 1×1 widen (conv{i+2}), a strided bottleneck (not in stage 0), unstrided ones.
        # Attribute names (conv2..5, block1..7) match the reference checkpoint.
        prev = be
        for i, (width, count) in enumerate(zip(widths, cfg.bottlenecks)):
            setattr(self, f"conv{i + 2}", nn.Conv2d(prev, width, 1))
            setattr(self, f"norm{i + 2}", nn.BatchNorm2d(width))
            if i > 0:
                setattr(self, f"block{2 * i}", ResBottleneck(width, stride=2))
            blocks = OrderedDict((f"b{2 * i + 1}_{j}", ResBottleneck(width, 1)) for j in range(count))
            setattr(self, f"block{2 * i + 1}", nn.Sequential(blocks))
            prev = width
        self.fc_yaw = nn.Linear(prev, cfg.num_bins)
        self.fc_pitch = nn.Linear(prev, cfg.num_bins)
        self.fc_roll = nn.Linear(prev, cfg.num_bins)
        self.fc_t = nn.Linear(prev, 3)
        self.fc_exp = nn.Linear(prev, 3 * cfg.num_kp)

    def forward(self, image: torch.Tensor):
        x = image
        if self.cfg.input_scale != 1:
            x = F.avg_pool2d(x, round(1 / self.cfg.input_scale))
        out = F.max_pool2d(F.relu(self.norm1(self.conv1(x))), 3, stride=2, padding=1)
        for i in range(4):
            out = F.relu(getattr(self, f"norm{i + 2}")(getattr(self, f"conv{i + 2}")(out)))
            if i > 0:
                out = getattr(self, f"block{2 * i}")(out)
            out = getattr(self, f"block{2 * i + 1}")(out)
        out = out.mean(dim=(2, 3))  # (B, 32·be)
        exp = self.fc_exp(out).view(-1, self.cfg.num_kp, 3)  # (B, K, 3), keypoint-major
        return self.fc_yaw(out), self.fc_pitch(out), self.fc_roll(out), self.fc_t(out), exp
