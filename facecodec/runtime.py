"""Inference runtimes behind one small interface: activate → infer (by tensor name) → deactivate.

`OrtRunner` is the CPU path (ONNX Runtime). TensorRT runs inside Triton's own backend, so there is
no TensorRT runner here; its engines are built by `export/engines.py`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np


class Runner:
    """Context-managed runner; subclasses implement the `_impl` hooks."""

    def __init__(self) -> None:
        self.last_inference_ms: float | None = None
        self.active = False

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def activate(self) -> None:
        self._activate_impl()
        self.active = True

    def deactivate(self) -> None:
        self._deactivate_impl()
        self.active = False

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.active:
            raise RuntimeError(f"{type(self).__name__} is not active; use it as a context manager")
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise ValueError(f"missing inputs {sorted(missing)}; expected {self.input_names}")
        start = time.perf_counter()
        out = self._infer_impl(feeds)
        self.last_inference_ms = (time.perf_counter() - start) * 1e3
        return out

    input_names: list[str] = []

    def _activate_impl(self) -> None: ...
    def _deactivate_impl(self) -> None: ...
    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError


class OrtRunner(Runner):
    """ONNX Runtime on CPU with a fixed number of intra-op threads.

    Intra-op threads busy-wait between ops by default; `spin=False` makes them sleep instead, which
    matters when several processes (Triton stubs, a trainer) share a few cores. `rewrite` (default):
    the graph's 5-D GridSamples run as multi-threaded gathers (`ort_rewrite`), the file is unchanged.
    """

    OPTIMIZATION = ("disabled", "basic", "extended", "all")  # ONNX Runtime's graph optimisation levels

    def __init__(self, path: str | Path, threads: int = 2, spin: bool = True, rewrite: bool = True,
                 optimization: str = "all"):
        super().__init__()
        if optimization not in self.OPTIMIZATION:
            raise ValueError(f"unknown graph optimisation {optimization!r}; choose from {self.OPTIMIZATION}")
        self.path, self.threads, self.spin, self.rewrite = Path(path), threads, spin, rewrite
        self.optimization = optimization
        self.session = None
        self.rewritten = 0  # 5-D GridSamples replaced

    def _activate_impl(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        level = "ORT_DISABLE_ALL" if self.optimization == "disabled" else f"ORT_ENABLE_{self.optimization.upper()}"
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        model = self._rewritten() if self.rewrite else None
        self.session = ort.InferenceSession(model or str(self.path), opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _rewritten(self) -> bytes | None:
        """The rewritten graph's bytes, or None when nothing in it is rewritten (ONNX Runtime then reads
        the file itself)."""
        import onnx

        from .ort_rewrite import gather_grid_sample

        model = onnx.load(str(self.path), load_external_data=False)
        if not any(n.op_type == "GridSample" for n in model.graph.node):
            return None
        if _has_external(model):
            onnx.load_external_data_for_model(model, str(self.path.parent))
        model, self.rewritten = gather_grid_sample(model)
        return model.SerializeToString() if self.rewritten else None

    def _deactivate_impl(self) -> None:
        self.session = None

    def _infer_impl(self, feeds):
        feeds = {n: np.ascontiguousarray(feeds[n], dtype=np.float32) for n in self.input_names}
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))


def _has_external(model) -> bool:
    return any(t.data_location == t.EXTERNAL for t in model.graph.initializer)


class OpenVinoRunner(Runner):
    """OpenVINO's CPU plugin (`pip install facecodec[openvino]`) behind the same interface.

    OpenVINO reads ONNX but has no 5-D GridSample, so every one is rewritten first (`ort_rewrite`,
    whatever its channel count). Precision is pinned (`precision`, one of `PRECISIONS`, fp32 by default):
    on CPUs with bf16 units OpenVINO would otherwise pick bf16 for itself (up to 0.2 off on a [0, 1]
    frame, though −0.07 dB on whole calls: the served warp decoder asks for it, `ServingSettings`). bf16
    on a CPU without bf16 units runs as f32.

    A model is compiled per batch size (static shapes: a dynamic batch ran batch 1 at half the speed):
    the first of `batches` at activation, the rest on a background thread (a server compiles every
    batch it may get, so that no call waits for a compile, yet is ready after one), any other on first
    use. `cache_dir`: OpenVINO's compiled-model cache, so that a restarted server loads its compiled
    models instead of compiling them again (a crashed server is back sooner, issue 22).
    """

    def __init__(self, path: str | Path, threads: int = 2, batches: tuple[int, ...] = (1,), precision: str = "f32",
                 cache_dir: str | Path | None = None):
        super().__init__()
        self.path, self.threads, self.batches, self.precision = Path(path), threads, batches, precision
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.compiled: dict[int, object] = {}
        self.rewritten = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()  # set on deactivation: the background compiles stop

    def _activate_impl(self) -> None:
        import onnx
        import openvino as ov

        from .ort_rewrite import gather_grid_sample

        model, self.rewritten = gather_grid_sample(onnx.load(str(self.path)), min_channels=0)
        self.core = ov.Core()
        if self.cache_dir is not None:
            self.core.set_property({"CACHE_DIR": str(self.cache_dir)})
        self.model = self.core.read_model(model=model.SerializeToString())
        self.input_names = [i.get_any_name() for i in self.model.inputs]
        self.output_names = [o.get_any_name() for o in self.model.outputs]
        self._stop.clear()
        first, *rest = self.batches
        self._compiled(first)
        if rest:
            threading.Thread(target=self._compile_rest, args=(rest,), name="openvino-compile", daemon=True).start()

    def _compile_rest(self, batches: list[int]) -> None:
        try:  # at the lowest priority: a (re)starting server's other models load first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass
        for batch in batches:
            if self._stop.is_set():  # deactivated meanwhile: nothing to warm
                return
            self._compiled(batch)

    def _compiled(self, batch: int):
        if batch in self.compiled:  # no lock: a request must not wait behind another batch's compile
            return self.compiled[batch]
        with self._lock:  # one compile at a time; a request for a batch being compiled waits for it
            if batch not in self.compiled:
                model = self.model.clone()
                model.reshape({i.get_any_name(): [batch, *(d.get_length() for d in list(i.get_partial_shape())[1:])]
                               for i in model.inputs})
                compiled = self.core.compile_model(model, "CPU", {
                    "INFERENCE_PRECISION_HINT": self.precision, "INFERENCE_NUM_THREADS": self.threads,
                    "PERFORMANCE_HINT": "LATENCY"})
                self.compiled[batch] = compiled.create_infer_request()
            return self.compiled[batch]

    def _deactivate_impl(self) -> None:
        self._stop.set()
        with self._lock:  # after a compile in progress
            self.compiled.clear()

    def _infer_impl(self, feeds):
        feeds = {n: np.ascontiguousarray(feeds[n], dtype=np.float32) for n in self.input_names}
        request = self._compiled(len(feeds[self.input_names[0]]))
        out = request.infer(feeds)
        return {name: np.array(out[name]) for name in self.output_names}


RUNTIMES = ("onnxruntime", "openvino")
PRECISIONS = ("f32", "bf16")  # OpenVINO's inference precisions; ONNX Runtime's CPU kernels are f32 only


def quiet_helper_threads() -> list[str]:
    """Runs the receiver's small numpy work (the expression flow's matrix products, the keypoints) on
    one thread, and torch's where torch is loaded. Their thread pools busy-wait after each call and
    take the cores from the renderer's next ops: about a third of a lite frame on 2 cores
    (experiments/warp_runtimes.py --blas-threads 1). Returns the pools it limited (numpy's BLAS needs
    threadpoolctl)."""
    limited = []
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
        limited.append("blas")
    except ImportError:
        pass
    torch = sys.modules.get("torch")  # only where something imported it (the served decoder does not)
    if torch is not None:
        torch.set_num_threads(1)
        limited.append("torch")
    return limited


def compile_cache(name: str = "openvino") -> Path | None:
    """A per-user folder for compiled models: `$FACECODEC_CACHE_DIR/<name>`, else
    `$XDG_CACHE_HOME/facecodec/<name>` (`~/.cache/...`), created private (0700). None, and no cache,
    when it cannot be created or others may write to it: a compiled blob is code the runtime loads."""
    base = os.environ.get("FACECODEC_CACHE_DIR") or (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facecodec")
    folder = Path(base) / name
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = folder.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None
    return folder


def make_runner(path: str | Path, runtime: str = "onnxruntime", threads: int = 2, spin: bool = True,
                max_batch: int = 1, precision: str = "f32", cache_dir: str | Path | None = None) -> Runner:
    """The runner of `runtime` (one of `RUNTIMES`) for an ONNX file, ready for batches up to `max_batch`;
    `precision` and `cache_dir` (`compile_cache()`) apply to OpenVINO (ONNX Runtime computes in f32
    and compiles nothing worth caching)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {PRECISIONS}")
    if runtime == "onnxruntime":
        return OrtRunner(path, threads, spin=spin)
    if runtime == "openvino":
        return OpenVinoRunner(path, threads, batches=tuple(range(1, max_batch + 1)), precision=precision,
                              cache_dir=cache_dir)
    raise ValueError(f"unknown runtime {runtime!r}; choose from {RUNTIMES}")
