"""Temporary, until `models.generator` takes the fix: resize flows so the identity stays exact.

`models.generator._resize_flow` (used by the lite preset, whose flow is estimated at 32² and applied
to the 64² f_s) interpolates with align_corners=False. Flows are coordinate grids whose endpoints
are exactly ±1 (`blocks.coordinate_grid`), so that resize is a ~3 % zoom with clamped borders: the
identity flow reproduces the source at only 30 dB PSNR, and the lite model starts (and stays)
below the repeat-the-source baseline. With align_corners=True the resized identity is exact
(vox256 never resizes: unaffected). Proposed upstream as a one-line change; `apply()` is a no-op
once the generator already keeps the identity exact, and training calls it so the shipped weights
match the fixed generator.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from ..models import generator
from ..models.blocks import coordinate_grid

log = logging.getLogger(__name__)


def resize_flow_exact(flow: torch.Tensor, size) -> torch.Tensor:
    """(B, D, h, w, 3) → (B, *size, 3), trilinear per component, grid endpoints kept at ±1."""
    out = F.interpolate(flow.permute(0, 4, 1, 2, 3), size=size, mode="trilinear", align_corners=True)
    return out.permute(0, 2, 3, 4, 1)


def identity_is_exact() -> bool:
    grid = coordinate_grid(2, 4, 4, like=torch.zeros(()))[None]
    return torch.allclose(generator._resize_flow(grid, (2, 8, 8)), coordinate_grid(2, 8, 8, like=grid)[None], atol=1e-6)


def apply() -> None:
    if identity_is_exact():
        return
    log.warning("models.generator._resize_flow does not keep the identity flow exact; "
                "training with align_corners=True (see facecodec/train/flow_fix.py)")
    generator._resize_flow = resize_flow_exact
