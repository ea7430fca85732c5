"""Shift-tolerant LPIPS re-declared here loads the wheel's weights and behaves like a distance."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("stlpips_pytorch", reason="stLPIPS weights come from the stlpips-pytorch wheel")

from facecodec.perceptual import PerceptualLoss, StLpips  # noqa: E402


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_stlpips_is_zero_on_equal_images_and_grows_with_noise(net):
    torch.manual_seed(0)
    metric = StLpips(net)
    img = torch.rand(1, 3, 64, 64).mul(0.5).add(0.25)
    slight, strong = ((img + s * torch.randn_like(img)).clamp(0, 1) for s in (0.02, 0.2))
    d0, d1, d2 = (float(metric(img, x)) for x in (img, slight, strong))
    assert d0 < 1e-6 < d1 < d2


def test_perceptual_loss_has_gradients_only_for_the_generated_image():
    loss_fn = PerceptualLoss(scales=(1.0,))
    gen = torch.rand(1, 3, 64, 64, requires_grad=True)
    loss = loss_fn(gen, torch.rand(1, 3, 64, 64))
    loss.backward()
    assert loss.item() > 0 and gen.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss_fn.parameters())
