"""Motion field estimator: f_s and the keypoints of source and driving frame → 3-D flow + occlusion.

Each keypoint k proposes a translation of the volume (grid − x_d[k] + x_s[k]); together with the
identity they give K+1 candidate flows. A 3-D hourglass looks at f_s deformed by each candidate
and at keypoint heatmaps, and predicts a soft mask that mixes the candidates into one flow, plus a
2-D occlusion map telling the generator which parts of the warped features to trust.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownBlock3d, UpBlock3d, coordinate_grid


@dataclass(frozen=True)
class MotionFieldConfig:
    num_kp: int = 15
    feature_channels: int = 32  # C of f_s
    feature_depth: int = 16  # D of f_s
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    compress: int = 4  # f_s is compressed to this many channels before deforming
    kp_variance: float = 0.01
    mask_kernel: int = 7
    occlusion_kernel: int = 7
    output_conv: bool = True  # 3×3×3 conv + BN at the hourglass output
    spatial_scale: int = 1  # estimate the flow on f_s average-pooled by this factor over (H, W)


class MotionFieldEstimator(nn.Module):
    """f_s (B, C, D, H, W), x_s (B, K, 3), x_d (B, K, 3) →
    deformation (B, D, h, w, 3) sampling positions in f_s, occlusion (B, 1, h, w) in [0, 1],
    mask (B, K+1, D, h, w); h, w = H, W / spatial_scale.
    """

    def __init__(self, cfg: MotionFieldConfig):
        super().__init__()
        self.cfg = cfg
        in_ch = (cfg.num_kp + 1) * (cfg.compress + 1)
        self.hourglass = Hourglass3d(cfg.block_expansion, in_ch, cfg.num_blocks, cfg.max_features, cfg.output_conv)
        out_ch = self.hourglass.out_channels
        self.mask = nn.Conv3d(out_ch, cfg.num_kp + 1, cfg.mask_kernel, padding=cfg.mask_kernel // 2)
        self.compress = nn.Conv3d(cfg.feature_channels, cfg.compress, 1)
        self.norm = nn.BatchNorm3d(cfg.compress)
        self.occlusion = nn.Conv2d(out_ch * cfg.feature_depth, 1, cfg.occlusion_kernel,
                                   padding=cfg.occlusion_kernel // 2)

    def forward(self, features: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor):
        feat = F.relu(self.norm(self.compress(features)))  # (B, c, D, H, W)
        if self.cfg.spatial_scale != 1:
            s = self.cfg.spatial_scale
            feat = F.avg_pool3d(feat, (1, s, s))
        b, c, d, h, w = feat.shape
        k1 = self.cfg.num_kp + 1
        grid = coordinate_grid(d, h, w, like=feat)  # (D, h, w, 3)
        motions = self._sparse_motions(grid, kp_source, kp_driving)  # (B, K+1, D, h, w, 3)
        deformed = warp_volume(
            feat.unsqueeze(1).expand(b, k1, c, d, h, w).reshape(b * k1, c, d, h, w),
            motions.reshape(b * k1, d, h, w, 3),
        ).view(b, k1, c, d, h, w)
        heat = self._heatmaps(grid, kp_source, kp_driving).unsqueeze(2)  # (B, K+1, 1, D, h, w)
        hidden = self.hourglass(torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w))  # (B, out, D, h, w)
        mask = torch.softmax(self.mask(hidden), dim=1)  # (B, K+1, D, h, w)
        deformation = (motions * mask.unsqueeze(-1)).sum(dim=1)  # (B, D, h, w, 3)
        occlusion = torch.sigmoid(self.occlusion(hidden.reshape(b, -1, h, w)))  # (B, 1, h, w)
        return deformation, occlusion, mask

    def _sparse_motions(self, grid, kp_source, kp_driving):
        """Identity plus one translation per keypoint: (B, K+1, D, h, w, 3)."""
        b, k, _ = kp_driving.shape
        g = grid.unsqueeze(0).unsqueeze(0)
        per_kp = g - kp_driving.view(b, k, 1, 1, 1, 3) + kp_source.view(b, k, 1, 1, 1, 3)  # (B, K, D, h, w, 3)
        identity = g.expand(b, 1, *grid.shape)
        return torch.cat([identity, per_kp], dim=1)

    def _heatmaps(self, grid, kp_source, kp_driving):
        """Gaussian at each driving keypoint minus one at its source keypoint; a zero map first."""

        def gaussian(kp):  # (B, K, 3) → (B, K, D, h, w)
            diff = grid.unsqueeze(0).unsqueeze(0) - kp.view(*kp.shape[:2], 1, 1, 1, 3)
            return torch.exp(-0.5 * (diff**2).sum(-1) / self.cfg.kp_variance)

        heat = gaussian(kp_driving) - gaussian(kp_source)
        return torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1)


def warp_volume(volume: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """5-D trilinear grid sample, zeros padding, align_corners=False (the reference's defaults).

    volume (N, C, D, H, W), grid (N, Do, Ho, Wo, 3) with last axis (x, y, z) → (N, C, Do, Ho, Wo).
    For TensorRT this op becomes the `GridSample3D` plugin node (`facecodec.onnx_export`).
    """
    return F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


stock_warp_volume = warp_volume  # scripts/gpu_bench.py swaps `warp_volume` for its kernel and back


class Hourglass3d(nn.Module):
    """U-Net over (D, H, W) with pooling over (H, W) only; output = input channels + block_expansion."""

    def __init__(self, block_expansion: int, in_ch: int, num_blocks: int, max_features: int, output_conv: bool):
        super().__init__()
        self.encoder = _Encoder(block_expansion, in_ch, num_blocks, max_features)
        self.decoder = _Decoder(block_expansion, in_ch, num_blocks, max_features, output_conv)
        self.out_channels = self.decoder.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class _Encoder(nn.Module):
    def __init__(self, block_expansion, in_ch, num_blocks, max_features):
        super().__init__()
        width = lambda i: min(max_features, block_expansion * 2**i)  # noqa: E731
        self.down_blocks = nn.ModuleList(
            DownBlock3d(in_ch if i == 0 else width(i), width(i + 1)) for i in range(num_blocks)
        )

    def forward(self, x):
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class _Decoder(nn.Module):
    def __init__(self, block_expansion, in_ch, num_blocks, max_features, output_conv):
        super().__init__()
        width = lambda i: min(max_features, block_expansion * 2**i)  # noqa: E731
        self.up_blocks = nn.ModuleList(
            UpBlock3d((1 if i == num_blocks - 1 else 2) * width(i + 1), width(i)) for i in reversed(range(num_blocks))
        )
        self.out_channels = block_expansion + in_ch
        self.output_conv = output_conv
        if output_conv:
            self.conv = nn.Conv3d(self.out_channels, self.out_channels, 3, padding=1)
            self.norm = nn.BatchNorm3d(self.out_channels)

    def forward(self, skips):
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        if self.output_conv:
            out = F.relu(self.norm(self.conv(out)))
        return out
