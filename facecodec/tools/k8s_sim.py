"""`make k8s-sim`: the rendered HorizontalPodAutoscaler replayed over a day of calls.

    python -m facecodec.tools.k8s_sim --manifests cpu.json [--capacity k8s/capacity.json] --out DIR

The HPA is simulated as kube-controller-manager computes it (autoscaling/v2, pkg/controller/podautoscaler):
every 15 s, per metric, desired = ceil(ready pods with the metric × average / target), unchanged
within the 10 % tolerance; pods missing the metric count as 0 when scaling up and as the target when
scaling down, and a recomputed ratio that flips direction means no change; the largest proposal of
the metrics wins; then the stabilisation windows (the highest recommendation of the scale-down
window, the lowest of the scale-up window), the behaviour policies (selectPolicy, periods) and
min/max. Everything it reads — targets, behaviour, bounds, the drain window, preStop, the session
cap — comes from the rendered manifests; the per-pod capacity from one file (`k8s/capacity.json`).

The cluster around it: calls arrive on a day-shaped trace (non-homogeneous Poisson, lognormal
durations); the Service sends a new call to a random ready pod (L4), and the client tries another
pod when one refuses (draining or at its cap). A new pod serves after `pod_start_s`. A removed pod
(the ReplicaSet removes the most recently started first) drains: no new calls, its calls run until
they end or the drain window passes, then move to another pod (facecodec.client.reconnect). A pod's
decoder queue time is that of its calls' paced frames at a server of the pod's frames/s (nD/D/1,
simulated once per number of calls), and grows with its backlog when over capacity. The HPA sees
the sessions gauge and the 1-min queue rate 30 s late (scrape, recording rule, adapter).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

STEP_S = 15.0  # the HPA's sync period (--horizontal-pod-autoscaler-sync-period) and the sim's step
TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
METRIC_LAG_S = 30.0  # scrape (15 s) + recording rule (15 s); the adapter reads the latest value
DAY_S = 24 * 3600.0
CLIENT_TRIES = 20  # new connections a client makes (with backoff, facecodec.client.reconnect) before it gives up


# --- the HPA, as the controller computes it ------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    kind: str  # "Pods" | "Percent"
    value: int
    period_s: float


@dataclass(frozen=True)
class Rules:
    window_s: float
    select: str  # "Max" | "Min" | "Disabled"
    policies: tuple[Policy, ...]


@dataclass(frozen=True)
class Hpa:
    min_replicas: int
    max_replicas: int
    targets: dict  # metric name → per-pod average value (Pods metrics); "cpu" → utilisation %
    up: Rules
    down: Rules

    @classmethod
    def from_manifest(cls, hpa: dict) -> "Hpa":
        spec = hpa["spec"]
        targets = {}
        for m in spec["metrics"]:
            if m["type"] == "Pods":
                targets[m["pods"]["metric"]["name"]] = quantity(m["pods"]["target"]["averageValue"])
            elif m["type"] == "Resource":
                targets[m["resource"]["name"]] = float(m["resource"]["target"]["averageUtilization"])
            else:
                raise ValueError(f"metric type {m['type']} is not simulated")
        behavior = spec.get("behavior", {})
        return cls(spec.get("minReplicas", 1), spec["maxReplicas"], targets,
                   rules(behavior.get("scaleUp"), up=True), rules(behavior.get("scaleDown"), up=False))


def rules(given: dict | None, *, up: bool) -> Rules:
    """A direction's rules, with the API's defaults where the manifest leaves them out."""
    if up:
        default = Rules(0.0, "Max", (Policy("Percent", 100, 15), Policy("Pods", 4, 15)))
    else:
        default = Rules(300.0, "Max", (Policy("Percent", 100, 15),))
    if not given:
        return default
    policies = tuple(Policy(p["type"], int(p["value"]), float(p["periodSeconds"])) for p in given.get("policies", []))
    return Rules(float(given.get("stabilizationWindowSeconds", default.window_s)), given.get("selectPolicy", "Max"),
                 policies or default.policies)


def quantity(text: str | int | float) -> float:
    """A Kubernetes quantity ("3", "500m", "1k") as a number."""
    text = str(text)
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    if text[-1] in suffixes:
        return float(text[:-1]) * suffixes[text[-1]]
    return float(text)


def metric_replicas(values: dict[str, float | None], target: float, current: int) -> int | None:
    """One metric's proposal (replica_calculator's plain-metric path). `values`: every pod of the
    Deployment that is not being deleted → its value, None where the metric is missing (a pod not
    serving yet). None when no pod has the metric."""
    present = {p: v for p, v in values.items() if v is not None}
    if not present:
        return None
    ratio = sum(present.values()) / len(present) / target
    missing = [p for p, v in values.items() if v is None]
    if not missing:
        if abs(ratio - 1.0) <= TOLERANCE:
            return current
        return math.ceil(ratio * len(present))
    filled = dict(present)
    for p in missing:  # scale down: they would be at the target; scale up: they hold nothing yet
        filled[p] = target if ratio < 1.0 else 0.0
    new_ratio = sum(filled.values()) / len(filled) / target
    if abs(new_ratio - 1.0) <= TOLERANCE or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    proposal = math.ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and proposal > current) or (new_ratio > 1.0 and proposal < current):
        return current
    return proposal


class HpaController:
    """The controller's state for one HPA: recommendations and scale events."""

    def __init__(self, hpa: Hpa):
        self.hpa = hpa
        self.recommendations: deque[tuple[float, int]] = deque()
        self.events: deque[tuple[float, int]] = deque()  # (time, +added / -removed)

    def desired(self, now: float, current: int, metrics: dict[str, dict[str, float | None]]) -> int:
        proposals = [metric_replicas(metrics[name], target, current) for name, target in self.hpa.targets.items()]
        proposals = [p for p in proposals if p is not None]
        raw = max(proposals) if proposals else current
        stabilised = self._stabilise(now, current, raw)
        wanted = self._rate_limit(now, current, stabilised)
        if wanted != current:
            self.events.append((now, wanted - current))
        return wanted

    def _stabilise(self, now: float, current: int, raw: int) -> int:
        up_cut, down_cut = now - self.hpa.up.window_s, now - self.hpa.down.window_s
        up = down = raw
        for t, rec in self.recommendations:
            if t > up_cut:
                up = min(up, rec)
            if t > down_cut:
                down = max(down, rec)
        self.recommendations.append((now, raw))
        keep = max(self.hpa.up.window_s, self.hpa.down.window_s)
        while self.recommendations and self.recommendations[0][0] < now - keep:
            self.recommendations.popleft()
        return min(max(current, up), down)

    def _rate_limit(self, now: float, current: int, desired: int) -> int:
        longest = max((p.period_s for r in (self.hpa.up, self.hpa.down) for p in r.policies), default=0)
        while self.events and self.events[0][0] < now - longest:
            self.events.popleft()
        if desired > current and self.hpa.up.select != "Disabled":
            added = lambda period: sum(d for t, d in self.events if d > 0 and t > now - period)  # noqa: E731
            proposals = []
            for p in self.hpa.up.policies:
                start = current - added(p.period_s)
                proposals.append(start + p.value if p.kind == "Pods" else math.ceil(start * (1 + p.value / 100)))
            limit = min(proposals) if self.hpa.up.select == "Min" else max(proposals)
            desired = min(desired, max(limit, current))
        elif desired > current:
            desired = current
        elif desired < current and self.hpa.down.select != "Disabled":
            removed = lambda period: -sum(d for t, d in self.events if d < 0 and t > now - period)  # noqa: E731
            proposals = []
            for p in self.hpa.down.policies:
                start = current + removed(p.period_s)
                proposals.append(start - p.value if p.kind == "Pods" else int(start * (1 - p.value / 100)))
            limit = max(proposals) if self.hpa.down.select == "Min" else min(proposals)
            desired = max(desired, min(limit, current))
        elif desired < current:
            desired = current
        return min(max(desired, self.hpa.min_replicas), self.hpa.max_replicas)


# --- the cluster around it -----------------------------------------------------------------------


@dataclass(frozen=True)
class Capacity:
    """What one server serves: decoded frames/s with all its calls together on `cores` CPUs, and the
    frames/s one call asks for."""

    frames_per_s: float
    call_fps: float
    cores: float
    source: str = ""

    @property
    def calls(self) -> float:
        """Calls at saturation."""
        return self.frames_per_s / self.call_fps

    @classmethod
    def load(cls, path: Path) -> "Capacity":
        data = json.loads(Path(path).read_text())
        return cls(float(data["frames_per_s"]), float(data["call_fps"]), float(data["cores"]), data.get("source", ""))


def pod_capacity(capacity: Capacity, docs: list[dict]) -> Capacity:
    """The figure for the manifest's pod: scaled from the measured server's cores to the CPUs the
    pod's server container gets, assuming throughput grows with them (one decoder instance of 2 ORT
    threads per 2 CPUs; not measured here; a per-pod figure measured on the pod's size needs no scaling)."""
    (server,) = [c for c in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
                 if c["name"] == "tritonserver"]
    cpus = quantity(server["resources"]["requests"]["cpu"])
    return Capacity(capacity.frames_per_s * cpus / capacity.cores, capacity.call_fps, cpus, capacity.source)


@dataclass(frozen=True)
class Trace:
    """A weekday of calls: concurrency from a night floor to two office-hours peaks."""

    peak_calls: float = 40.0
    mean_call_s: float = 480.0  # lognormal, sigma 0.8
    sigma: float = 0.8
    seed: int = 20

    @staticmethod
    def shape(t: np.ndarray) -> np.ndarray:
        """Share of the peak concurrency at time of day `t` (s)."""
        h = np.asarray(t) / 3600.0
        bump = lambda centre, width, height: height * np.exp(-0.5 * ((h - centre) / width) ** 2)  # noqa: E731
        return 0.04 + bump(10.5, 1.6, 0.96) + bump(15.0, 1.8, 0.85) - bump(12.75, 0.5, 0.25) + bump(20.5, 1.2, 0.25)

    def calls(self) -> list[tuple[float, float]]:
        """(arrival, duration) of every call of the day (thinning of a Poisson process)."""
        rng = np.random.default_rng(self.seed)
        grid = np.linspace(0, DAY_S, 24 * 60 + 1)
        peak_rate = self.peak_calls * self.shape(grid).max() / self.mean_call_s
        n = rng.poisson(peak_rate * DAY_S)
        t = np.sort(rng.uniform(0, DAY_S, n))
        keep = rng.uniform(0, 1, n) < self.shape(t) / self.shape(grid).max()
        mu = math.log(self.mean_call_s) - self.sigma**2 / 2
        durations = rng.lognormal(mu, self.sigma, n)
        return list(zip(t[keep].tolist(), durations[keep].tolist(), strict=True))


@dataclass
class Pod:
    name: str
    created: float
    ready_at: float
    calls: dict = field(default_factory=dict)  # call id → end time
    draining_since: float | None = None
    backlog_frames: float = 0.0
    queue_history: deque = field(default_factory=deque)  # (t, mean queue ms over the step)

    def ready(self, now: float) -> bool:
        return self.draining_since is None and now >= self.ready_at


@dataclass(frozen=True)
class Cluster:
    """The manifests' numbers the simulation needs besides the HPA."""

    drain_s: float
    pre_stop_s: float
    max_sessions: int
    pod_start_s: float

    @classmethod
    def from_manifests(cls, docs: list[dict], pod_start_s: float) -> "Cluster":
        dep = one(docs, "Deployment")
        config = one(docs, "ConfigMap", "facecodec-server")["data"]
        (server,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "tritonserver"]
        pre_stop = float(server["lifecycle"]["preStop"]["exec"]["command"][1])
        args = config.get("FACECODEC_SERVING_ARGS", "").split()
        sessions = int(args[args.index("--max-sessions") + 1]) if "--max-sessions" in args else 32
        instances = int(args[args.index("--decoder-instances") + 1]) if "--decoder-instances" in args else 1
        return cls(float(config["FACECODEC_DRAIN_SECONDS"]), pre_stop, sessions * instances, pod_start_s)


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    """The object of `kind` named `name` (or `name-<hash>`, generated by kustomize)."""
    (doc,) = [d for d in docs if d["kind"] == kind
              and (name is None or re.fullmatch(re.escape(name) + r"(-[a-z0-9]{10})?", d["metadata"]["name"]))]
    return doc


@dataclass
class Step:
    t: float
    replicas: int  # the Deployment's spec.replicas (the HPA's decision)
    ready: int
    draining: int
    calls: int
    sessions_mean: float  # over ready pods
    sessions_max: int
    queue_ms_p95: float  # over the calls' pods this step
    refused: int
    migrated: int


@dataclass
class Result:
    steps: list[Step]
    calls: int
    refused: int
    migrated: int
    dropped: int  # a call still on a removed pod when no pod took it
    pod_hours: float
    queue_ms_p95: float  # over all call-steps (each call weighted by its time)
    queue_target_ms: float
    fixed_replicas: int = 0
    fixed_pod_hours: float = 0.0
    fixed_queue_ms_p95: float = 0.0
    fixed_refused: int = 0


@functools.lru_cache(maxsize=4096)
def paced_wait_ms(calls: int, frames_per_s: float, call_fps: float, jitter_ms: float = 3.0) -> float:
    """Mean queue wait of `calls` paced calls (each a frame every 1/call_fps s, random phase, network
    jitter) at a server rendering a frame in 1/frames_per_s s (nD/D/1; the CPU decoder's time per frame
    does not drop with the batch). Infinite at or over saturation."""
    if calls == 0:
        return 0.0
    if calls * call_fps >= frames_per_s:
        return math.inf
    rng = np.random.default_rng(calls)
    period, service = 1e3 / call_fps, 1e3 / frames_per_s
    frames = 400
    arrivals = (np.arange(frames)[None, :] * period + rng.uniform(0, period, (calls, 1))
                + rng.normal(0, jitter_ms, (calls, frames))).ravel()
    arrivals.sort()
    free, waits = 0.0, np.empty_like(arrivals)
    for i, a in enumerate(arrivals):
        start = max(a, free)
        waits[i], free = start - a, start + service
    return float(waits[len(waits) // 4:].mean())  # after the start-up quarter


def queue_ms(pod: Pod, capacity: Capacity) -> float:
    """Mean decoder queue time of the pod now: paced calls below saturation, the backlog above."""
    steady = paced_wait_ms(len(pod.calls), capacity.frames_per_s, capacity.call_fps)
    if math.isinf(steady):
        steady = 1e3 * len(pod.calls) / capacity.frames_per_s  # a full round of every call's frame
    return steady + 1e3 * pod.backlog_frames / capacity.frames_per_s


def simulate(hpa: Hpa | None, cluster: Cluster, capacity: Capacity, trace: Trace, *, fixed: int | None = None,
             seed: int = 7, queue_target_ms: float | None = None) -> Result:
    """One day. `hpa` None and `fixed` N: a fixed deployment of N pods."""
    rng = np.random.default_rng(seed)
    arrivals = deque(sorted(trace.calls()))
    controller = HpaController(hpa) if hpa else None
    start = fixed if fixed is not None else hpa.min_replicas
    pods: list[Pod] = [Pod(f"p{i}", -3600.0, -3600.0) for i in range(start)]
    replicas, counter = start, start
    lagged: deque[tuple[float, dict]] = deque()
    steps, waits = [], []
    totals = {"calls": 0, "refused": 0, "migrated": 0, "dropped": 0}
    pod_seconds = 0.0
    target = queue_target_ms or (hpa.targets.get("facecodec_decoder_queue_ms", 40.0) if hpa else 40.0)

    def place(call_id, end, now, exclude=None) -> bool:
        candidates = [p for p in pods if p.ready(now) and p is not exclude]
        for _ in range(CLIENT_TRIES):  # the Service picks at random; a refusing pod sends the client on
            if not candidates:
                return False
            pod = candidates[rng.integers(len(candidates))]
            if len(pod.calls) < cluster.max_sessions:
                pod.calls[call_id] = end
                return True
        return False

    for now in np.arange(0.0, DAY_S, STEP_S):
        refused = migrated = 0
        while arrivals and arrivals[0][0] < now + STEP_S:
            arrival, duration = arrivals.popleft()
            totals["calls"] += 1
            if not place(totals["calls"], arrival + duration, now):
                refused += 1
        for pod in pods:
            for cid in [c for c, end in pod.calls.items() if end <= now]:
                del pod.calls[cid]
        for pod in [p for p in pods if p.draining_since is not None]:
            if not pod.calls or now - pod.draining_since >= cluster.pre_stop_s + cluster.drain_s:
                for cid, end in list(pod.calls.items()):  # the grace period ran out: the calls move
                    if place(cid, end, now, exclude=pod):
                        migrated += 1
                    else:
                        totals["dropped"] += 1
                pods.remove(pod)
        step_waits = []
        for pod in pods:
            demand = len(pod.calls) * capacity.call_fps
            pod.backlog_frames = max(0.0, pod.backlog_frames + (demand - capacity.frames_per_s) * STEP_S)
            q = queue_ms(pod, capacity)
            pod.queue_history.append((now, q))
            while pod.queue_history and pod.queue_history[0][0] < now - 60:
                pod.queue_history.popleft()
            step_waits += [q] * len(pod.calls)
        waits += step_waits
        pod_seconds += len(pods) * STEP_S
        # what the HPA will see METRIC_LAG_S later: per live (not terminating) pod, None until it serves
        live = [p for p in pods if p.draining_since is None]
        lagged.append((now, {
            p.name: (float(len(p.calls)) if now >= p.ready_at else None,
                     float(np.mean([q for _, q in p.queue_history])) if now >= p.ready_at else None,
                     min(100.0, 100 * len(p.calls) * capacity.call_fps / capacity.frames_per_s)
                     if now >= p.ready_at else None)
            for p in live
        }))
        if controller is not None:
            while len(lagged) > 1 and lagged[1][0] <= now - METRIC_LAG_S:
                lagged.popleft()
            seen = lagged[0][1]
            names = [p.name for p in live]
            metrics = {
                "facecodec_active_sessions": {n: seen.get(n, (None,) * 3)[0] for n in names},
                "facecodec_decoder_queue_ms": {n: seen.get(n, (None,) * 3)[1] for n in names},
                "cpu": {n: seen.get(n, (None,) * 3)[2] for n in names},
            }
            metrics = {k: v for k, v in metrics.items() if k in controller.hpa.targets}
            wanted = controller.desired(now, replicas, metrics)
            if wanted > replicas:
                for _ in range(wanted - replicas):
                    counter += 1
                    pods.append(Pod(f"p{counter}", now, now + cluster.pod_start_s))
            elif wanted < replicas:  # the ReplicaSet deletes not-ready pods first, then the newest
                for pod in sorted(live, key=lambda p: (now >= p.ready_at, -p.ready_at))[: replicas - wanted]:
                    pod.draining_since = now
            replicas = wanted
        ready = [p for p in pods if p.ready(now)]
        sessions = [len(p.calls) for p in ready]
        totals["refused"] += refused
        totals["migrated"] += migrated
        steps.append(Step(
            float(now), replicas, len(ready), sum(p.draining_since is not None for p in pods),
            sum(len(p.calls) for p in pods), float(np.mean(sessions)) if sessions else 0.0, max(sessions, default=0),
            float(np.percentile(step_waits, 95)) if step_waits else 0.0, refused, migrated,
        ))
    return Result(steps, totals["calls"], totals["refused"], totals["migrated"], totals["dropped"],
                  pod_seconds / 3600, float(np.percentile(waits, 95)) if waits else 0.0, target)


def peak_sized(hpa: Hpa, trace: Trace, cluster: Cluster) -> int:
    """The fixed deployment an operator would size for the day's peak at the HPA's session target."""
    per_pod = hpa.targets["facecodec_active_sessions"]
    grid = np.arange(0, DAY_S, STEP_S)
    concurrency = np.zeros_like(grid)
    for arrival, duration in trace.calls():
        concurrency[(grid >= arrival) & (grid < arrival + duration)] += 1
    return max(hpa.min_replicas, math.ceil(concurrency.max() / per_pod))


def run(docs: list[dict], capacity: Capacity, trace: Trace, pod_start_s: float) -> Result:
    hpa = Hpa.from_manifest(one(docs, "HorizontalPodAutoscaler"))
    cluster = Cluster.from_manifests(docs, pod_start_s)
    capacity = pod_capacity(capacity, docs)
    result = simulate(hpa, cluster, capacity, trace)
    n = peak_sized(hpa, trace, cluster)
    fixed = simulate(None, cluster, capacity, trace, fixed=n, queue_target_ms=result.queue_target_ms)
    result.fixed_replicas, result.fixed_pod_hours = n, fixed.pod_hours
    result.fixed_queue_ms_p95, result.fixed_refused = fixed.queue_ms_p95, fixed.refused
    return result


# --- the capacity figure --------------------------------------------------------------------------


def measure_capacity(out: Path, *, frames: int = 64, calls: int = 8, call_fps: float = 25.0) -> dict:
    """The per-pod capacity: one tritonserver with the default settings on this machine, `calls`
    concurrent decoder sessions of the sample clip with the expression channel (the serving
    benchmark's served-layout row), decoded frames/s in all. The senders are elsewhere (a pod decodes;
    `make profile` measures calls whose senders share the server's cores too)."""
    import datetime
    import os
    import platform
    import tempfile

    from ..bitstream import decode_stream, stream_bytes
    from ..codec.pipeline import OrtNetworks
    from ..codec.sender import Sender, stream_header
    from ..expression import ExpressionSender
    from ..media import read_video
    from ..serving import repository
    from ..serving.server import TritonServer
    from ..serving.settings import ServingSettings
    from .serving_bench import triton_rows

    with tempfile.TemporaryDirectory(prefix="facecodec-capacity-") as tmp:
        work = Path(tmp)
        onnx = repository.ensure_export(work / "onnx", "lite")
        face = ExpressionSender()
        header = stream_header("lite", 15, 256, call_fps, expression=face)
        clip = Path(__file__).resolve().parents[2] / "samples" / "talking_00086_4s.mp4"
        chunks = Sender(OrtNetworks(onnx), header, expression=face).send(read_video(clip, max_frames=frames))
        decoded = decode_stream(stream_bytes(header, chunks)).frames
        load = os.getloadavg()[0]
        served = repository.stage(Path("model_repository"), work / "repo", onnx, ServingSettings())
        with TritonServer(served, log_path=work / "server.log", settle=True) as server:
            (row,) = triton_rows(server, decoded, "capacity", levels=(calls,))
    fps = row.frames / row.seconds
    figure = {
        "frames_per_s": round(fps, 2),
        "cores": os.cpu_count(),
        "call_fps": call_fps,
        "placeholder": False,
        "source": (f"measured by `python -m facecodec.tools.k8s_sim --measure-capacity` on {datetime.date.today()}: "
                   f"one default tritonserver (warp in {ServingSettings().warp_precision}), {calls} concurrent lite "
                   f"decoder sessions with the expression channel, senders elsewhere, {os.cpu_count()} cores "
                   f"({platform.machine()}), 1-min load average {load:.1f} at the start"),
    }
    Path(out).write_text(json.dumps(figure, indent=1) + "\n")
    return figure


# --- report --------------------------------------------------------------------------------------


def table(result: Result, capacity: Capacity, trace: Trace, cluster: Cluster) -> str:
    held = "held" if result.queue_ms_p95 <= result.queue_target_ms else "MISSED"
    rows = [
        ("p95 decoder queue time (all call-time)", f"{result.queue_ms_p95:.1f} ms",
         f"{result.fixed_queue_ms_p95:.1f} ms"),
        ("queue-time target (HPA, SLO)", f"{result.queue_target_ms:.0f} ms ({held})",
         f"{result.queue_target_ms:.0f} ms"),
        ("pod-hours", f"{result.pod_hours:.1f}", f"{result.fixed_pod_hours:.1f}"),
        ("replicas", f"{min(s.replicas for s in result.steps)}–{max(s.replicas for s in result.steps)}",
         f"{result.fixed_replicas}"),
        ("calls", f"{result.calls}", f"{result.calls}"),
        ("calls refused", f"{result.refused}", f"{result.fixed_refused}"),
        ("calls migrated (drain window over)", f"{result.migrated}", "0"),
        ("calls dropped on scale-down", f"{result.dropped}", "0"),
    ]
    lines = [
        f"Trace: peak {trace.peak_calls:g} concurrent calls, mean call {trace.mean_call_s / 60:.0f} min (lognormal), "
        f"seed {trace.seed}. Pod: {capacity.cores:g} CPUs, {capacity.frames_per_s:.1f} decoded frames/s, calls at "
        f"{capacity.call_fps:g} fps ({capacity.calls:.2f} calls at saturation; {capacity.source}). "
        f"Pod start {cluster.pod_start_s:g} s, "
        f"drain window {cluster.drain_s:g} s + preStop {cluster.pre_stop_s:g} s, session cap {cluster.max_sessions}.",
        "",
        "| | HPA (rendered manifest) | fixed, sized for the peak |",
        "| --- | --- | --- |",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
    ]
    return "\n".join(lines) + "\n"


def plot(result: Result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = np.array([s.t for s in result.steps]) / 3600
    fig, ax = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    ax[0].step(h, [s.replicas for s in result.steps], where="post", label="HPA replicas")
    ax[0].step(h, [s.ready for s in result.steps], where="post", label="ready pods", alpha=0.7)
    ax[0].axhline(result.fixed_replicas, color="grey", ls="--", label=f"fixed, peak-sized ({result.fixed_replicas})")
    ax[0].set_ylabel("pods")
    ax[0].legend(loc="upper left", fontsize=8)
    ax[1].plot(h, [s.sessions_mean for s in result.steps], label="mean over ready pods")
    ax[1].plot(h, [s.sessions_max for s in result.steps], label="max", alpha=0.6)
    ax[1].plot(h, [s.calls for s in result.steps], label="live calls (all pods)", alpha=0.4)
    ax[1].set_ylabel("sessions per pod")
    ax[1].set_yscale("symlog")
    ax[1].legend(loc="upper left", fontsize=8)
    ax[2].plot(h, [s.queue_ms_p95 for s in result.steps], label="p95 over live calls")
    ax[2].axhline(result.queue_target_ms, color="red", ls="--", label="target")
    ax[2].set_ylabel("decoder queue (ms)")
    ax[2].legend(loc="upper left", fontsize=8)
    hours = np.arange(25)
    per_hour = lambda attr: [sum(getattr(s, attr) for s in result.steps if a <= s.t / 3600 < a + 1) for a in hours[:-1]]  # noqa: E731
    ax[3].bar(hours[:-1] + 0.3, per_hour("refused"), width=0.4, label="refused")
    ax[3].bar(hours[:-1] + 0.7, per_hour("migrated"), width=0.4, label="migrated (drain over)")
    ax[3].set_ylabel("calls per hour")
    ax[3].set_xlabel("time of day (h)")
    ax[3].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"HPA over a day: {result.pod_hours:.0f} pod-hours vs {result.fixed_pod_hours:.0f} fixed; "
                 f"p95 queue {result.queue_ms_p95:.1f} ms (target {result.queue_target_ms:g})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facecodec.tools.k8s_sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifests", type=Path, help="a rendered overlay as JSON (make k8s-sim)")
    parser.add_argument("--capacity", type=Path, default=Path("k8s/capacity.json"), help="per-pod capacity")
    parser.add_argument("--pod-start-s", type=float, default=90.0, help="pod created → serving (default 90)")
    parser.add_argument("--peak-calls", type=float, default=Trace.peak_calls)
    parser.add_argument("--mean-call-s", type=float, default=Trace.mean_call_s)
    parser.add_argument("--seed", type=int, default=Trace.seed)
    parser.add_argument("--out", type=Path, help="where the plot and the table go")
    parser.add_argument("--measure-capacity", action="store_true",
                        help="measure the per-pod capacity on this machine into --capacity, then stop")
    args = parser.parse_args(argv)
    if args.measure_capacity:
        print(json.dumps(measure_capacity(args.capacity), indent=1))
        return 0
    if args.manifests is None or args.out is None:
        parser.error("--manifests and --out are needed to simulate")
    docs = json.loads(args.manifests.read_text())
    capacity = Capacity.load(args.capacity)
    trace = Trace(args.peak_calls, args.mean_call_s, seed=args.seed)
    result = run(docs, capacity, trace, args.pod_start_s)
    args.out.mkdir(parents=True, exist_ok=True)
    text = table(result, pod_capacity(capacity, docs), trace, Cluster.from_manifests(docs, args.pod_start_s))
    (args.out / "k8s-sim.md").write_text(text)
    (args.out / "k8s-sim.json").write_text(json.dumps({k: v for k, v in asdict(result).items() if k != "steps"},
                                                       indent=1))
    plot(result, args.out / "k8s-sim.png")
    print(text + f"\nwrote {args.out / 'k8s-sim.png'}, k8s-sim.md, k8s-sim.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
