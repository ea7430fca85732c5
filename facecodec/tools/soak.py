"""Soak: N concurrent paced calls for M minutes against a real tritonserver on loopback (`make soak`).

    python -m facecodec.tools.soak --calls 8 --minutes 10 --out artifacts/soak

Each of the N workers runs one live call after another (the sample clip, rolled by a different
offset per worker so every call has its own source face and motion) until the time is up: a paced
sender (motion_encoder on the server, as `facecodec-client call` does), the live receiver (it renders
the newest motion when behind and the sender lowers its rate) and a fresh decoder session per call
(START ... END, so sessions come and go all along). Bounded: no call starts after M minutes, and a
call still running two minutes later is abandoned (the run then says so and fails).

It records, and writes to `soak.json`, `soak.png` and `soak.md`:
- frames captured, sent, delivered, dropped by the live receiver (newer motion had arrived; by
  design, not a loss), lost (on the link, of which there is none on loopback, or with a server),
  failed calls, and late frames (shown more than `--late-ms` after capture);
- latency from capture to display: p50, p95, p99 over every delivered frame;
- server RSS (tritonserver and its backend stubs, from /proc/<pid>/status) every `--sample-s`, and
  its least-squares slope after the warm-up, with the growth it implies over the run;
- cross-talk: in every call, `--check-frames` delivered frames picked at random are compared with an
  in-process render of the same call's own packets (same ONNX files on ONNX Runtime): a frame of
  another call, or of the wrong source, would miss the `--min-psnr` bar.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger("facecodec.soak")
DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "samples" / "talking_00086_4s.mp4"
GRACE_S = 120.0  # a call still running this long after the end is abandoned


@dataclass
class SoakConfig:
    calls: int = 8
    seconds: float = 600.0
    clip: Path = DEFAULT_CLIP
    late_ms: float = 500.0
    sample_s: float = 5.0
    warmup_s: float = 60.0
    check_frames: int = 2
    min_psnr: float = 45.0
    seed: int = 0


@dataclass
class CallRow:
    worker: int
    started_s: float  # since the soak's start
    frames: int
    sent: int
    delivered: int
    dropped: int
    lost: int
    late: int
    latency_ms_p99: float
    checked: int  # delivered frames compared with the in-process render
    mismatched: int  # of those, below the PSNR bar: cross-talk or a wrong frame
    min_psnr_db: float
    error: str = ""


@dataclass
class SoakResult:
    config: dict
    machine: str
    duration_s: float
    calls: list[CallRow] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    rss: list[dict] = field(default_factory=list)  # {t, tree_mib, server_mib}
    abandoned: int = 0

    def summary(self) -> dict:
        rows = self.calls
        total = lambda name: sum(getattr(r, name) for r in rows)  # noqa: E731
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        slope, growth, base = rss_trend(self.rss, self.config["warmup_s"])
        return {
            "calls": len(rows), "failed_calls": sum(1 for r in rows if r.error), "abandoned_calls": self.abandoned,
            "frames": total("frames"), "sent": total("sent"), "delivered": total("delivered"),
            "dropped": total("dropped"), "lost": total("lost"), "late": total("late"),
            "latency_ms_p50": float(np.percentile(lat, 50)), "latency_ms_p95": float(np.percentile(lat, 95)),
            "latency_ms_p99": float(np.percentile(lat, 99)),
            "checked_frames": total("checked"), "cross_talk": total("mismatched"),
            "min_psnr_db": min((r.min_psnr_db for r in rows if r.checked), default=float("nan")),
            "rss_mib_start": self.rss[0]["tree_mib"] if self.rss else float("nan"),
            "rss_mib_after_warmup": base, "rss_mib_end": self.rss[-1]["tree_mib"] if self.rss else float("nan"),
            "rss_slope_mib_per_min": slope, "rss_growth_after_warmup_pct": growth,
        }


def rss_trend(samples: list[dict], warmup_s: float) -> tuple[float, float, float]:
    """(slope in MiB/min, growth in % of the fitted value at the warm-up's end over the rest of the run,
    that fitted value in MiB) of the tree RSS after the warm-up; NaNs with fewer than 3 samples."""
    kept = [(s["t"], s["tree_mib"]) for s in samples if s["t"] >= warmup_s]
    if len(kept) < 3:
        return float("nan"), float("nan"), float("nan")
    t, rss = np.array(kept).T
    slope, intercept = np.polyfit(t, rss, 1)
    start = slope * t[0] + intercept
    return float(60 * slope), float(100 * slope * (t[-1] - t[0]) / start), float(start)


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_rss_mib(pid: int) -> float:
    from ..serving.server import descendants

    total = 0.0
    for p in descendants(pid):
        try:
            total += vm_rss_mib(p)
        except OSError:
            continue
    return total


class Reference:
    """In-process renders of chosen frames of a call from its own packets (thread-safe)."""

    def __init__(self, onnx_dir: Path):
        from ..codec.pipeline import OrtNetworks

        self.networks = OrtNetworks(onnx_dir, threads=1)
        self.lock = threading.Lock()

    def frames(self, stream: bytes, seqs: list[int]) -> dict[int, np.ndarray]:
        from ..bitstream import decode_stream
        from ..codec.receiver import receive
        from ..media import to_frames

        decoded = decode_stream(stream).frames
        by_seq = {f.seq: f for f in decoded}
        out = {}
        for seq in seqs:
            chain = [f for f in decoded if f.keyframe is not None and f.seq < seq] + [by_seq[seq]]
            with self.lock:
                out[seq] = to_frames(receive(self.networks, chain))[-1]
        return out


def one_call(conn, worker: int, frames: np.ndarray, config: SoakConfig, reference: Reference, t0: float,
             rng: random.Random, networks) -> tuple[CallRow, list[float]]:
    from ..client.calls import call
    from ..quality import psnr

    started = time.monotonic() - t0
    try:
        result = call(conn, config.clip, frames=frames, realtime=True, live=True, networks=networks)
    except Exception as err:  # noqa: BLE001 - a failed call is a finding, the soak goes on
        log.warning("worker %d: call failed: %s", worker, err)
        return CallRow(worker, started, len(frames), 0, 0, 0, 0, 0, float("nan"), 0, 0, float("nan"),
                       error=str(err)[:300]), []
    report = result.report
    latencies = [1e3 * (t["shown"] - t["captured"]) for t in result.timeline if "shown" in t]
    chosen = rng.sample(sorted(result.delivered), min(config.check_frames, len(result.delivered)))
    expected = reference.frames(result.stream, chosen)
    scores = [float(psnr(result.delivered[s][None], expected[s][None], per_frame=False)) for s in chosen]
    return CallRow(
        worker=worker, started_s=started, frames=report.frames, sent=report.frames_sent,
        delivered=report.frames_delivered, dropped=report.frames_dropped,
        lost=report.frames_lost + len(report.lost_frames), late=sum(1 for v in latencies if v > config.late_ms),
        latency_ms_p99=report.latency_ms_p99, checked=len(scores),
        mismatched=sum(1 for v in scores if v < config.min_psnr), min_psnr_db=min(scores, default=float("nan")),
    ), latencies


def run_soak(url: str, server_pid: int, onnx_dir: Path, config: SoakConfig) -> SoakResult:
    """The soak against the server at `url` (gRPC) whose process is `server_pid` (its RSS is sampled)."""
    from ..client.calls import Connection
    from ..client.remote import RemoteNetworks
    from ..media import read_video

    clip = read_video(config.clip, size=256)
    reference = Reference(onnx_dir)
    conn = Connection(url, timeout=60.0)
    result = SoakResult(asdict(config) | {"clip": str(config.clip), "url": url}, _machine(), 0.0)
    lock, stop = threading.Lock(), threading.Event()
    t0 = time.monotonic()
    deadline = t0 + config.seconds

    def sampler():
        while not stop.is_set():
            try:
                result.rss.append({"t": round(time.monotonic() - t0, 2), "tree_mib": round(tree_rss_mib(server_pid), 1),
                                   "server_mib": round(vm_rss_mib(server_pid), 1)})
            except OSError as err:
                log.warning("RSS sample failed: %s", err)
            stop.wait(config.sample_s)

    def worker(i: int):
        rng = random.Random(config.seed * 1000 + i)
        frames = np.roll(clip, -(i * len(clip)) // max(config.calls, 1), axis=0)  # its own source and motion
        networks = RemoteNetworks(url, timeout=60.0)
        try:
            while time.monotonic() < deadline and not stop.is_set():
                row, latencies = one_call(conn, i, frames, config, reference, t0, rng, networks)
                with lock:
                    result.calls.append(row)
                    result.latencies_ms.extend(latencies)
        finally:
            networks.close()

    threading.Thread(target=sampler, name="soak-rss", daemon=True).start()
    threads = [threading.Thread(target=worker, args=(i,), name=f"soak-{i}", daemon=True) for i in range(config.calls)]
    for n, thread in enumerate(threads):
        thread.start()
        time.sleep(min(1.0, config.seconds / 20) if n < len(threads) - 1 else 0)  # calls start staggered
    for thread in threads:
        thread.join(max(0.0, deadline + GRACE_S - time.monotonic()))
    result.abandoned = sum(t.is_alive() for t in threads)
    stop.set()
    result.duration_s = time.monotonic() - t0
    return result


def _machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.1f}"


# ---------------------------------------------------------------- outputs


def passed(summary: dict, config: SoakConfig) -> list[str]:
    """What fails the soak (empty: it passed): issue 22's bars."""
    problems = []
    if summary["lost"]:
        problems.append(f"{summary['lost']} frames lost")
    if summary["failed_calls"] or summary["abandoned_calls"]:
        problems.append(f"{summary['failed_calls']} calls failed, {summary['abandoned_calls']} abandoned")
    if summary["cross_talk"] or not summary["checked_frames"]:
        problems.append(f"cross-talk: {summary['cross_talk']} of {summary['checked_frames']} checked frames differ")
    growth = summary["rss_growth_after_warmup_pct"]
    if growth == growth and growth >= 5.0:
        problems.append(f"RSS grew {growth:.1f} % after the warm-up")
    return problems


def write_outputs(result: SoakResult, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    doc = {"summary": summary, "config": result.config, "machine": result.machine,
           "duration_s": result.duration_s, "rss": result.rss, "calls": [asdict(c) for c in result.calls]}
    (out / "soak.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    plot(result, out / "soak.png")
    (out / "soak.md").write_text(markdown(result, summary))
    return summary


def plot(result: SoakResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    t = [s["t"] / 60 for s in result.rss]
    top.plot(t, [s["tree_mib"] for s in result.rss], label="tritonserver + stubs")
    top.plot(t, [s["server_mib"] for s in result.rss], label="tritonserver")
    top.axvline(result.config["warmup_s"] / 60, color="grey", ls=":", label="end of warm-up")
    top.set_ylabel("RSS (MiB)")
    top.legend(loc="center right")
    top.set_title(f"soak: {result.config['calls']} calls, {result.duration_s / 60:.1f} min")
    starts = [c.started_s / 60 for c in result.calls if not c.error]
    bottom.scatter(starts, [c.latency_ms_p99 for c in result.calls if not c.error], s=8)
    bottom.set_ylabel("call's p99 latency (ms)")
    bottom.set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: SoakResult, s: dict) -> str:
    c = result.config
    problems = passed(s, SoakConfig(**{k: v for k, v in c.items() if k in SoakConfig.__dataclass_fields__}))
    return "\n".join([
        f"# Soak: {c['calls']} concurrent calls for {result.duration_s / 60:.1f} min",
        "",
        f"Machine: {result.machine}. Server: {c['url']} (loopback).",
        "",
        "| what | value |",
        "|---|---|",
        f"| calls completed (failed, abandoned) | {s['calls']} ({s['failed_calls']}, {s['abandoned_calls']}) |",
        f"| frames captured / sent / delivered | {s['frames']} / {s['sent']} / {s['delivered']} |",
        f"| dropped by the live receiver (newer motion had arrived) | {s['dropped']} |",
        f"| lost | {s['lost']} |",
        f"| late (shown > {c['late_ms']:g} ms after capture) | {s['late']} |",
        f"| latency p50 / p95 / p99 | {s['latency_ms_p50']:.0f} / {s['latency_ms_p95']:.0f} / "
        f"{s['latency_ms_p99']:.0f} ms |",
        f"| cross-talk (frames checked against their own call's in-process render) | {s['cross_talk']} of "
        f"{s['checked_frames']} (lowest PSNR {s['min_psnr_db']:.1f} dB) |",
        f"| server RSS: start / after warm-up ({c['warmup_s']:g} s, fitted) / end | {s['rss_mib_start']:.0f} / "
        f"{s['rss_mib_after_warmup']:.0f} / {s['rss_mib_end']:.0f} MiB |",
        f"| RSS slope after warm-up | {s['rss_slope_mib_per_min']:+.2f} MiB/min "
        f"({s['rss_growth_after_warmup_pct']:+.2f} % over the rest of the run) |",
        "",
        "Result: " + ("passed" if not problems else "FAILED: " + "; ".join(problems)),
        "",
    ])


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    from ..commands import run_command

    p = argparse.ArgumentParser(prog="python -m facecodec.tools.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=8, help="concurrent calls (8)")
    p.add_argument("--minutes", type=float, default=10.0, help="how long (10)")
    p.add_argument("--out", type=Path, default=Path("artifacts/soak"))
    p.add_argument("--onnx", type=Path, default=Path("artifacts/onnx/lite"), help="export (made if missing)")
    p.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    p.add_argument("--late-ms", type=float, default=500.0)
    p.add_argument("--warmup-s", type=float, help="RSS slope from here on (default: 10 %% of the run, ≥ 20 s)")
    p.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling period")
    p.add_argument("--check-frames", type=int, default=2, help="delivered frames per call checked for cross-talk")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")

    def command() -> int:
        from ..serving import repository
        from ..serving.server import TritonServer
        from ..serving.settings import ServingSettings

        if args.calls < 1 or args.minutes <= 0:
            raise ValueError("--calls must be ≥ 1 and --minutes > 0")
        seconds = 60 * args.minutes
        config = SoakConfig(calls=args.calls, seconds=seconds, clip=args.clip, late_ms=args.late_ms,
                            sample_s=args.sample_s, warmup_s=args.warmup_s or max(20.0, 0.1 * seconds),
                            check_frames=args.check_frames)
        onnx_dir = repository.ensure_export(args.onnx, "lite")
        template = Path(__file__).resolve().parents[2] / "model_repository"
        with tempfile.TemporaryDirectory(prefix="facecodec-soak-") as tmp:
            repo = repository.stage(template, Path(tmp) / "repository", onnx_dir, ServingSettings())
            log = Path(tmp) / "tritonserver.log"
            with TritonServer(repo, log_path=log, startup_timeout=600, settle=True) as server:
                print(f"soak: {config.calls} calls for {args.minutes:g} min against {server.grpc_url}", flush=True)
                result = run_soak(server.grpc_url, server.process.pid, onnx_dir, config)
        summary = write_outputs(result, args.out)
        print((args.out / "soak.md").read_text())
        return 1 if passed(summary, config) else 0

    return run_command(command, log)


if __name__ == "__main__":
    sys.exit(main())
