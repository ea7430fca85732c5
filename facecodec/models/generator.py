"""Generator: warp f_s with the 3-D flow, project to 2-D, decode an image.

The warped volume is flattened over depth, masked by the occlusion map and decoded by a SPADE
decoder whose every normalisation is modulated by that same 2-D feature map.

Optional (the `lite` preset): the decoder also predicts a blend mask, and the full-resolution
source image, warped by the depth-averaged flow, is blended in. Motion is learned faster than
appearance, so pixels that only moved stay sharp and the small decoder fills what is new.

Optional (every preset, no weights): an expression flow (`facecodec.expression`) moves the source's
lips, lids and brows in the source's own frame before the head motion; it is composed with the
network's flow (`compose_expression`) wherever the flow reads the source, and its third channel
paints the inside of a mouth that opens further than the source's (`paint_cavity`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SameBlock2d, SPADEResnetBlock
from .motion_field import warp_volume


@dataclass(frozen=True)
class GeneratorConfig:
    feature_channels: int = 32  # C of f_s
    feature_depth: int = 16  # D of f_s
    warp_channels: int = 256  # width of the 2-D map after projection ("third"/"fourth")
    decoder_channels: int = 512
    num_middle_blocks: int = 6
    up_channels: tuple[int, ...] = (256, 64)  # one ×2 SPADE up-block each
    spade_hidden: int = 128
    feature_size: int = 64  # H = W of f_s
    image_size: int = 256
    source_skip: bool = False  # blend in the flow-warped full-resolution source image


class Generator(nn.Module):
    """f_s (B, C, D, H, W), deformation (B, D, h, w, 3), occlusion (B, 1, h, w),
    source image (B, 3, S, S), optional expression flow (B, 3, E, E) → image (B, 3, S, S) in [0, 1].
    """

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.third = SameBlock2d(cfg.feature_channels * cfg.feature_depth, cfg.warp_channels, lrelu=True)
        self.fourth = nn.Conv2d(cfg.warp_channels, cfg.warp_channels, 1)
        self.decoder = SPADEDecoder(cfg)

    def forward(self, features, deformation, occlusion, source_image, expression_flow=None):
        return self.parts(features, deformation, occlusion, source_image, expression_flow)[0]

    def parts(self, features, deformation, occlusion, source_image,
              expression_flow=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, the decoder's own image before the source blend): training supervises both."""
        b, c, d, h, w = features.shape
        if deformation.shape[1:4] != (d, h, w):
            deformation = _resize_flow(deformation, (d, h, w))
        head_flow = deformation
        if expression_flow is not None:
            deformation = compose_expression(deformation, expression_flow)
        warped = warp_volume(features, deformation).reshape(b, c * d, h, w)  # channel = c·D + d
        out = self.fourth(self.third(warped))
        if occlusion.shape[-2:] != (h, w):
            occlusion = F.interpolate(occlusion, size=(h, w), mode="bilinear")
        image, blend = self.decoder(out * occlusion)
        decoded = image
        if self.cfg.source_skip:
            skip = warp_image(source_image, head_flow, self.cfg.image_size, expression_flow)
            image = blend * skip + (1 - blend) * image
        if expression_flow is not None:
            image = paint_cavity(image, head_flow, expression_flow[:, 2:3])
        return image, decoded


# The inside of a mouth: dark, a little red (sRGB in [0, 1]); what a parting of closed lips shows.
CAVITY_RGB = (0.16, 0.06, 0.07)


def compose_expression(deformation: torch.Tensor, expression_flow: torch.Tensor) -> torch.Tensor:
    """Positions (B, ..., 3) or (B, ..., 2) where the output reads the source, (x, y) in [-1, 1]
    first → the same positions moved by the expression flow's offsets (channels 0–1 of (B, 3, E, E))
    read there (bilinear, zero outside the image; `facecodec.expression` gives the convention). z is
    left as it is."""
    shape = deformation.shape
    xy = deformation[..., :2].reshape(shape[0], -1, 1, 2)  # (B, N, 1, 2) as a grid
    shift = F.grid_sample(expression_flow[:, :2], xy, mode="bilinear", padding_mode="zeros", align_corners=True)
    moved = xy + shift.permute(0, 2, 3, 1)  # (B, N, 1, 2)
    return torch.cat([moved.reshape(*shape[:-1], 2), deformation[..., 2:]], dim=-1)


def paint_cavity(image: torch.Tensor, deformation: torch.Tensor, cavity: torch.Tensor) -> torch.Tensor:
    """The mouth's inside painted over image (B, 3, S, S): its opacity cavity (B, 1, E, E) lives in
    the source's frame, so it is read where the head flow (B, D, h, w, 3) reads the source."""
    size = image.shape[-1]
    flow = F.interpolate(depth_averaged_flow(deformation), size=(size, size), mode="bilinear", align_corners=True)
    alpha = F.grid_sample(cavity, flow.permute(0, 2, 3, 1), mode="bilinear", padding_mode="zeros", align_corners=True)
    colour = torch.tensor(CAVITY_RGB, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return image + alpha * (colour - image)


def depth_averaged_flow(deformation: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w, 3) deformation → (B, 2, h, w): for each output position, the source (x, y) in
    [-1, 1] (align_corners=True grid) it reads, averaged over depth."""
    return deformation.mean(dim=1)[..., :2].permute(0, 3, 1, 2)


def warp_image(image: torch.Tensor, deformation: torch.Tensor, size: int,
               expression_flow: torch.Tensor | None = None) -> torch.Tensor:
    """An image (B, 3, H, W) moved by the depth-averaged flow, at size² (the lite source skip), and
    by the expression flow (B, 3, E, E) when given, composed at size² where the lips need it.

    align_corners=True: the ±1 grid endpoints map to pixel centres, so the identity flow
    reproduces the image exactly.
    """
    flow = F.interpolate(depth_averaged_flow(deformation), size=(size, size), mode="bilinear", align_corners=True)
    grid = flow.permute(0, 2, 3, 1)  # (B, size, size, 2)
    if expression_flow is not None:
        grid = compose_expression(grid, expression_flow)
    if image.shape[-2:] != (size, size):
        image = F.interpolate(image, size=(size, size), mode="bilinear", antialias=True)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _resize_flow(flow: torch.Tensor, size) -> torch.Tensor:
    """(B, D, h, w, 3) → (B, *size, 3), trilinear per component.

    align_corners=True because a flow is a coordinate grid with endpoints exactly ±1: resizing it
    so keeps the identity flow exact (with False it becomes a ~3 % zoom). The reference resizes with
    False here but never at 256² (vox256 estimates the flow at f_s's own size), so nothing differs.
    """
    out = F.interpolate(flow.permute(0, 4, 1, 2, 3), size=size, mode="trilinear", align_corners=True)
    return out.permute(0, 2, 3, 4, 1)


class SPADEDecoder(nn.Module):
    """2-D map (B, Cw, h, w) → (image (B, 3, S, S), blend (B, 1, S, S) or None).

    fc → middle SPADE blocks → ×2 SPADE up-blocks → LeakyReLU(0.2) → conv_img → sigmoid; when the
    last up-block ends below S, conv_img predicts (3 + blend)·r² channels unshuffled to S (pixel shuffle).
    """

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        label, hid = cfg.warp_channels, cfg.spade_hidden
        self.fc = nn.Conv2d(label, cfg.decoder_channels, 3, padding=1)
        for i in range(cfg.num_middle_blocks):
            setattr(self, f"G_middle_{i}", SPADEResnetBlock(cfg.decoder_channels, cfg.decoder_channels, label, hid))
        widths = (cfg.decoder_channels, *cfg.up_channels)
        for i in range(len(cfg.up_channels)):
            setattr(self, f"up_{i}", SPADEResnetBlock(widths[i], widths[i + 1], label, hid))
        self.num_middle, self.num_up = cfg.num_middle_blocks, len(cfg.up_channels)
        self.out_channels = 3 + int(cfg.source_skip)
        self.shuffle = cfg.image_size // (cfg.feature_size * 2**self.num_up)
        self.conv_img = nn.Conv2d(widths[-1], self.out_channels * self.shuffle**2, 3, padding=1)

    def forward(self, seg: torch.Tensor):
        x = self.fc(seg)
        for i in range(self.num_middle):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        for i in range(self.num_up):
            x = getattr(self, f"up_{i}")(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        if self.shuffle > 1:
            x = F.pixel_shuffle(x, self.shuffle)
        x = torch.sigmoid(x)
        if self.out_channels == 3:
            return x, None
        return x[:, :3], x[:, 3:]
