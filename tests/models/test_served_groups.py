"""The three served groups of the model (`FaceVid2Vid.motion_encoder/appearance_encoder/warp_decoder`):
each takes its io_spec inputs in order and returns a tuple in its io_spec output order and shapes,
at batch 1 and 2, for the lite preset (seeded random weights: shapes, not quality)."""

from __future__ import annotations

import pytest
import torch

from facecodec import io_spec
from facecodec.models import FaceVid2Vid
from facecodec.presets import get_preset

CFG = get_preset("lite")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return FaceVid2Vid(CFG).eval()


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", list(io_spec.NETWORKS))
def test_each_group_matches_its_io_spec(model, name, batch):
    spec = io_spec.NETWORKS[name]
    group = getattr(model, name)()
    inputs = [torch.rand(batch, *t.resolve(CFG)) for t in spec.inputs]
    with torch.inference_mode():
        out = group(*inputs)
    out = out if isinstance(out, tuple) else (out,)
    assert [tuple(o.shape) for o in out] == [(batch, *t.resolve(CFG)) for t in spec.outputs]
    assert all(o.dtype == torch.float32 and torch.isfinite(o).all() for o in out)
