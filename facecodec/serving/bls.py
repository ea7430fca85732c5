"""The networks of the `decoder` session model: other models of the same server, reached by BLS.

On CPU the session runs the warp network itself (`RoutedNetworks`) and asks the once-per-call
networks by BLS with host tensors. On a GPU instance every network is a BLS call and the call's
source image and f_s stay CUDA tensors (`DeviceArrays`), handed over by DLPack, so nothing of the
source crosses to the host per frame. One `BlsNetworks` class does both.
"""

from __future__ import annotations

import numpy as np

from .. import io_spec


class RoutedNetworks:
    """`Networks` callable that runs some networks locally and the rest through `fallback`."""

    def __init__(self, local: dict, fallback):
        self.local, self.fallback = local, fallback

    def __call__(self, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.local[name](feeds) if name in self.local else self.fallback(name, feeds)


class BlsNetworks:
    """`Networks` callable over Business Logic Scripting: a request to another model of this server.

    Host mode (no device): numpy in, numpy out (copies: the response's memory belongs to the
    backend, the session keeps these for the call). Device mode (`device_id` or `device` given):
    inputs that are torch tensors go in through DLPack (zero-copy; Triton syncs the producer's
    stream), numpy inputs as host tensors; outputs are asked for in GPU memory, those the session
    keeps for the whole call (`KEPT_ON_DEVICE`) stay there as the session's own copy (once per call),
    the rest (keypoints, and the frames that go back to the client anyway) come to the host.
    """

    KEPT_ON_DEVICE = frozenset({io_spec.SOURCE_FEATURES.name})

    def __init__(self, pb_utils, device_id: int | None = None, device=None):
        self.pb, self.torch = pb_utils, None
        if device_id is not None or device is not None:
            import torch

            self.torch, self.device_id = torch, device_id or 0
            self.device = torch.device("cuda", self.device_id) if device is None else torch.device(device)

    def __call__(self, name: str, feeds: dict) -> dict:
        spec = io_spec.NETWORKS[name]
        on_device = {} if self.torch is None else {
            "preferred_memory": self.pb.PreferredMemory(self.pb.TRITONSERVER_MEMORY_GPU, self.device_id)}
        request = self.pb.InferenceRequest(
            model_name=name,
            requested_output_names=spec.output_names,
            inputs=[self._tensor(n, feeds[n]) for n in spec.input_names],
            **on_device,
        )
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"BLS request to {name} failed: {response.error().message()}")
        return {n: self._output(n, self.pb.get_output_tensor_by_name(response, n)) for n in spec.output_names}

    def _tensor(self, name: str, value):
        if self.torch is not None and self.torch.is_tensor(value):
            return self.pb.Tensor.from_dlpack(name, value.contiguous())
        return self.pb.Tensor(name, np.ascontiguousarray(value, np.float32))

    def _output(self, name: str, tensor):
        if self.torch is None:
            return np.array(tensor.as_numpy())
        view = self.torch.from_dlpack(tensor)  # the response's memory, GPU or host, no copy yet
        if name in self.KEPT_ON_DEVICE:
            return view.to(self.device, copy=True)  # outlives the response
        return view.to("cpu", copy=True).numpy()


class DeviceArrays:
    """Where a GPU session keeps its large tensors: torch tensors on one CUDA device.

    The session logic (`codec.session.SessionStore`) calls `place` once per source image (START or a
    new keyframe) and `concat` to batch the frames of several calls; keypoints stay small host arrays.
    """

    def __init__(self, device):
        import torch

        self.torch, self.device = torch, torch.device(device)

    def place(self, array: np.ndarray):
        """Host array → tensor on the device (one upload per source image)."""
        return self.torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(self.device)

    def concat(self, parts: list):
        """Batch along axis 0: numpy stays numpy, tensors are joined on the device (no copy for one)."""
        if not any(self.torch.is_tensor(p) for p in parts):
            return np.concatenate(parts)
        tensors = [p if self.torch.is_tensor(p) else self.place(p) for p in parts]
        return tensors[0] if len(tensors) == 1 else self.torch.cat(tensors)


def gpu_session_parts(pb_utils, device_id: int) -> tuple[BlsNetworks, DeviceArrays]:
    """What a decoder instance on GPU `device_id` runs its sessions with: (networks, arrays)."""
    import torch

    torch.cuda.set_device(device_id)
    return BlsNetworks(pb_utils, device_id), DeviceArrays(torch.device("cuda", device_id))
