"""`make profile` (`facecodec profile`): where a call's milliseconds go, against a real tritonserver.

    facecodec profile --out artifacts/profile [--quick] [--calls 1 2 4] [--frames 100]

Writes a Markdown report (`report.md`) with PNG plots and the raw data (`profile.json`, `frames.csv`,
`perf.csv`, `sweep.csv`, `capacity.csv`, Triton's trace) to `--out`:

1. perf_analyzer on every served model (`tools.perf`): a concurrency sweep, p50/p90/p95/p99,
   throughput and the server's queue/compute split; the `decoder` as whole call sequences.
2. The call-level profiler (`client.profiler`): N concurrent paced calls over a simulated link, each
   frame timed through every stage; the server's share of each decoder request from Triton's trace
   (`tools.trace`), the server's metrics (Triton's and the decoder's own) before and after.
3. A sweep of the decoder's batching (max queue delay) and instance count at a fixed number of calls,
   and the settings it recommends for this machine.
4. Capacity: the most concurrent calls one server holds at the clip's frame rate with p95 glass to
   glass ≤ 150 ms and ≥ 95 % of the captured frames shown, with the recommended settings.

The expression channel's landmarks run once per clip frame before the calls (MediaPipe's cost per
frame is measured and reported): a real sender measures its own camera on its own device, so N
senders in this process would only take the server's cores.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..bitstream import decode_stream, stream_bytes
from ..client import profiler
from ..client.calls import Connection
from ..client.link import LinkModel
from ..codec.pipeline import MotionBatch, OrtNetworks, Receiver, images_to_batch
from ..codec.receiver import frame_requests
from ..codec.sender import Sender, stream_header
from ..commands import run_command
from ..media import probe_fps, read_video
from ..serving import repository
from ..serving.metrics import ACTIVE_SESSIONS
from ..serving.server import TritonServer, model_metric
from ..serving.settings import ServingSettings
from . import perf, trace
from .profile_report import write_report

log = logging.getLogger(__name__)
NETWORK_MODELS = ("motion_encoder", "appearance_encoder", "warp_decoder")
G2G_LIMIT_MS = 150.0
SHOWN_MIN = 0.95


@dataclass
class ProfileConfig:
    video: Path
    out: Path
    onnx: Path
    repository: Path
    calls: tuple[int, ...] = (1, 2, 4)
    frames: int = 100
    perf_levels: dict[str, tuple[int, ...]] = field(default_factory=lambda: {
        **dict.fromkeys(NETWORK_MODELS, (1, 2, 4)), "decoder": (1, 2, 4, 8)})
    perf_window_ms: int = 2000
    link: LinkModel = LinkModel(delay_ms=20.0, jitter_ms=5.0, loss=0.01)
    sweep: tuple[ServingSettings, ...] = ()
    sweep_calls: int = 4
    capacity_max: int = 8
    capacity_frames: int = 100
    expression: bool = True
    perf_analyzer: Path | None = None
    settings: ServingSettings = ServingSettings()
    server: "RunningServer | None" = None  # profile a server someone else runs (no sweep; capacity on it)

    @classmethod
    def quick(cls, **kw) -> "ProfileConfig":
        """The short version (CI): one level per model, two call levels, a two-point sweep, capacity to 2."""
        return cls(calls=(1, 2), frames=40, perf_levels={**dict.fromkeys(NETWORK_MODELS, (1,)), "decoder": (1, 2)},
                   perf_window_ms=1500, sweep=(ServingSettings(), ServingSettings(queue_delay_us=0)),
                   sweep_calls=2, capacity_max=2, capacity_frames=40, **kw)


def default_sweep() -> tuple[ServingSettings, ...]:
    """The decoder's batching delay at one instance, and two instances with 1 or 2 threads each (two frames
    rendered at once, one per core, against one frame on both cores)."""
    one = tuple(ServingSettings(queue_delay_us=delay) for delay in (0, 2000, 10000))
    two = tuple(ServingSettings(queue_delay_us=delay, decoder_instances=2, ort_threads=1) for delay in (0, 2000))
    batch = ServingSettings(queue_delay_us=10000, preferred_batch=2)  # wait up to 10 ms for a pair of calls' frames
    return (*one, batch, *two, ServingSettings(queue_delay_us=0, decoder_instances=2))


class TracedServer(TritonServer):
    """The server with Triton's trace ready (level OFF until `tracing(True)`), written to `trace_file`
    at shutdown."""

    def __init__(self, repository_dir: Path, trace_file: Path, **kw):
        super().__init__(repository_dir, **kw)
        self.trace_file = trace_file

    def command(self) -> list[str]:
        return super().command() + ["--trace-config", f"triton,file={self.trace_file}",
                                    "--trace-config", "level=OFF", "--trace-config", "rate=1"]

    def tracing(self, on: bool, log_frequency: int = 0) -> None:
        """Trace every request (or none); 0: the file is written at shutdown, n: every n traces."""
        body = {"trace_level": ["TIMESTAMPS" if on else "OFF"], "trace_rate": "1", "log_frequency": str(log_frequency)}
        request = urllib.request.Request(self.http_url + "/v2/trace/setting", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()


class RunningServer:
    """A server started elsewhere (e.g. the GPU container, docs/gpu.md): perf_analyzer, the calls and the
    capacity run against it; Triton's trace is read when the server writes it to `trace_file` here
    (started with `--trace-config triton,file=...`)."""

    def __init__(self, grpc_url: str, http_url: str, metrics_url: str, trace_file: Path | None = None):
        self.grpc_url, self.http_url, self.metrics_url, self.trace_file = grpc_url, http_url, metrics_url, trace_file

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        from ..serving.server import parse_metrics

        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return parse_metrics(resp.read().decode())

    def tracing(self, on: bool) -> None:
        if self.trace_file is not None:  # a file per trace: the server keeps running after the profile
            TracedServer.tracing(self, on, log_frequency=1)


class CachedExpression:
    """The expression channel's sender with MediaPipe's answers computed once per clip frame (`warm`),
    so that N concurrent calls of one clip do not run N landmarkers on the server's cores."""

    def __init__(self, sender):
        self.sender, self.basis = sender, sender.basis
        self._codes: dict[bytes, np.ndarray] = {}
        self._faces: dict[bytes, object] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(image: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()

    def warm(self, frames: np.ndarray) -> float:
        """Landmarks of every frame (and the first as a source); MediaPipe's ms per frame."""
        start = time.perf_counter()
        for frame in frames:
            self.encode(frame[None])
        ms = 1e3 * (time.perf_counter() - start) / len(frames)
        self.source_face(frames[0])
        return ms

    def source_face(self, image: np.ndarray):
        key = self._key(image)
        with self._lock:
            if key not in self._faces:
                self._faces[key] = self.sender.source_face(image)
            return self._faces[key]

    def encode(self, frames: np.ndarray) -> np.ndarray:
        out = []
        with self._lock:
            for frame in frames:
                key = self._key(frame)
                if key not in self._codes:
                    self._codes[key] = self.sender.encode(frame[None])[0]
                out.append(self._codes[key])
        return np.stack(out)

    def close(self) -> None:  # shared by every call; the owner closes `sender`
        pass


def model_inputs(onnx_dir: Path, clip: np.ndarray, fps: float, expression) -> dict[str, list[dict[str, np.ndarray]]]:
    """perf_analyzer's inputs, from the clip: a frame, the source, the warp's feeds, and the decoder
    requests of the whole clip as one call would send them."""
    networks = OrtNetworks(onnx_dir)
    header = stream_header("lite", 15, clip.shape[1], fps, expression=expression)
    chunks = Sender(networks, header, expression=expression).send(clip)
    frames = decode_stream(stream_bytes(header, chunks)).frames
    requests = list(frame_requests(frames, session_id=1))
    image = images_to_batch(clip[:1])
    rx = Receiver(networks)
    first = requests[0]
    rx.set_source(first.source_image, first.motion, first.source_face)
    motion = MotionBatch.from_motions([frames[len(frames) // 2].motion])
    warp = {"source_image": rx.source_image, "source_features": rx.features, "kp_source": rx.kp_source,
            "kp_driving": rx.driving_keypoints(motion), "expression_flow": rx.expression_flow(motion)}
    return {
        "motion_encoder": [{"image": image}],
        "appearance_encoder": [{"source_image": image}],
        "warp_decoder": perf.network_steps("warp_decoder", warp),
        "decoder": [r.to_tensors() for r in requests],
    }


def perf_section(server: TritonServer, inputs: dict, cfg: ProfileConfig, binary: Path) -> list[dict]:
    rows = []
    data_dir = cfg.out / "perf_inputs"
    data_dir.mkdir(parents=True, exist_ok=True)
    for model, levels in cfg.perf_levels.items():
        sequence = model == "decoder"
        data = perf.write_input_data(data_dir / f"{model}.json", inputs[model], sequence=sequence)
        result = perf.run(binary, server.grpc_url, model, data, concurrency=levels, out_dir=data_dir,
                          window_ms=cfg.perf_window_ms, sequence_length=len(inputs[model]) if sequence else None)
        log.info("perf_analyzer %s: %.0f s", model, result.seconds)
        rows += [{"model": model, **r, "command": " ".join(Path(c).name if i == 0 else c
                                                             for i, c in enumerate(result.command))}
                 for r in result.rows]
    return rows


def _decoder_metrics(server: TritonServer) -> dict[str, float]:
    m = server.metrics()
    names = ("nv_inference_count", "nv_inference_exec_count", "nv_inference_queue_duration_us",
             "nv_inference_compute_infer_duration_us", "nv_inference_request_success",
             "facecodec_frames_decoded_total", "facecodec_frames_dropped_total",
             "facecodec_render_seconds_sum", "facecodec_render_seconds_count")
    out = {n: model_metric(m, n, "decoder") for n in names}
    for key, value in m.items():
        if key.startswith("facecodec_stage_seconds_total{"):
            out["stage_" + key.split('stage="')[1].split('"')[0]] = value
    return out


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


def profile_level(server: TritonServer, cfg: ProfileConfig, calls: int, frames: int, expression) -> dict:
    """N concurrent calls; the summary, the frame rows, the decoder's metric deltas and the most
    live sessions seen on /metrics while they ran."""
    sessions: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.25):
            try:
                sessions.append(model_metric(server.metrics(), ACTIVE_SESSIONS, "decoder"))
            except OSError:
                pass

    poller = threading.Thread(target=poll, daemon=True)
    before = _decoder_metrics(server)
    poller.start()
    try:
        result = profiler.run_calls(Connection(server.grpc_url, timeout=120.0), cfg.video, calls=calls,
                                    frames=frames, link=cfg.link, expression=(lambda: expression) if expression
                                    else None)
    finally:
        stop.set()
        poller.join()
    metrics = _delta(before, _decoder_metrics(server))
    executions = max(metrics["nv_inference_exec_count"], 1.0)
    metrics["avg_batch"] = metrics["nv_inference_count"] / executions
    return {"calls": calls, "profile": result, "metrics": metrics, "max_sessions_seen": max(sessions, default=0.0)}


def calls_section(server: TracedServer, cfg: ProfileConfig, expression) -> list[dict]:
    levels = []
    server.tracing(True)
    try:
        for calls in cfg.calls:
            levels.append(profile_level(server, cfg, calls, cfg.frames, expression))
            log.info("%d calls: done", calls)
    finally:
        server.tracing(False)
    return levels


def _served(settings: ServingSettings, cfg: ProfileConfig, tmp: Path, name: str, running=None):
    """A server with `settings`: `running` (the profile's main server) when it has them, else a new one."""
    if cfg.server is not None:
        return cfg.server
    if running is not None and settings == cfg.settings:
        return contextlib.nullcontext(running)
    repo = repository.stage(cfg.repository, tmp / name, cfg.onnx, settings)
    return TritonServer(repo, log_path=cfg.out / "logs" / f"{name}.log", startup_timeout=300, settle=True)


def describe(settings: ServingSettings) -> str:
    preferred = settings.preferred_batch or settings.max_batch_size
    return (f"queue delay {settings.queue_delay_us} µs, preferred batch {preferred}, {settings.decoder_instances} "
            f"decoder instance(s) × {settings.ort_threads} thread(s), {settings.runtime}")


def sweep_section(cfg: ProfileConfig, expression, tmp: Path, running=None) -> list[dict]:
    rows = []
    for i, settings in enumerate(cfg.sweep):
        with _served(settings, cfg, tmp, f"sweep{i}", running) as server:
            level = profile_level(server, cfg, cfg.sweep_calls, cfg.capacity_frames, expression)
        s = profiler.summary(level["profile"])
        rows.append({"settings": describe(settings), "queue_delay_us": settings.queue_delay_us,
                     "decoder_instances": settings.decoder_instances, "threads": settings.ort_threads,
                     "preferred_batch": settings.preferred_batch or settings.max_batch_size,
                     "calls": cfg.sweep_calls,
                     "shown_fps_total": s["shown_fps_total"], "g2g_p50_ms": s["glass_to_glass"]["p50"],
                     "g2g_p95_ms": s["glass_to_glass"]["p95"], "shown_share": _shown_share(s),
                     "avg_batch": level["metrics"]["avg_batch"]})
        log.info("sweep %s: %.1f frames/s, p95 %.0f ms", describe(settings), s["shown_fps_total"],
                 s["glass_to_glass"]["p95"])
    return rows


def _shown_share(s: dict) -> float:
    """Frames shown of those captured: a call that holds its rate shows them all (the sender lowers its
    rate when the receiver falls behind, so shown of sent alone would hide that)."""
    return s["frames_shown"] / max(s["frames_captured"], 1)


def recommend(sweep: list[dict], settings: tuple[ServingSettings, ...]) -> tuple[ServingSettings, str]:
    """Most frames shown per second among the settings that kept p95 ≤ 150 ms (else the lowest p95)."""
    if not sweep:
        return ServingSettings(), "no sweep ran: the defaults"
    ok = [i for i, r in enumerate(sweep) if r["g2g_p95_ms"] <= G2G_LIMIT_MS]
    if ok:
        best = max(ok, key=lambda i: (round(sweep[i]["shown_fps_total"], 0), -sweep[i]["g2g_p95_ms"]))
        why = "most frames shown per second with p95 glass to glass ≤ 150 ms (ties: the lower p95)"
    else:
        best = min(range(len(sweep)), key=lambda i: sweep[i]["g2g_p95_ms"])
        why = "no setting kept p95 ≤ 150 ms: the lowest p95"
    return settings[best], why


def capacity_section(cfg: ProfileConfig, settings: ServingSettings, expression, tmp: Path,
                     running=None) -> tuple[int, list[dict]]:
    """Calls 1, 2, … until one fails the 150 ms / 95 % test (or `capacity_max`); the last that passed."""
    rows, held = [], 0
    with _served(settings, cfg, tmp, "capacity", running) as server:
        for calls in range(1, cfg.capacity_max + 1):
            level = profile_level(server, cfg, calls, cfg.capacity_frames, expression)
            s = profiler.summary(level["profile"])
            passed = (s["glass_to_glass"]["p95"] <= G2G_LIMIT_MS and _shown_share(s) >= SHOWN_MIN
                      and not s["failed_calls"])
            rows.append({"calls": calls, "g2g_p50_ms": s["glass_to_glass"]["p50"],
                         "g2g_p95_ms": s["glass_to_glass"]["p95"], "shown_share": _shown_share(s),
                         "shown_fps_per_call": s["shown_fps_per_call"], "passed": passed})
            log.info("capacity %d calls: p95 %.0f ms, %.0f %% shown → %s", calls, s["glass_to_glass"]["p95"],
                     100 * _shown_share(s), "holds" if passed else "fails")
            if not passed:
                break
            held = calls
    return held, rows


def client_vs_perf(levels: list[dict], perf_rows: list[dict]) -> list[dict]:
    """The decoder request's latency (sent → answered) seen by the call profiler against perf_analyzer's
    for the same model and concurrency, p50."""
    out = []
    for level in levels:
        pa = [r for r in perf_rows if r["model"] == "decoder" and int(r["concurrency"]) == level["calls"]]
        if not pa:
            continue
        client = [1e3 * (s["answered"] - s["requested"]) for r in level["profile"].results for s in r.timeline
                  if "answered" in s and "requested" in s]
        ratio = float(np.median(client)) / (pa[0]["p50_us"] / 1e3)
        out.append({"calls": level["calls"], "client_p50_ms": float(np.median(client)),
                    "perf_analyzer_p50_ms": pa[0]["p50_us"] / 1e3, "ratio": ratio,
                    "within_20pct": abs(ratio - 1.0) <= 0.2})
    return out


def machine() -> dict:
    load = os.getloadavg()
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_1min": round(load[0], 2), "python": platform.python_version()}


def run_profile(cfg: ProfileConfig) -> dict:
    """Every section in turn; returns what `write_report` writes."""
    started = time.monotonic()
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "logs").mkdir(exist_ok=True)
    binary = perf.find_perf_analyzer(cfg.perf_analyzer)
    repository.ensure_export(cfg.onnx, cfg.settings.preset)
    clip = read_video(cfg.video, max_frames=max(cfg.frames, cfg.capacity_frames))
    fps = probe_fps(cfg.video)
    owner = expression = None
    landmarks_ms = None
    load = [machine()]
    if cfg.expression:
        from ..expression import ExpressionSender

        owner = ExpressionSender()
        expression = CachedExpression(owner)
        landmarks_ms = expression.warm(clip)
    try:
        inputs = model_inputs(cfg.onnx, clip[: cfg.frames], fps, expression)
        trace_file = cfg.out / "trace.json" if cfg.server is None else cfg.server.trace_file
        for old in trace.trace_files(trace_file) if trace_file else ():
            old.unlink()
        with tempfile.TemporaryDirectory(prefix="facecodec-profile-") as tmp:
            tmp = Path(tmp)
            if cfg.server is None:
                repo = repository.stage(cfg.repository, tmp / "main", cfg.onnx, cfg.settings)
                server = TracedServer(repo, trace_file, log_path=cfg.out / "logs" / "main.log", startup_timeout=300)
            else:
                server = cfg.server
            with server:  # kept for the sweep and the capacity where their settings are the same
                perf_rows = perf_section(server, inputs, cfg, binary)
                levels = calls_section(server, cfg, expression)
                sweep = sweep_section(cfg, expression, tmp, server)
                recommended, why = recommend(sweep, cfg.sweep)
                capacity, capacity_rows = capacity_section(cfg, recommended, expression, tmp, server) \
                    if cfg.capacity_max else (0, [])
            traces = trace.read_traces(trace.trace_files(trace_file)) if trace_file else []  # written at shutdown
            decoder_traces = trace.by_request(traces, "decoder")
            for level in levels:
                level["traced_frames"] = profiler.attach_server_times(level["profile"], decoder_traces)
        load.append(machine())
    finally:
        if owner is not None:
            owner.close()
    windows = [lv["profile"].window for lv in levels]
    return {
        "config": {"video": str(cfg.video), "frames": cfg.frames, "calls": list(cfg.calls),
                   "link": cfg.link.describe(), "expression": cfg.expression, "settings": describe(cfg.settings),
                   "perf_levels": {k: list(v) for k, v in cfg.perf_levels.items()}},
        "machine": {"start": load[0], "end": load[-1]},
        "landmarks_ms_per_frame": landmarks_ms,
        "perf": perf_rows,
        "levels": levels,
        "trace": trace.summary(traces, (min(w[0] for w in windows), max(w[1] for w in windows)) if windows
                               else None),
        "client_vs_perf": client_vs_perf(levels, perf_rows),
        "sweep": sweep,
        "recommended": {"settings": describe(recommended), "why": why, **dataclasses.asdict(recommended)},
        "capacity": {"calls": capacity, "rows": capacity_rows, "settings": describe(recommended),
                     "criterion": f"p95 glass to glass ≤ {G2G_LIMIT_MS:g} ms and ≥ {100 * SHOWN_MIN:g} % of the "
                                  f"captured frames shown, at {fps:g} fps"},
        "seconds": time.monotonic() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facecodec profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return run_command(lambda: cmd_profile(args), log)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("artifacts/profile"), help="report folder")
    parser.add_argument("--video", type=Path, default=Path("samples/talking_00086_4s.mp4"))
    parser.add_argument("--onnx", type=Path, default=Path("artifacts/onnx/lite"), help="export directory")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"), help="template repository")
    parser.add_argument("--quick", action="store_true", help="the short version (CI): fewer levels and frames")
    parser.add_argument("--calls", type=int, nargs="+", help="concurrent call levels (default 1 2 4)")
    parser.add_argument("--frames", type=int, help="frames per profiled call (default 100)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the batching/instance sweep")
    parser.add_argument("--capacity-max", type=int, help="most calls the capacity search tries (0: skip)")
    parser.add_argument("--perf-analyzer", type=Path, help=f"the binary (default ${perf.PERF_ANALYZER_ENV})")
    parser.add_argument("--runtime", choices=("onnxruntime", "openvino"), help="the served models' runtime (default: "
                        f"the serving default, {ServingSettings().runtime}), for every server of the profile")
    parser.add_argument("--no-expression", dest="expression", action="store_false",
                        help="calls without the expression channel")
    running = parser.add_argument_group("a server already running (e.g. the GPU container; no sweep)")
    running.add_argument("--url", help="its gRPC address, host:port")
    running.add_argument("--http-url", help="its HTTP address (trace settings), http://host:port")
    running.add_argument("--metrics-url", help="its metrics, http://host:port/metrics")
    running.add_argument("--trace-file", type=Path, help="where it writes Triton's trace (--trace-config triton,file=)")
    LinkModel.add_arguments(parser)
    parser.set_defaults(link_delay_ms=20.0, link_jitter_ms=5.0, link_loss=0.01)


def config_from_arguments(args) -> ProfileConfig:
    common = dict(video=args.video, out=args.out, onnx=args.onnx, repository=args.repository,
                  link=LinkModel.from_arguments(args), expression=args.expression, perf_analyzer=args.perf_analyzer)
    cfg = ProfileConfig.quick(**common) if args.quick else ProfileConfig(sweep=default_sweep(), **common)
    changes = {k: v for k, v in (("calls", tuple(args.calls) if args.calls else None), ("frames", args.frames),
                                  ("capacity_max", args.capacity_max)) if v is not None}
    if args.no_sweep:
        changes["sweep"] = ()
    if args.runtime:
        changes["settings"] = cfg.settings.with_(runtime=args.runtime)
        changes["sweep"] = tuple(s.with_(runtime=args.runtime) for s in changes.get("sweep", cfg.sweep))
    if args.url:
        if not (args.http_url and args.metrics_url):
            raise ValueError("--url needs --http-url and --metrics-url")
        changes["server"] = RunningServer(args.url, args.http_url, args.metrics_url, args.trace_file)
        changes["sweep"] = ()
    return dataclasses.replace(cfg, **changes)


def cmd_profile(args) -> int:
    result = run_profile(config_from_arguments(args))
    paths = write_report(result, args.out)
    print(f"profile: {result['seconds']:.0f} s → {paths['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
