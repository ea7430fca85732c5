"""The profile's report: `report.md`, PNG plots, and the raw data as CSV and JSON (`tools.profile`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..client import profiler

PERF_COLUMNS = ("throughput", "p50_us", "p90_us", "p95_us", "p99_us", "queue_us", "compute_infer_us")


def level_data(levels: list[dict]) -> tuple[list[dict], list[dict]]:
    """(per level: summary + metrics, every shown frame's row with its level)."""
    summaries, frames = [], []
    for level in levels:
        rows = profiler.frame_rows(level["profile"])
        summaries.append({"calls": level["calls"], **profiler.summary(level["profile"], rows),
                          "metrics": level["metrics"], "max_sessions_seen": level["max_sessions_seen"],
                          "traced_frames": level.get("traced_frames", 0), "errors": level["profile"].errors})
        frames += [{"level": level["calls"], **r} for r in rows]
    return summaries, frames


def write_report(result: dict, out: Path) -> dict[str, Path]:
    out = Path(out)
    summaries, frames = level_data(result["levels"])
    data = {k: v for k, v in result.items() if k != "levels"}
    data["levels"] = summaries
    paths = {"json": out / "profile.json", "report": out / "report.md"}
    paths["json"].write_text(json.dumps(data, indent=1, default=_plain) + "\n")
    if frames:
        paths["frames"] = write_csv(out / "frames.csv", frames)
    if result["perf"]:
        paths["perf"] = write_csv(out / "perf.csv", result["perf"])
    if result["sweep"]:
        paths["sweep"] = write_csv(out / "sweep.csv", result["sweep"])
    if result["capacity"]["rows"]:
        paths["capacity"] = write_csv(out / "capacity.csv", result["capacity"]["rows"])
    paths.update(plots(out, summaries, frames, result))
    paths["report"].write_text(markdown(data, paths))
    return paths


def write_csv(path: Path, rows: list[dict]) -> Path:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value)}")


def plots(out: Path, summaries: list[dict], frames: list[dict], result: dict) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {}
    if frames:
        fig, ax = plt.subplots(figsize=(6, 4))
        for s in summaries:
            g = np.sort([f["glass_to_glass"] for f in frames if f["level"] == s["calls"]])
            ax.plot(g, np.arange(1, len(g) + 1) / len(g), label=f"{s['calls']} call(s)")
        ax.axvline(150, color="grey", ls="--", lw=1)
        ax.set(xlabel="glass to glass, ms", ylabel="share of shown frames", title="Glass to glass (CDF)")
        ax.legend()
        paths["cdf"] = _save(fig, out / "glass_to_glass_cdf.png")

        names = list(summaries[0]["stages"])
        fig, ax = plt.subplots(figsize=(7, 4))
        bottom = np.zeros(len(summaries))
        labels = [f"{s['calls']} call(s)" for s in summaries]
        colours = plt.get_cmap("tab20").colors
        for i, name in enumerate(names):
            values = np.array([s["stages"][name]["mean"] for s in summaries])
            ax.bar(labels, values, bottom=bottom, label=name, color=colours[i % len(colours)])
            bottom += values
        ax.plot(labels, [s["glass_to_glass"]["mean"] for s in summaries], "k_", ms=40, mew=2, label="glass to glass")
        ax.set(ylabel="mean ms per shown frame", title="Where a frame's time goes")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
        paths["stages"] = _save(fig, out / "stages.png")
    if result["perf"]:
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        for model in dict.fromkeys(r["model"] for r in result["perf"]):
            rows = [r for r in result["perf"] if r["model"] == model]
            c = [r["concurrency"] for r in rows]
            a.plot(c, [r["throughput"] for r in rows], "o-", label=model)
            b.plot(c, [r["p50_us"] / 1e3 for r in rows], "o-", label=f"{model} p50")
            b.plot(c, [r["p99_us"] / 1e3 for r in rows], "x:", color=b.lines[-1].get_color(), label=f"{model} p99")
        a.set(xlabel="concurrency", ylabel="inferences/s", title="perf_analyzer: throughput")
        b.set(xlabel="concurrency", ylabel="ms", yscale="log", title="perf_analyzer: latency")
        a.legend(fontsize=7)
        b.legend(fontsize=6)
        paths["perf_plot"] = _save(fig, out / "perf_analyzer.png")
    if result["sweep"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in result["sweep"]:
            ax.plot(r["shown_fps_total"], r["g2g_p95_ms"], "o")
            ax.annotate(f"{r['queue_delay_us']} µs, b{r.get('preferred_batch', '?')}, "
                        f"{r['decoder_instances']}×{r.get('threads', '?')}",
                        (r["shown_fps_total"], r["g2g_p95_ms"]), fontsize=7)
        ax.axhline(150, color="grey", ls="--", lw=1)
        ax.set(xlabel="frames shown per second (all calls)", ylabel="p95 glass to glass, ms",
               title=f"Batching and instances ({result['sweep'][0]['calls']} calls)")
        paths["sweep_plot"] = _save(fig, out / "sweep.png")
    if result["capacity"]["rows"]:
        rows = result["capacity"]["rows"]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["calls"] for r in rows], [r["g2g_p95_ms"] for r in rows], "o-", label="p95 glass to glass")
        ax.axhline(150, color="grey", ls="--", lw=1)
        ax.set(xlabel="concurrent calls", ylabel="ms", title="Capacity")
        ax2 = ax.twinx()
        ax2.plot([r["calls"] for r in rows], [100 * r["shown_share"] for r in rows], "s:", color="C1")
        ax2.set_ylabel("% of captured frames shown", color="C1")
        paths["capacity_plot"] = _save(fig, out / "capacity.png")
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _ms(stats: dict) -> str:
    return f"{stats['p50']:.1f} | {stats['p95']:.1f} | {stats['p99']:.1f} | {stats['mean']:.1f}"


def markdown(data: dict, paths: dict[str, Path]) -> str:
    cfg, m = data["config"], data["machine"]
    lines = [
        "# facecodec profile", "",
        f"Clip `{cfg['video']}`, {cfg['frames']} frames per call, link: {cfg['link']}, expression channel "
        f"{'on' if cfg['expression'] else 'off'}, server settings: {cfg['settings']}. Machine: {m['start']['cpu']}, "
        f"{m['start']['cores']} cores, 1-min load average {m['start']['load_1min']} at the start and "
        f"{m['end']['load_1min']} at the end. The whole profile took {data['seconds']:.0f} s.", "",
    ]
    if data.get("landmarks_ms_per_frame") is not None:
        lines += [f"The sender's MediaPipe landmarks (expression channel) cost {data['landmarks_ms_per_frame']:.1f} ms "
                  "per frame on this machine, measured once before the calls (a real sender runs them on its own "
                  "device, so the calls use their cached codes and the `landmarks` stage below is near 0).", ""]
    lines += ["## Calls: every frame through every stage", "",
              "Stages in ms (p50 | p95 | p99 | mean) over the frames shown. The server's share (to_server, "
              "decoder_queue, render, from_server) comes from Triton's trace of each frame's decoder request.", ""]
    for s in data["levels"]:
        check = abs(s["stage_sum_mean_ms"] - s["glass_to_glass"]["mean"]) / max(s["glass_to_glass"]["mean"], 1e-9)
        lines += [
            f"### {s['calls']} concurrent call(s)", "",
            f"Frames: {s['frames_captured']} captured, {s['frames_sent']} sent, {s['frames_shown']} shown, "
            f"{s['frames_dropped']} dropped by the receivers, {s['frames_lost']} lost on the link, "
            f"{s['frames_late']} late (receiver time > 40 ms); shown {s['shown_fps_per_call']:.1f} frames/s per call, "
            f"{s['shown_fps_total']:.1f} in all. Decoder: average batch {s['metrics']['avg_batch']:.2f}, "
            f"most live sessions on /metrics {s['max_sessions_seen']:.0f}. Stage means add up to "
            f"{s['stage_sum_mean_ms']:.1f} ms against a mean glass to glass of {s['glass_to_glass']['mean']:.1f} ms "
            f"({100 * check:.1f} % apart).", "",
            "| stage | p50 | p95 | p99 | mean |", "| --- | --- | --- | --- | --- |",
            *(f"| {name} | {_ms(st)} |" for name, st in s["stages"].items()),
            f"| **glass to glass** | {_ms(s['glass_to_glass'])} |", "",
        ]
        if s["errors"]:
            lines += ["Failed calls: " + "; ".join(s["errors"]), ""]
    for key, title in (("cdf", "glass to glass CDF"), ("stages", "stages")):
        if key in paths:
            lines += [f"![{title}]({paths[key].name})", ""]
    lines += ["## perf_analyzer", "",
              "Each model alone, closed loop (a new request as soon as the last is answered), gRPC, real inputs; "
              "the `decoder` as whole call sequences (START with the source, then one frame's motion per request). "
              "Server queue and compute infer are Triton's split (µs → ms).", "",
              "| model | concurrency | inferences/s | p50 ms | p90 ms | p95 ms | p99 ms | server queue ms | "
              "server compute ms |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["perf"]:
        lines.append(f"| {r['model']} | {r['concurrency']:.0f} | {r['throughput']:.1f} | {r['p50_us'] / 1e3:.1f} | "
                     f"{r['p90_us'] / 1e3:.1f} | {r['p95_us'] / 1e3:.1f} | {r['p99_us'] / 1e3:.1f} | "
                     f"{r['queue_us'] / 1e3:.1f} | {r['compute_infer_us'] / 1e3:.1f} |")
    if data["perf"]:
        lines += ["", f"Command (per model and level): `{data['perf'][0]['command']}`", ""]
    if "perf_plot" in paths:
        lines += [f"![perf_analyzer]({paths['perf_plot'].name})", ""]
    if data["client_vs_perf"]:
        lines += ["The decoder request seen by the call profiler (sent → answered) against perf_analyzer at the same "
                  "concurrency (p50): the calls are paced at the clip's rate and their senders' motion_encoder "
                  "requests share the server's cores, perf_analyzer sends the decoder's requests back to back.", "",
                  "| calls | call profiler p50 ms | perf_analyzer p50 ms | ratio | within 20 % |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r['calls']} | {r['client_p50_ms']:.1f} | {r['perf_analyzer_p50_ms']:.1f} | {r['ratio']:.2f} | "
                  f"{'yes' if r['within_20pct'] else 'no'} |" for r in data["client_vs_perf"]]
        lines.append("")
    if data["trace"]:
        lines += ["## Triton trace: queue and compute per model", "",
                  "| model | requests | queue p50 ms | queue p95 ms | compute p50 ms | compute p95 ms | "
                  "request p50 ms |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for model, t in data["trace"].items():
            lines.append(f"| {model} | {t['requests']:.0f} | {t.get('queue_p50_ms', float('nan')):.2f} | "
                         f"{t.get('queue_p95_ms', float('nan')):.2f} | {t.get('compute_p50_ms', float('nan')):.2f} | "
                         f"{t.get('compute_p95_ms', float('nan')):.2f} | {t.get('request_p50_ms', float('nan')):.2f} |")
        lines.append("")
    if data["levels"]:
        stage_rows = []
        for s in data["levels"]:
            metrics = s["metrics"]
            frames = max(metrics.get("facecodec_frames_decoded_total", 0.0), 1.0)
            parts = {k[6:]: 1e3 * v / frames for k, v in metrics.items() if k.startswith("stage_")}
            stage_rows.append(f"| {s['calls']} | " + " | ".join(f"{parts.get(k, 0.0):.2f}" for k in
                                                                ("source", "keypoints", "expression_flow", "warp"))
                              + f" | {metrics.get('facecodec_frames_dropped_total', 0):.0f} |")
        lines += ["Inside the decoder (its own metrics, `facecodec_stage_seconds_total` / frames decoded, ms per "
                  "frame; dropped: `facecodec_frames_dropped_total`):", "",
                  "| calls | source | keypoints | expression_flow | warp | frames dropped |",
                  "| --- | --- | --- | --- | --- | --- |", *stage_rows, ""]
    if data["sweep"]:
        lines += [f"## Batching and instances ({data['sweep'][0]['calls']} concurrent calls each)", "",
                  "| settings | frames shown/s (all calls) | p50 ms | p95 ms | shown of captured | avg decoder batch |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['settings']} | {r['shown_fps_total']:.1f} | {r['g2g_p50_ms']:.0f} | {r['g2g_p95_ms']:.0f} | "
                  f"{100 * r['shown_share']:.0f} % | {r['avg_batch']:.2f} |" for r in data["sweep"]]
        lines += ["", f"Recommended: **{data['recommended']['settings']}** ({data['recommended']['why']}).", ""]
        if "sweep_plot" in paths:
            lines += [f"![sweep]({paths['sweep_plot'].name})", ""]
    cap = data["capacity"]
    if cap["rows"]:
        lines += ["## Capacity", "", f"**{cap['calls']} concurrent call(s)** held by one server ({cap['settings']}); "
                  f"criterion: {cap['criterion']}.", "",
                  "| calls | p50 ms | p95 ms | shown of captured | shown frames/s per call | holds |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['calls']} | {r['g2g_p50_ms']:.0f} | {r['g2g_p95_ms']:.0f} | {100 * r['shown_share']:.0f} % | "
                  f"{r['shown_fps_per_call']:.1f} | {'yes' if r['passed'] else 'no'} |" for r in cap["rows"]]
        lines.append("")
        if "capacity_plot" in paths:
            lines += [f"![capacity]({paths['capacity_plot'].name})", ""]
    lines += ["Raw data: " + ", ".join(f"`{p.name}`" for k, p in paths.items() if p.suffix in (".csv", ".json")), ""]
    return "\n".join(lines)
