"""Triton python-backend glue: the `model.py` files delegate here.

Tensors are read by their io_spec names, one response is returned per request, and a request's
error goes into its own response (the batch and the server carry on). `triton_python_backend_utils`
exists only inside the backend stub, so it is imported when a model is constructed. The network
models take their tensor names from their config (rendered from io_spec and checked against it by a
test) and so never import torch: each stub process stays ~200 MB smaller.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from ..runtime import Runner, compile_cache, make_runner

log = logging.getLogger(__name__)


def _pb_utils():
    import triton_python_backend_utils as pb_utils

    return pb_utils


def request_parameters(request) -> dict:
    """A request's parameters ({} when absent or malformed)."""
    try:
        value = json.loads(request.parameters() or "{}")
    except (ValueError, TypeError, AttributeError):
        return {}
    return value if isinstance(value, dict) else {}


def session_token(request) -> str | None:
    """The request's session token parameter (`codec.session.TOKEN_PARAMETER`), None if absent."""
    from ..codec.session import TOKEN_PARAMETER

    token = request_parameters(request).get(TOKEN_PARAMETER)
    return token if isinstance(token, str) else None


class _Model:
    """Config parsing and the response helpers shared by the two model kinds."""

    def __init__(self, args: dict):
        self.pb = _pb_utils()
        self.name = args["model_name"]
        self.version_dir = Path(args["model_repository"]) / args["model_version"]
        config = json.loads(args["model_config"])
        self.params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.max_batch = int(config.get("max_batch_size", 1)) or 1
        self.input_names = [t["name"] for t in config["input"]]
        self.output_names = [t["name"] for t in config["output"]]
        logging.basicConfig(level=logging.INFO, format=f"%(levelname)s {self.name} %(name)s: %(message)s")

    def runner(self, filename: str, precision: str = "f32") -> Runner:
        # no spinning: several stub processes share the cores, and a spinning thread starves them
        runtime, threads = self.params.get("runtime", "onnxruntime"), int(self.params.get("ort_threads", 2))
        try:
            runner = make_runner(self.version_dir / filename, runtime, threads=threads, spin=False,
                                 max_batch=self.max_batch, precision=precision, cache_dir=compile_cache())
            runner.activate()
        except ImportError as err:  # e.g. openvino not installed (facecodec[openvino]): serve, but say so
            log.warning("%s: %s unavailable (%s); running ONNX Runtime instead", self.name, runtime, err)
            runner = make_runner(self.version_dir / filename, "onnxruntime", threads=threads, spin=False)
            runner.activate()
        log.info("%s: %s on %d thread(s), %s", self.name, type(runner).__name__, threads,
                 getattr(runner, "precision", "f32"))
        return runner

    def inputs(self, request, names) -> dict[str, np.ndarray | None]:
        tensors = {n: self.pb.get_input_tensor_by_name(request, n) for n in names}
        return {n: None if t is None else t.as_numpy() for n, t in tensors.items()}

    def response(self, result: dict[str, np.ndarray] | Exception):
        if isinstance(result, Exception):
            return self.pb.InferenceResponse(error=self.pb.TritonError(f"{self.name}: {result}"))
        tensors = [self.pb.Tensor(n, np.ascontiguousarray(result[n])) for n in self.output_names]
        return self.pb.InferenceResponse(output_tensors=tensors)


class InputError(ValueError):
    """A request's tensor that the network must not run on (reported in that request's response)."""


def check_inputs(feeds: dict[str, np.ndarray | None], names: list[str]) -> None:
    """Every input present, non-empty, of one batch size and finite (a NaN or inf image would come back
    as NaN motion or features, with no error). Triton has checked dtypes and dims against the config."""
    sizes = set()
    for name in names:
        value = feeds.get(name)
        if value is None or value.size == 0:
            raise InputError(f"{name}: missing or empty")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise InputError(f"{name}: values must be finite (NaN or inf found)")
        sizes.add(len(value))
    if len(sizes) != 1:
        raise InputError(f"inputs of different batch sizes {sorted(sizes)}")


def run_batch(feeds: list[dict[str, np.ndarray | None]], names: list[str], infer) -> list[dict | Exception]:
    """One network run over the valid requests of a dynamic batch (concatenated, split back); a request
    that fails `check_inputs` gets its error and the others their outputs."""
    results: list[dict | Exception | None] = [None] * len(feeds)
    valid = []
    for i, f in enumerate(feeds):
        try:
            check_inputs(f, names)
            valid.append(i)
        except InputError as err:
            results[i] = err
    if valid:
        try:
            out = infer({n: np.concatenate([feeds[i][n] for i in valid]) for n in names})
        except Exception as err:  # noqa: BLE001 - reported to every request of the failed run
            out = err
        bounds = np.cumsum([0, *(len(feeds[i][names[0]]) for i in valid)])
        for i, a, b in zip(valid, bounds[:-1], bounds[1:], strict=True):
            results[i] = out if isinstance(out, Exception) else {n: v[a:b] for n, v in out.items()}
    return results  # type: ignore[return-value]


class NetworkModel(_Model):
    """One served network on ONNX Runtime: the dynamic batch is concatenated into one run and split
    back per request."""

    def __init__(self, args: dict):
        super().__init__(args)
        self.ort = self.runner("model.onnx", self.params.get("warp_precision", "f32"))

    def execute(self, requests: list) -> list:
        results = run_batch([self.inputs(r, self.input_names) for r in requests], self.input_names, self.ort.infer)
        return [self.response(r) for r in results]

    def finalize(self) -> None:
        self.ort.deactivate()


class DecoderModel(_Model):
    """The stateful call session: f_s stays where the decoding runs (`SessionStore`).

    On CPU the warp network runs here on ONNX Runtime and the once-per-call networks
    (appearance_encoder, and motion_encoder when START carries no motion) are reached by BLS. On a
    GPU instance (the GPU repository shares this model) every network is a BLS call and the source
    tensors stay on the device (`bls.gpu_session_parts`).
    """

    def __init__(self, args: dict):
        from ..codec.session import HostArrays, SessionStore
        from .bls import BlsNetworks, RoutedNetworks, gpu_session_parts
        from .configs import CONTROLS, CORRID, WARP_FILE
        from .metrics import DecoderMetrics

        super().__init__(args)
        from ..runtime import quiet_helper_threads

        log.info("decoder: helper thread pools on one thread: %s", quiet_helper_threads())
        if args.get("model_instance_kind") == "GPU":
            networks, arrays = gpu_session_parts(self.pb, int(args["model_instance_device_id"]))
        else:
            local = {}
            if self.params.get("warp_in_decoder") != "false":
                local["warp_decoder"] = self.runner(WARP_FILE, self.params.get("warp_precision", "f32")).infer
            networks, arrays = RoutedNetworks(local, fallback=BlsNetworks(self.pb)), HostArrays()
        self.store = SessionStore(
            networks,
            arrays=arrays,
            max_sessions=int(self.params["max_sessions"]),
            idle_s=float(self.params["session_idle_s"]),
            require_token=True,  # a session belongs to the client that started it, not to its id
        )
        self.tensor_names = [*self.input_names, *CONTROLS, CORRID]
        labels = {"model": self.name, "version": str(args["model_version"]), "instance": args["model_instance_name"]}
        self.metrics = DecoderMetrics(self.pb, labels, SessionStore.STAGES)

    def execute(self, requests: list) -> list:
        from ..codec.session import FrameRequest
        from .metrics import dropped_frames

        started, decoded = time.perf_counter(), self.store.frames
        frames = []
        for request in requests:
            try:
                frames.append(FrameRequest.from_tensors(self.inputs(request, self.tensor_names),
                                                        token=session_token(request)))
            except Exception as err:  # noqa: BLE001 - a malformed request fails alone
                frames.append(err)
        try:
            results = self.store.decode(frames)
        except Exception as err:  # noqa: BLE001 - last resort: answer every request rather than raise
            log.exception("decoder batch failed")
            results = [err] * len(frames)
        self.metrics.record(sessions=len(self.store), decoded=self.store.frames - decoded,
                            dropped=sum(dropped_frames(r) for r in requests),
                            batch_seconds=time.perf_counter() - started, stage_seconds=self.store.seconds)
        return [self.response(r if isinstance(r, Exception) else {"output_image": r}) for r in results]

    def finalize(self) -> None:
        log.info("decoder finalised with %d live sessions", len(self.store))
        self.store.sessions.clear()
