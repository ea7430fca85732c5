"""Triton's `perf_analyzer` against the served models: input data, the runs, the CSV read back.

perf_analyzer is a binary of the `tritonclient` 2.51 wheel (later wheels carry none that runs on
Debian 12), kept in its own venv (`make perf-analyzer`; notes/triton-on-cpu.md): it finds the CUDA
runtime library it links (it never uses a GPU) beside it. Inputs are real, not zeros: the sample
clip's frames, the source's features, and for the stateful `decoder` the very requests a call sends
(START with the source picture and face, then one frame's motion and expression code per step), so
perf_analyzer runs whole sequences (`--sequence-length` = the steps of the data) and each
concurrency level is that many calls at once.
"""

from __future__ import annotations

import base64
import csv
import glob
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import io_spec
from ..codec.session import TOKEN_PARAMETER

PERF_ANALYZER_ENV = "FACECODEC_PERF_ANALYZER"
# CSV columns (µs) of perf_analyzer 2.51 and the names used here
COLUMNS = {
    "Concurrency": "concurrency",
    "Inferences/Second": "throughput",
    "Client Send": "client_send_us",
    "Network+Server Send/Recv": "network_us",
    "Server Queue": "queue_us",
    "Server Compute Input": "compute_input_us",
    "Server Compute Infer": "compute_infer_us",
    "Server Compute Output": "compute_output_us",
    "Client Recv": "client_recv_us",
    "p50 latency": "p50_us",
    "p90 latency": "p90_us",
    "p95 latency": "p95_us",
    "p99 latency": "p99_us",
    "Avg latency": "avg_us",
}


class PerfAnalyzerError(RuntimeError):
    """perf_analyzer is missing or failed (its output says why)."""


def find_perf_analyzer(path: str | Path | None = None) -> Path:
    """The binary: `path`, else $FACECODEC_PERF_ANALYZER, else `perf_analyzer` on PATH."""
    found = path or os.environ.get(PERF_ANALYZER_ENV) or shutil.which("perf_analyzer")
    if not found or not Path(found).is_file():
        raise PerfAnalyzerError(
            f"perf_analyzer not found (given {path!r}, ${PERF_ANALYZER_ENV}={os.environ.get(PERF_ANALYZER_ENV)!r}); "
            "`make perf-analyzer` installs it (tritonclient 2.51 in .venv-perf)")
    return Path(found).resolve()


def environment(binary: Path) -> dict[str, str]:
    """LD_LIBRARY_PATH with the CUDA runtime of the binary's venv (nvidia-cuda-runtime-cu12)."""
    env = dict(os.environ)
    venv = binary.parent.parent
    libs = glob.glob(str(venv / "lib" / "python3*" / "site-packages" / "nvidia" / "cuda_runtime" / "lib"))
    env["LD_LIBRARY_PATH"] = ":".join([*libs, env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
    return env


def _tensor(array: np.ndarray) -> dict:
    array = np.ascontiguousarray(array)
    shape = list(array.shape[1:])  # without the batch axis (max_batch_size > 0)
    if array.dtype == np.bool_:
        return {"content": array.reshape(-1).tolist(), "shape": shape}
    return {"b64": base64.b64encode(array.astype(np.float32).tobytes()).decode(), "shape": shape}


def write_input_data(path: Path, steps: list[dict[str, np.ndarray]], *, sequence: bool) -> Path:
    """perf_analyzer's --input-data JSON: each step's tensors (batch axis 1); a sequence model's
    steps form one stream (a call), a stateless model's are alternatives it cycles through."""
    rows = [{name: _tensor(value) for name, value in step.items()} for step in steps]
    path.write_text(json.dumps({"data": [rows] if sequence else rows}))
    return path


@dataclass
class PerfRun:
    model: str
    rows: list[dict[str, float]]  # one per concurrency level (COLUMNS' names)
    command: list[str]  # the first level's
    seconds: float


def run(binary: Path, url: str, model: str, data: Path, *, concurrency: tuple[int, ...], out_dir: Path,
        window_ms: int = 2000, stability: int = 100, trials: int = 5, sequence_length: int | None = None,
        timeout: float = 300.0) -> PerfRun:
    """perf_analyzer over gRPC, one run per concurrency level (CSV files kept in `out_dir`). A level
    that does not settle within `stability` % over `trials` windows (a busy shared machine) is measured
    again without the stability test and its row marked `stable: 0`."""
    import time

    rows, commands, start = [], [], time.monotonic()
    for level in concurrency:
        out_csv = out_dir / f"perf_{model}_c{level}.csv"
        command = [
            str(binary), "-m", model, "-u", url, "-i", "grpc", "--input-data", str(data),
            "--concurrency-range", str(level), "-p", str(window_ms), "-r", str(trials),
            "-f", str(out_csv), "--percentile", "95",
        ]
        if sequence_length:
            # every sequence STARTs with (and keeps sending) a session token, as a client does
            command += ["--sequence-length", str(sequence_length), "--sequence-id-range", "1:1000000",
                        "--request-parameter", f"{TOKEN_PARAMETER}:{secrets.token_hex(16)}:string"]
        stable = 1.0
        proc = _perf(command + ["-s", str(stability)], timeout)
        if proc.returncode != 0 and "stable measurement" in proc.stdout + proc.stderr:
            stable = 0.0
            proc = _perf(command + ["-s", "100000"], timeout)
        if proc.returncode != 0 or not out_csv.is_file():
            raise PerfAnalyzerError(f"perf_analyzer on {model} (concurrency {level}) exited {proc.returncode}:\n"
                                    f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        rows += [{**r, "stable": stable} for r in read_csv(out_csv)]
        commands.append(command + ["-s", str(stability)])
    return PerfRun(model, rows, commands[0], time.monotonic() - start)


def _perf(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=environment(Path(command[0])), timeout=timeout)


def read_csv(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{COLUMNS[k]: float(v) for k, v in row.items() if k in COLUMNS} for row in csv.DictReader(f)]


def network_steps(name: str, feeds: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The one input set of a stateless network, by its io_spec names."""
    spec = io_spec.NETWORKS[name]
    return [{n: np.ascontiguousarray(feeds[n][:1], np.float32) for n in spec.input_names}]
