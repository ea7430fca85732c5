"""The GPU decoder's session helpers against a stand-in of triton_python_backend_utils.

The stand-in keeps tensors as torch tensors and moves them by DLPack the way the python backend does,
with CPU memory standing in for the GPU (the CUDA path itself runs only in the GPU container).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch

from facecodec import io_spec
from facecodec.serving.bls import BlsNetworks, DeviceArrays
from facecodec.codec.session import FrameRequest, SessionStore

S, K, FEATURES = 256, 15, (16, 8, 64, 64)  # lite


class FakeTensor:
    """pb_utils.Tensor: numpy in, or any DLPack producer in (zero-copy), DLPack out."""

    def __init__(self, name: str, data, via_dlpack: bool = False):
        self._name, self.data, self.via_dlpack = name, torch.as_tensor(data), via_dlpack

    @classmethod
    def from_dlpack(cls, name, producer):
        return cls(name, torch.from_dlpack(producer), via_dlpack=True)

    def name(self) -> str:
        return self._name

    def __dlpack__(self, stream=None, **kw):
        return self.data.__dlpack__()

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()


class FakeResponse:
    def __init__(self, outputs=None, error=None):
        self.outputs, self._error = outputs or {}, error

    def has_error(self):
        return self._error is not None

    def error(self):
        return namedtuple("Error", "message")(lambda: self._error)


class FakePb:
    """The parts of triton_python_backend_utils the GPU session uses; `models` answers BLS requests."""

    TRITONSERVER_MEMORY_GPU = 2
    PreferredMemory = namedtuple("PreferredMemory", "preferred_memory_type preferred_device_id")
    Tensor = FakeTensor

    def __init__(self, models):
        self.models, self.requests = models, []
        pb = self

        class InferenceRequest:
            def __init__(self, model_name, requested_output_names, inputs, preferred_memory=None):
                self.model_name, self.outputs, self.inputs = model_name, requested_output_names, inputs
                self.preferred_memory = preferred_memory
                pb.requests.append(self)

            def exec(self):
                feeds = {t.name(): t.data for t in self.inputs}
                try:
                    out = pb.models[self.model_name](feeds)
                except Exception as err:  # noqa: BLE001 - the backend reports it in the response
                    return FakeResponse(error=str(err))
                return FakeResponse({n: FakeTensor(n, out[n]) for n in self.outputs})

        self.InferenceRequest = InferenceRequest

    @staticmethod
    def get_output_tensor_by_name(response, name):
        return response.outputs[name]


def fake_models():
    """Deterministic stand-ins with the served shapes: each output depends on the inputs it should."""

    def appearance(f):
        img = f["source_image"]
        feats = img.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1, 1).expand(-1, *FEATURES).contiguous()
        return {"source_features": feats, "kp_canonical": torch.zeros(len(img), K, 3) + img.mean() * 0.1}

    def motion(f):
        b = len(f["image"])
        rot = torch.tensor([[5.0, -3.0, 2.0]]).repeat(b, 1) * f["image"].mean()
        return {"rotation": rot, "translation": torch.zeros(b, 3), "expression": torch.zeros(b, K, 3)}

    def warp(f):
        shift = (f["kp_driving"] - f["kp_source"]).mean(dim=(1, 2)).reshape(-1, 1, 1, 1)
        scale = f["source_features"].mean(dim=(1, 2, 3, 4)).reshape(-1, 1, 1, 1)
        return {"output_image": f["source_image"] * scale + shift}

    return {"appearance_encoder": appearance, "motion_encoder": motion, "warp_decoder": warp}


@pytest.fixture
def pb():
    return FakePb(fake_models())


def test_tensors_go_in_by_dlpack_and_arrays_as_host_tensors(pb):
    networks = BlsNetworks(pb, device_id=3, device="cpu")
    source = torch.rand(1, 3, S, S)
    networks("appearance_encoder", {"source_image": source})
    (request,) = pb.requests
    assert request.model_name == "appearance_encoder" and request.outputs == io_spec.APPEARANCE_ENCODER.output_names
    assert request.preferred_memory == (FakePb.TRITONSERVER_MEMORY_GPU, 3)  # outputs asked for on our GPU
    assert request.inputs[0].data.data_ptr() == source.data_ptr()  # zero-copy
    networks("motion_encoder", {"image": np.random.rand(1, 3, S, S).astype(np.float32)})
    assert pb.requests[-1].inputs[0].name() == "image"


def test_the_source_features_stay_tensors_the_rest_comes_to_the_host(pb):
    networks = BlsNetworks(pb, device="cpu")
    out = networks("appearance_encoder", {"source_image": torch.rand(1, 3, S, S)})
    assert torch.is_tensor(out["source_features"]) and out["source_features"].shape == (1, *FEATURES)
    assert isinstance(out["kp_canonical"], np.ndarray) and out["kp_canonical"].shape == (1, K, 3)


def test_kept_outputs_are_the_sessions_own_copy(pb):
    kept = torch.ones(1, *FEATURES)
    pb.models["appearance_encoder"] = lambda f: {"source_features": kept, "kp_canonical": torch.zeros(1, K, 3)}
    out = BlsNetworks(pb, device="cpu")("appearance_encoder", {"source_image": torch.rand(1, 3, S, S)})
    kept.zero_()  # the backend reuses the response's memory
    assert float(out["source_features"].min()) == 1.0


def test_a_failed_bls_request_raises_with_the_models_message(pb):
    pb.models["warp_decoder"] = lambda f: (_ for _ in ()).throw(RuntimeError("engine refused batch 9"))
    feeds = {"source_image": np.zeros((1, 3, S, S), np.float32), "source_features": torch.zeros(1, *FEATURES),
             "kp_source": np.zeros((1, K, 3), np.float32), "kp_driving": np.zeros((1, K, 3), np.float32),
             "expression_flow": np.zeros((1, 3, S // 2, S // 2), np.float32)}
    with pytest.raises(RuntimeError, match="BLS request to warp_decoder failed: engine refused batch 9"):
        BlsNetworks(pb, device="cpu")("warp_decoder", feeds)


def test_device_arrays_batch_on_the_device_and_leave_host_arrays_alone():
    arrays = DeviceArrays("cpu")
    placed = arrays.place(np.ones((1, 3, 4, 4), np.float64))
    assert torch.is_tensor(placed) and placed.dtype == torch.float32
    assert arrays.concat([placed]) is placed  # one call: no copy
    both = arrays.concat([placed, arrays.place(np.zeros((1, 3, 4, 4)))])
    assert torch.is_tensor(both) and both.shape == (2, 3, 4, 4)
    host = arrays.concat([np.zeros((1, 15, 3), np.float32), np.ones((1, 15, 3), np.float32)])
    assert isinstance(host, np.ndarray) and host.shape == (2, 15, 3)


def _host_networks(models):
    def call(name, feeds):
        out = models[name]({k: torch.as_tensor(np.asarray(v)) for k, v in feeds.items()})
        return {k: v.numpy() for k, v in out.items()}

    return call


def test_a_gpu_session_renders_what_a_host_session_renders(pb):
    """Two calls batched together, a keyframe refresh, END: the DLPack path and the numpy path agree,
    and once a call has started no source tensor is sent as a host array again."""
    rng = np.random.default_rng(0)
    src = [rng.random((1, 3, S, S), dtype=np.float32) for _ in range(3)]
    motion = lambda i: {  # noqa: E731
        "rotation": np.full((1, 3), i, np.float32), "translation": np.zeros((1, 3), np.float32),
        "expression": np.full((1, K, 3), 0.01 * i, np.float32)}
    from facecodec.codec.pipeline import MotionBatch

    batches = [
        [FrameRequest(1, start=True, source_image=src[0]), FrameRequest(2, start=True, source_image=src[1])],
        [FrameRequest(1, motion=MotionBatch(**motion(1))), FrameRequest(2, motion=MotionBatch(**motion(2)))],
        [FrameRequest(1, source_image=src[2], motion=MotionBatch(**motion(3)))],
        [FrameRequest(2, end=True, motion=MotionBatch(**motion(4)))],
    ]
    host = SessionStore(_host_networks(fake_models()), max_sessions=4, idle_s=60)
    device = SessionStore(BlsNetworks(pb, device="cpu"), max_sessions=4, idle_s=60, arrays=DeviceArrays("cpu"))
    for batch in batches:
        expected, got = host.decode(batch), device.decode(batch)
        for e, g in zip(expected, got):
            assert not isinstance(g, Exception), g
            assert isinstance(g, np.ndarray) and g.shape == (1, 3, S, S)
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)
    warp_requests = [r for r in pb.requests if r.model_name == "warp_decoder"]
    assert [len(r.inputs[0].data) for r in warp_requests] == [2, 2, 1, 1]  # one batched render per decode
    for r in warp_requests:
        via = {t.name(): t.via_dlpack for t in r.inputs}
        # the expression flow is computed on the host per frame (32 KiB at 256²) and placed beside f_s
        assert via == {"source_image": True, "source_features": True, "kp_source": False, "kp_driving": False,
                       "expression_flow": True}
    # a single call's frame is rendered from the session's own tensors, zero-copy
    assert set(device.sessions) == {1}
    refreshed = {t.name(): t.data for t in warp_requests[2].inputs}
    rx = device.sessions[1].receiver
    assert refreshed["source_features"].data_ptr() == rx.features.data_ptr()
    assert refreshed["source_image"].data_ptr() == rx.source_image.data_ptr()
