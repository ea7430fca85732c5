"""Triton's trace files (`--trace-config mode=triton`, level TIMESTAMPS) read back per request.

A trace file is a JSON list of entries: one names a trace's model and request id, others carry its
timestamps (ns of the server's CLOCK_MONOTONIC, the clock `time.monotonic()` reads on the same
machine, so server and client times of a frame line up). Per request this gives the server's
share of a frame: queue (QUEUE_START → COMPUTE_START), compute (COMPUTE_START → COMPUTE_END, with
input / infer / output parts) and the whole request (REQUEST_START → REQUEST_END).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPANS = {  # name: (from, to)
    "queue": ("QUEUE_START", "COMPUTE_START"),
    "compute": ("COMPUTE_START", "COMPUTE_END"),
    "compute_input": ("COMPUTE_START", "COMPUTE_INPUT_END"),
    "compute_infer": ("COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START"),
    "compute_output": ("COMPUTE_OUTPUT_START", "COMPUTE_END"),
    "request": ("REQUEST_START", "REQUEST_END"),
}


@dataclass
class Trace:
    model: str
    request_id: str
    ns: dict[str, int] = field(default_factory=dict)  # timestamp name → ns

    def seconds(self, span: str) -> float | None:
        start, end = SPANS[span]
        if start not in self.ns or end not in self.ns:
            return None
        return (self.ns[end] - self.ns[start]) / 1e9

    def at(self, name: str) -> float | None:
        """A timestamp in seconds of the monotonic clock (comparable with time.monotonic())."""
        return self.ns[name] / 1e9 if name in self.ns else None


def read_traces(paths: list[Path]) -> list[Trace]:
    """Every trace in the files (a trace's entries share its id within one file)."""
    traces: list[Trace] = []
    for path in paths:
        by_id: dict[int, Trace] = {}
        for entry in json.loads(Path(path).read_text() or "[]"):
            trace = by_id.setdefault(entry["id"], Trace("", ""))
            if "model_name" in entry:
                trace.model, trace.request_id = entry["model_name"], entry.get("request_id", "")
            for stamp in entry.get("timestamps", []):
                trace.ns[stamp["name"]] = int(stamp["ns"])
        traces += [t for t in by_id.values() if t.model]
    return traces


def trace_files(stem: Path) -> list[Path]:
    """The files Triton wrote for trace file `stem` (`stem`, or `stem.0`, `stem.1`, … with log_frequency)."""
    found = sorted(stem.parent.glob(stem.name + ".*"), key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit()
                   else -1)
    return ([stem] if stem.is_file() else []) + [p for p in found if p.suffix[1:].isdigit()]


def summary(traces: list[Trace], window: tuple[float, float] | None = None) -> dict[str, dict[str, float]]:
    """Per model: requests, and mean / p50 / p95 ms of each span (requests whose REQUEST_START falls in
    `window`, monotonic seconds, when given)."""
    out: dict[str, dict[str, float]] = {}
    for model in sorted({t.model for t in traces}):
        mine = [t for t in traces if t.model == model and _inside(t, window)]
        row: dict[str, float] = {"requests": len(mine)}
        for span in SPANS:
            values = np.array([s for t in mine if (s := t.seconds(span)) is not None]) * 1e3
            if len(values):
                row[f"{span}_mean_ms"] = float(values.mean())
                row[f"{span}_p50_ms"] = float(np.percentile(values, 50))
                row[f"{span}_p95_ms"] = float(np.percentile(values, 95))
        out[model] = row
    return out


def _inside(trace: Trace, window: tuple[float, float] | None) -> bool:
    start = trace.at("REQUEST_START")
    return window is None or (start is not None and window[0] <= start <= window[1])


def by_request(traces: list[Trace], model: str) -> dict[str, Trace]:
    return {t.request_id: t for t in traces if t.model == model and t.request_id}
