"""Building blocks shared by the face-vid2vid networks.

Submodule and parameter names follow the public face-vid2vid re-implementation so that its
checkpoint loads with strict key matching (see `facecodec.checkpoint`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def coordinate_grid(depth: int, height: int, width: int, *, like: torch.Tensor) -> torch.Tensor:
    """Normalised 3-D coordinate grid, shape (D, H, W, 3), last axis (x, y, z).

    Endpoints are exactly ±1 (x_i = 2 i / (W - 1) - 1), as in the reference; sampling it with
    grid_sample(align_corners=False) is therefore a slight zoom, reproduced on purpose.
    """

    def axis(n: int) -> torch.Tensor:
        return 2 * (torch.arange(n, dtype=like.dtype, device=like.device) / max(n - 1, 1)) - 1

    z, y, x = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    return torch.stack([x, y, z], dim=-1)


class SameBlock2d(nn.Module):
    """conv → BN → ReLU (or LeakyReLU 0.01), resolution kept."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, lrelu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_ch)
        self.act = nn.LeakyReLU() if lrelu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class DownBlock2d(nn.Module):
    """conv → BN → ReLU → 2×2 average pool."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class DownBlock3d(nn.Module):
    """conv3d → BN → ReLU → average pool over (H, W) only; depth is kept."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv3d(in_ch, out_ch, 3, padding=1)
        self.norm = nn.BatchNorm3d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(F.relu(self.norm(self.conv(x))), (1, 2, 2))


class UpBlock3d(nn.Module):
    """nearest ×2 over (H, W) → conv3d → BN → ReLU."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv3d(in_ch, out_ch, 3, padding=1)
        self.norm = nn.BatchNorm3d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class ResBlock3d(nn.Module):
    """Pre-activation residual block: BN → ReLU → conv → BN → ReLU → conv, plus input."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)
        self.norm1 = nn.BatchNorm3d(channels)
        self.norm2 = nn.BatchNorm3d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class AntiAliasDownsample(nn.Module):
    """Gaussian blur then keep every (1/scale)-th pixel (the reference's AntiAliasInterpolation2d).

    The kernel is a buffer named `weight` (3×1×k×k), which is part of the reference state dict.
    """

    def __init__(self, channels: int, scale: float):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.pad = size // 2
        self.step = int(1 / scale)
        coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        g = torch.exp(-(coords**2) / (2 * sigma**2))
        kernel = g[:, None] * g[None, :]
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(F.pad(x, (self.pad,) * 4), self.weight, groups=x.shape[1])
        return x[:, :, :: self.step, :: self.step]


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: InstanceNorm(x)·(1 + γ(seg)) + β(seg)."""

    def __init__(self, norm_ch: int, label_ch: int, hidden: int):
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_ch, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_ch, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_ch, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_ch, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        if seg.shape[-2:] != x.shape[-2:]:
            seg = F.interpolate(seg, size=x.shape[-2:], mode="nearest")
        actv = self.mlp_shared(seg)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """Residual block with SPADE norms; learned 1×1 shortcut when the width changes.

    The reference wraps the convs in spectral norm; at load time σ is folded into the weights,
    so the convs here are plain (`facecodec.checkpoint.fold_spectral_norm`).
    """

    def __init__(self, fin: int, fout: int, label_ch: int, hidden: int):
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = nn.Conv2d(fin, fmid, 3, padding=1)
        self.conv_1 = nn.Conv2d(fmid, fout, 3, padding=1)
        self.norm_0 = SPADE(fin, label_ch, hidden)
        self.norm_1 = SPADE(fmid, label_ch, hidden)
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, 1, bias=False)
            self.norm_s = SPADE(fin, label_ch, hidden)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return shortcut + dx
