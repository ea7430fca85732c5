"""`make bench`: PyTorch eager vs ONNX Runtime on CPU, per served network, batch 1 and 8.

Both runtimes get the same thread count and the same inputs; each measurement is a median over
repeated runs after warm-up, and the two runtimes alternate per network so machine noise hits
both alike. Results are printed as a markdown table and appended to docs/benchmarks.md.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from .. import io_spec
from ..models import FaceVid2Vid
from ..onnx_export import example_inputs, served_modules
from ..runtime import OrtRunner


@dataclass
class Row:
    preset: str
    network: str
    batch: int
    torch_ms: float
    ort_ms: float

    def markdown(self) -> str:
        per = lambda ms: ms / self.batch  # noqa: E731
        return (
            f"| {self.preset} | {self.network} | {self.batch} | {per(self.torch_ms):.1f} "
            f"| {1e3 / per(self.torch_ms):.1f} "
            f"| {per(self.ort_ms):.1f} | {1e3 / per(self.ort_ms):.1f} | {self.torch_ms / self.ort_ms:.2f} |"
        )


HEADER = (
    "| preset | network | batch | PyTorch ms/frame | PyTorch frames/s | ORT ms/frame | ORT frames/s | ORT speed-up |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- |"
)


def _median_ms(fn, repeats: int, budget_s: float = 30.0, min_repeats: int = 3) -> float:
    """Median wall time of `fn` after one warm-up call; stops early (after `min_repeats`) once
    `budget_s` is spent, so full-size vox256 batches stay affordable."""
    fn()
    times: list[float] = []
    while len(times) < repeats and (len(times) < min_repeats or sum(times) < budget_s * 1e3):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench_model(model: FaceVid2Vid, onnx_dir: Path, batches=(1, 8), threads: int = 2, repeats: int = 10) -> list[Row]:
    torch.set_num_threads(threads)
    rows = []
    jobs = [(name, module, b) for name, module in served_modules(model).items() for b in batches]
    for name, module, batch in tqdm(jobs, desc=f"bench {model.cfg.name}", unit="case"):
        spec = io_spec.NETWORKS[name]
        inputs = example_inputs(spec, model.cfg, batch=batch)
        feeds = {n: x.numpy() for n, x in zip(spec.input_names, inputs)}
        with torch.inference_mode():
            torch_ms = _median_ms(lambda: module(*inputs), repeats)
        with OrtRunner(onnx_dir / f"{name}.onnx", threads=threads) as runner:
            ort_ms = _median_ms(lambda: runner.infer(feeds), repeats)
        rows.append(Row(model.cfg.name, name, batch, torch_ms, ort_ms))
    return rows


def machine_description(threads: int) -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {threads} threads, torch {torch.__version__}, onnxruntime {_ort_version()}"


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (GiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def decode_rate(rows: list[Row], preset: str) -> str:
    """The real-time figure: warp_decoder + motion_encoder per frame at batch 1 (ORT)."""
    per_frame = [r for r in rows if r.preset == preset and r.batch == 1
                 and r.network in ("warp_decoder", "motion_encoder")]
    ms, torch_ms = sum(r.ort_ms for r in per_frame), sum(r.torch_ms for r in per_frame)
    return (
        f"{preset}: motion_encoder + warp_decoder, batch 1: ORT {ms:.1f} ms/frame = {1e3 / ms:.1f} frames/s; "
        f"PyTorch eager {torch_ms:.1f} ms/frame = {1e3 / torch_ms:.1f} frames/s (same run)"
    )
