"""Shift-tolerant LPIPS networks (AlexNet and VGG16) with the weights shipped in `stlpips-pytorch`.

The wheel's own modules build their backbones through torchvision, which cannot be installed beside
our torch; the architecture is re-declared here (blur-pool variant "shift_tolerant", same layer
indices so the shipped state dicts load strictly) and only the `.pth` files are read from the wheel.

Two uses: `PerceptualLoss` (training: normalised AlexNet features, no learned layer weights, so the
loss is not literally the metric) and `StLpips` (validation: the published distance, both nets).
"""

from __future__ import annotations

from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS = {"alex": "alex_shift_tolerant.pth", "vgg": "vgg_shift_tolerant.pth"}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# Slice boundaries into the flat layer list (the wheel's `invariant_networks` numbering).
SLICES = {"alex": (0, 3, 7, 11, 13, 15), "vgg": (0, 4, 10, 18, 26, 34)}


class BlurDownsample(nn.Module):
    """Reflect-pad by 2, then a fixed [1 2 1]² blur with stride 2 (the wheel's `Downsample`, pad_more)."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = a[:, None] * a[None, :]
        self.register_buffer("filt", (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


def _alex_layers() -> list[nn.Module]:
    return [
        nn.Conv2d(3, 64, 11, stride=1, padding=2), BlurDownsample(64), nn.ReLU(),
        nn.MaxPool2d(3, stride=1), BlurDownsample(64), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, stride=1), BlurDownsample(192), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
    ]


def _vgg_layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    cin = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
        if v == "M":
            layers += [nn.MaxPool2d(2, stride=1), BlurDownsample(cin)]
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
            cin = v
    return layers


class Backbone(nn.Module):
    """Five feature taps (after each slice's last ReLU); inputs are LPIPS-scaled images."""

    def __init__(self, net: str):
        super().__init__()
        layers = _alex_layers() if net == "alex" else _vgg_layers()
        bounds = SLICES[net]
        for s in range(5):
            block = nn.Sequential()
            for i in range(bounds[s], bounds[s + 1]):
                block.add_module(str(i), layers[i])
            setattr(self, f"slice{s + 1}", block)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for s in range(1, 6):
            x = getattr(self, f"slice{s}")(x)
            feats.append(x)
        return feats


class StLpips(nn.Module):
    """Shift-tolerant LPIPS distance: images (B, 3, H, W) in [0, 1] → (B,), lower is closer."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in WEIGHTS:
            raise ValueError(f"net must be one of {sorted(WEIGHTS)}, got {net!r}")
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])
        self.net = Backbone(net)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS[net])
        self._load(net)
        self.requires_grad_(False)
        self.eval()

    def _load(self, net: str) -> None:
        path = resources.files("stlpips_pytorch") / "weights" / "vST0.0" / WEIGHTS[net]
        with resources.as_file(path) as p:
            state = torch.load(p, map_location="cpu", weights_only=True)
        renamed = {}
        for key, value in state.items():  # lin{i}.model.1.weight → lins.{i}.weight (no dropout here)
            if key.startswith("lin"):
                key = f"lins.{key[3]}.weight"
            elif key.startswith("scaling_layer."):
                key = key.split(".", 1)[1]
            renamed[key] = value
        self.load_state_dict(renamed, strict=True)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Channel-normalised features of images in [0, 1]."""
        x = (images * 2 - 1 - self.shift) / self.scale
        return [f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10) for f in self.net(x)]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.distance(self.features(a), self.features(b))

    def distance(self, feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> torch.Tensor:
        """From precomputed `features` (reuse a target's features against several candidates)."""
        total = 0
        for lin, fa, fb in zip(self.lins, feats_a, feats_b):
            total = total + lin((fa - fb).pow(2)).mean(dim=(1, 2, 3))
        return total


class PerceptualLoss(nn.Module):
    """Multi-scale perceptual loss (the paper's recipe, with the shift-tolerant AlexNet instead of
    VGG19 for CPU cost): mean over the 5 taps of the per-channel-summed squared difference of
    normalised features, without LPIPS's learned layer weights, summed over the given scales."""

    def __init__(self, scales: tuple[float, ...] = (0.5, 0.25), net: str = "alex"):
        super().__init__()
        self.scales = scales
        self.metric = StLpips(net)

    def forward(self, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum((self.at_scale(generated, target, s) for s in self.scales), generated.new_zeros(()))

    def at_scale(self, generated: torch.Tensor, target: torch.Tensor, scale: float) -> torch.Tensor:
        g, t = (x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="bilinear", antialias=True)
                for x in (generated, target))
        with torch.no_grad():
            ft = self.metric.features(t)
        fg = self.metric.features(g)
        return sum((a - b).pow(2).sum(dim=1).mean() for a, b in zip(fg, ft)) / len(fg)
