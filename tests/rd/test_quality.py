"""The sweep's metric organiser agrees with `facecodec.eval.metrics`."""

import numpy as np
import pytest

from facecodec.eval.metrics import Lpips, psnr
from facecodec.rd.quality import LpipsPlan, QualityMeter


def test_cached_reference_lpips_equals_the_eval_metric(sample_frames):
    original, decoded = sample_frames[:4], sample_frames[1:5]
    lpips = Lpips(("alex",), batch=2)
    meter = QualityMeter(original, LpipsPlan((("alex", 2),)), lpips=lpips, batch=2)
    values = meter.per_frame(decoded)
    np.testing.assert_allclose(values["lpips_alex"], lpips(original[::2], decoded[::2])["lpips_alex"], rtol=1e-5)
    np.testing.assert_allclose(values["psnr"], psnr(original, decoded))
    assert values["ssim"].shape == (4,) and meter.metrics == ["psnr", "ssim", "lpips_alex"]


def test_identical_clips_are_perfect_and_skip_infinite_psnr(sample_frames):
    clip = sample_frames[:2]
    summary = QualityMeter(clip, LpipsPlan((("alex", 2),))).summary(clip.copy())
    assert summary["psnr"] == np.inf and summary["ssim"] == pytest.approx(1.0) and summary["lpips_alex"] == 0.0


def test_lpips_plan_parses_nets_and_strides():
    plan = LpipsPlan.parse("alex:4,vgg")
    assert plan.nets == ("alex", "vgg") and list(plan.frames("alex", 10)) == [0, 4, 8]
    with pytest.raises(ValueError, match="net must be one of"):
        LpipsPlan.parse("squeeze:2")
