"""The runner's graph rewrite: 5-D GridSample as multi-threaded gathers gives GridSample's result."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from facecodec.ort_rewrite import gather_grid_sample
from facecodec.runtime import OrtRunner

from .served import SAMPLE_CLIP


def grid_sample_model(x_shape, grid_shape, **attrs) -> onnx.ModelProto:
    node = helper.make_node("GridSample", ["X", "grid"], ["Y"], mode="linear", padding_mode="zeros", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape),
                                            helper.make_tensor_value_info("grid", TensorProto.FLOAT, grid_shape)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def run(model: onnx.ModelProto, feeds) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, feeds)[0]


@pytest.mark.parametrize("x_shape, grid_shape", [((2, 16, 8, 64, 64), (2, 8, 64, 64, 3)),
                                                 ((1, 9, 5, 7, 11), (1, 3, 6, 4, 3))])
def test_gathered_grid_sample_equals_grid_sample(x_shape, grid_shape):
    rng = np.random.default_rng(0)
    feeds = {"X": rng.standard_normal(x_shape, dtype=np.float32),
             "grid": rng.uniform(-1.3, 1.3, grid_shape).astype(np.float32)}  # beyond the edges too: zeros padding
    feeds["grid"][0, 0, 0, 0] = [-1.0, 1.0, 0.0]  # exact edges
    stock = grid_sample_model(x_shape, grid_shape)
    rewritten, count = gather_grid_sample(stock)
    assert count == 1 and not any(n.op_type == "GridSample" for n in rewritten.graph.node)
    np.testing.assert_allclose(run(rewritten, feeds), run(stock, feeds), atol=2e-6)


def test_only_eligible_grid_samples_are_rewritten():
    few_channels = grid_sample_model((1, 2, 4, 8, 8), (1, 4, 8, 8, 3))
    assert gather_grid_sample(few_channels)[1] == 0  # the per-point gather would cost more than it saves
    assert gather_grid_sample(few_channels, min_channels=0)[1] == 1
    corners = grid_sample_model((1, 16, 4, 8, 8), (1, 4, 8, 8, 3), align_corners=1)
    assert gather_grid_sample(corners)[1] == 0  # only the reference's align_corners=0 is written out
    image = grid_sample_model((1, 16, 8, 8), (1, 8, 8, 2))
    assert gather_grid_sample(image)[1] == 0  # 4-D stays


@pytest.fixture(scope="module")
def warp_feeds(onnx_dir) -> dict[str, np.ndarray]:
    """The warp decoder's inputs for frame 30 of the sample driven from its frame 0 (real, not random)."""
    from facecodec.codec.pipeline import OrtNetworks, Receiver, encode_frames, images_to_batch
    from facecodec.media import read_video

    frames = images_to_batch(read_video(SAMPLE_CLIP, max_frames=31))
    plain = OrtNetworks(onnx_dir)
    motion = encode_frames(plain, frames)
    rx = Receiver(plain)
    rx.set_source(frames[:1], motion[0])
    return {"source_image": rx.source_image, "source_features": rx.features, "kp_source": rx.kp_source,
            "kp_driving": rx.driving_keypoints(motion[30]), "expression_flow": rx.expression_flow(motion[30])}


def test_the_runner_rewrites_the_warp_and_keeps_its_output(onnx_dir, warp_feeds):
    feeds = warp_feeds
    with OrtRunner(onnx_dir / "warp_decoder.onnx", rewrite=False) as stock, \
            OrtRunner(onnx_dir / "warp_decoder.onnx") as fast:
        expected, got = stock.infer(feeds)["output_image"], fast.infer(feeds)["output_image"]
    assert stock.rewritten == 0 and fast.rewritten == 1  # the generator's volume warp (16 channels)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_openvino_runner_renders_the_same_frame(onnx_dir):
    pytest.importorskip("openvino", reason="facecodec[openvino] not installed")
    from facecodec.runtime import OpenVinoRunner

    rng = np.random.default_rng(1)
    with OrtRunner(onnx_dir / "warp_decoder.onnx") as ort_runner:
        feeds = {name: rng.random([2, *shape[1:]], dtype=np.float32) for name, shape in
                 zip(ort_runner.input_names, (i.shape for i in ort_runner.session.get_inputs()))}
        feeds["kp_driving"] = feeds["kp_source"] + 0.01
        feeds["expression_flow"] *= 0.01
        expected = ort_runner.infer(feeds)["output_image"]
    with OpenVinoRunner(onnx_dir / "warp_decoder.onnx") as ov_runner:
        got = ov_runner.infer(feeds)["output_image"]  # batch 2: compiled on first use
        single = ov_runner.infer({k: v[:1] for k, v in feeds.items()})["output_image"]
    assert ov_runner.rewritten == 2  # both 5-D GridSamples (OpenVINO has none)
    np.testing.assert_allclose(got, expected, atol=1e-4)  # fp32, not the CPU's bf16
    np.testing.assert_allclose(single, expected[:1], atol=1e-4)


def test_openvino_bf16_warp_stays_close_to_fp32(onnx_dir, warp_feeds):
    """The served default (`ServingSettings.warp_precision`): bf16 where the CPU has bf16 units, a frame
    within 35 dB of fp32 (whole calls measure 43–47 dB, experiments/warp_precision.py); fp32 elsewhere."""
    openvino = pytest.importorskip("openvino", reason="facecodec[openvino] not installed")
    from facecodec.quality import psnr
    from facecodec.runtime import OpenVinoRunner, make_runner

    with OpenVinoRunner(onnx_dir / "warp_decoder.onnx") as f32, \
            OpenVinoRunner(onnx_dir / "warp_decoder.onnx", precision="bf16") as bf16:
        exact, rounded = f32.infer(warp_feeds)["output_image"], bf16.infer(warp_feeds)["output_image"]
    assert psnr(exact, rounded, peak=1.0).min() >= 35.0
    if "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert np.abs(rounded - exact).max() > 1e-3  # the hint took effect: not a second fp32 run
    with pytest.raises(ValueError, match="precision"):
        make_runner(onnx_dir / "warp_decoder.onnx", "openvino", precision="fp8")


def test_openvino_compiles_the_first_batch_now_the_rest_behind_and_caches_them(onnx_dir, tmp_path, monkeypatch):
    """A served model is ready after one compile (a restarted server is back sooner); the other batches
    come from a background thread, or at once for a request that needs one first; compiled models land
    in the per-user cache a restart reads back."""
    pytest.importorskip("openvino", reason="facecodec[openvino] not installed")
    import time

    from facecodec.runtime import OpenVinoRunner, compile_cache

    monkeypatch.setenv("FACECODEC_CACHE_DIR", str(tmp_path / "cache"))
    cache = compile_cache()
    assert cache == tmp_path / "cache" / "openvino" and cache.stat().st_mode & 0o777 == 0o700
    with OpenVinoRunner(onnx_dir / "motion_encoder.onnx", batches=(1, 2, 3), cache_dir=cache) as runner:
        assert 1 in runner.compiled
        image = np.random.default_rng(0).random((3, 3, 256, 256), dtype=np.float32)
        three = runner.infer({runner.input_names[0]: image})  # waits for batch 3 if it is not there yet
        deadline = time.monotonic() + 60
        while len(runner.compiled) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(runner.compiled) == [1, 2, 3]
        one = runner.infer({runner.input_names[0]: image[:1]})
    for name in one:
        np.testing.assert_allclose(one[name], three[name][:1], atol=1e-4)
    assert any(cache.iterdir())  # compiled blobs for the next start


def test_the_compile_cache_is_refused_where_others_may_write(tmp_path, monkeypatch):
    from facecodec.runtime import compile_cache

    shared = tmp_path / "shared"
    (shared / "openvino").mkdir(parents=True)
    (shared / "openvino").chmod(0o777)  # a blob planted there would be loaded as code
    monkeypatch.setenv("FACECODEC_CACHE_DIR", str(shared))
    assert compile_cache() is None
    monkeypatch.setenv("FACECODEC_CACHE_DIR", "/proc/no-such-place")
    assert compile_cache() is None  # cannot be created: no cache, compiles as before
