"""Call-level profiler: N concurrent paced calls, every frame timed through every stage.

Each call is the real client (`calls.call`: motion_encoder over gRPC, MediaPipe landmarks,
bitstream, a simulated link, the live receiver, the `decoder` session), paced at the clip's frame
rate; the calls start staggered within one frame period, as independent calls would. A frame's
timeline (`CallResult.timeline`) gives the client's stages; the server's share of the decoder
request (queue, render) comes from Triton's trace of that request when one is given (its
timestamps are on the same monotonic clock). Stages, in order, add up to glass to glass:

| stage | from → to |
| --- | --- |
| motion_encoder | capture → motion estimated (gRPC to the server's `motion_encoder`) |
| landmarks | → expression channel coded (MediaPipe in the sender's process) |
| packetise | → packet bytes (bitstream; the first frame also codes the keyframe) |
| link | → arrived at the receiver (the simulated path) |
| depacketise | → decoded from the packet (bitstream decoder) |
| receiver_wait | → request sent (waiting for the decoder session's previous frame) |
| to_server | → Triton queued it (gRPC, request handling); with a trace |
| decoder_queue | → the decoder model started on it; with a trace |
| render | → the model returned it (keypoints, expression flow, warp_decoder); with a trace |
| from_server | → the response reached the client (output copy, gRPC); with a trace |
| decoder | request sent → response received (without a trace: the four above in one) |
| display | → shown (the frame to uint8) |
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..media import probe_fps, read_video
from .calls import CallResult, Connection, call
from .link import LinkModel

CLIENT_STAGES = (
    ("motion_encoder", "captured", "encoded"),
    ("landmarks", "encoded", "landmarks"),
    ("packetise", "landmarks", "packetised"),
    ("link", "packetised", "arrived"),
    ("depacketise", "arrived", "depacketised"),
    ("receiver_wait", "depacketised", "requested"),
)
SERVER_STAGES = (
    ("to_server", "requested", "server_queued"),
    ("decoder_queue", "server_queued", "server_compute_start"),
    ("render", "server_compute_start", "server_output_start"),
    ("from_server", "server_output_start", "answered"),
)
DECODER_STAGE = ("decoder", "requested", "answered")
DISPLAY_STAGE = ("display", "answered", "shown")
FRAME_BUDGET_MS = 40.0  # one frame period at 25 fps


@dataclass
class CallsProfile:
    """What N concurrent calls measured: each call's result, the wall-clock window (monotonic)."""

    results: list[CallResult]
    window: tuple[float, float]
    link: LinkModel
    fps: float
    errors: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.results) + len(self.errors)


def run_calls(conn: Connection, video: Path, *, calls: int, frames: int, link: LinkModel | None = None,
              expression: Callable[[], object] | None = None, live: bool = True, adapt_rate: bool = True
              ) -> CallsProfile:
    """`calls` concurrent calls of `frames` frames of `video`, paced; `expression`: a factory of the
    expression channel's sender (one per call), None for head motion only."""
    clip = read_video(video, max_frames=frames)
    fps = probe_fps(video)
    link = link or LinkModel()
    results: list[CallResult | None] = [None] * calls
    errors: list[str] = []

    def one(i: int) -> None:
        time.sleep(i / calls / fps)  # staggered within one frame period
        sender = expression() if expression is not None else None
        try:
            results[i] = call(conn, video, frames=clip, expression=sender, live=live, adapt_rate=adapt_rate,
                              link=LinkModel(link.delay_ms, link.jitter_ms, link.loss, seed=link.seed + i))
        except Exception as err:  # noqa: BLE001 - a failed call is reported, the others go on
            errors.append(f"call {i}: {err}")
        finally:
            if sender is not None:
                sender.close()

    threads = [threading.Thread(target=one, args=(i,), name=f"profiled-call-{i}") for i in range(calls)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return CallsProfile([r for r in results if r is not None], (start, time.monotonic()), link, fps, errors)


def attach_server_times(profile: CallsProfile, traces: dict[str, object]) -> int:
    """Adds each frame's server timestamps from Triton's trace of its decoder request (`traces`:
    request id → `tools.trace.Trace`-like with `.at(name)`); returns how many frames got them."""
    found = 0
    for result in profile.results:
        for stamps in result.timeline:
            trace = traces.get(stamps.get("request_id", ""))
            if trace is None:
                continue
            stamps["server_queued"] = trace.at("QUEUE_START")
            stamps["server_compute_start"] = trace.at("COMPUTE_START")
            # COMPUTE_END comes after the response is on its way (the backend releases the request last)
            stamps["server_output_start"] = trace.at("COMPUTE_OUTPUT_START")
            found += 1
    return found


def frame_rows(profile: CallsProfile) -> list[dict[str, float]]:
    """One row per shown frame: call, seq, each stage's ms and glass_to_glass ms. A frame's server
    stages come from its trace when every frame has one, else the one `decoder` stage."""
    shown = [(c, s) for c, r in enumerate(profile.results) for s in r.timeline if "shown" in s]
    traced = bool(shown) and all("server_output_start" in s for _, s in shown)
    stages = CLIENT_STAGES + (SERVER_STAGES if traced else (DECODER_STAGE,)) + (DISPLAY_STAGE,)
    rows = []
    for c, s in shown:
        row = {"call": c, "seq": s["seq"]}
        for name, a, b in stages:
            row[name] = 1e3 * (s[b] - s[a])
        row["glass_to_glass"] = 1e3 * (s["shown"] - s["captured"])
        row["receiver"] = 1e3 * (s["shown"] - s["arrived"])
        rows.append(row)
    return rows


def stage_names(rows: list[dict[str, float]]) -> list[str]:
    return [k for k in rows[0] if k not in ("call", "seq", "glass_to_glass", "receiver")] if rows else []


def percentiles(values, qs=(50, 95, 99)) -> dict[str, float]:
    values = np.asarray(values, float)
    out = {"mean": float(values.mean()) if len(values) else float("nan")}
    out.update({f"p{q}": float(np.percentile(values, q)) if len(values) else float("nan") for q in qs})
    return out


def summary(profile: CallsProfile, rows: list[dict[str, float]] | None = None) -> dict:
    """Stage and glass-to-glass percentiles, frame counts (captured, sent, shown, dropped, lost, late),
    aggregate shown frames/s, and the check that the stages add up (means, by construction of the
    timestamps: a gap means a clock or trace mismatch)."""
    rows = frame_rows(profile) if rows is None else rows
    names = stage_names(rows)
    reports = [r.report for r in profile.results]
    g2g = [r["glass_to_glass"] for r in rows]
    stage_sum = sum(np.mean([r[n] for r in rows]) for n in names) if rows else float("nan")
    seconds = profile.window[1] - profile.window[0]
    return {
        "calls": profile.calls,
        "failed_calls": len(profile.errors),
        "link": profile.link.describe(),
        "fps_target": profile.fps,
        "frames_captured": sum(r.frames for r in reports),
        "frames_sent": sum(r.frames_sent for r in reports),
        "frames_shown": len(rows),
        "frames_dropped": sum(r.frames_dropped for r in reports),
        "frames_lost": sum(r.frames_lost for r in reports),
        "frames_late": sum(1 for r in rows if r["receiver"] > FRAME_BUDGET_MS),
        "shown_fps_per_call": float(np.mean([r.fps_decoded for r in reports])) if reports else 0.0,
        "shown_fps_total": len(rows) / seconds if seconds > 0 else 0.0,
        "stages": {n: percentiles([r[n] for r in rows]) for n in names},
        "glass_to_glass": percentiles(g2g),
        "stage_sum_mean_ms": float(stage_sum),
        "traced": "render" in names,
    }
