"""export/compare.py without TensorRT or polygraphy: references, tolerances, verdicts, inputs, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from export import compare
from facecodec import io_spec


def test_the_reference_of_every_network_is_its_plain_export():
    assert compare.REFERENCES == {
        "motion_encoder": "motion_encoder.onnx",
        "appearance_encoder": "appearance_encoder.onnx",
        "warp_decoder": "warp_decoder.onnx",  # stock GridSample, not the plugin variant
    }


def test_every_network_output_has_a_tolerance():
    outputs = {o for spec in io_spec.NETWORKS.values() for o in spec.output_names}
    assert set(compare.TOLERANCES) == outputs
    assert all(atol > 0 and rtol >= 0 for atol, rtol in compare.TOLERANCES.values())


def test_verdicts_are_elementwise_and_reject_non_finite_and_misshapen_outputs():
    ref = np.linspace(0, 1, 48, dtype=np.float32).reshape(1, 3, 4, 4)
    atol = compare.TOLERANCES["output_image"][0]
    assert compare.within(ref + atol * 0.9, ref, "output_image").passed
    worse = ref.copy()
    worse[0, 1, 2, 3] += atol * 1.5  # one pixel is enough
    finding = compare.within(worse, ref, "output_image")
    assert not finding.passed and finding.max_abs == pytest.approx(atol * 1.5, rel=1e-5)
    nan = ref.copy()
    nan[0, 0, 0, 0] = np.nan
    assert not compare.within(nan, ref, "output_image").passed
    assert not compare.within(ref[:, :2], ref, "output_image").passed
    assert "FAIL" in compare._named("warp_decoder", finding).line()


@pytest.mark.parametrize("name", ["motion_encoder", "appearance_encoder"])
def test_encoder_inputs_have_the_served_shapes(name, tmp_path):
    spec = io_spec.NETWORKS[name]
    feeds = compare.feeds(name, tmp_path, "lite", batch=3, seed=0)
    assert list(feeds) == spec.input_names
    for t in spec.inputs:
        assert feeds[t.name].shape == (3, 3, 256, 256) and feeds[t.name].dtype == np.float32
        assert 0 <= feeds[t.name].min() and feeds[t.name].max() <= 1


def test_cli_takes_the_serving_settings(tmp_path):
    args = compare.parse_args(["engines", "--onnx-dir", str(tmp_path), "--max-batch-size", "4", "--plugin", "x.so"])
    assert args.check == "engines" and args.max_batch_size == 4 and args.models == list(io_spec.NETWORKS)
    args = compare.parse_args(["server", "--onnx-dir", str(tmp_path), "-u", "triton-gpu:8001", "--models", "warp_decoder"])
    assert args.url == "triton-gpu:8001" and args.models == ["warp_decoder"]
    with pytest.raises(SystemExit):
        compare.parse_args(["engines"])  # --onnx-dir is required
