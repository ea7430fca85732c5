"""Writing the results: `rd.json` (every number), one PNG per metric, and `report.md`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .anchors import ANCHORS
from .neural import NeuralSetting, QuantisationEffect
from .quality import HIGHER_IS_BETTER, LpipsPlan
from .summary import BASES, BdRow, MatchRow, bd_rows, default_point, headline, hull, match_rows, per_clip_ratios
from .sweep import FACECODEC, KEYFRAME_ONLY, RdPoint, mean_points

HEADLINE_ANCHORS = ("x264-veryslow", "av1")
PANEL_TITLES = {"clip": "clip rate: everything counted (keyframe / intra frame amortised over the clip)",
                "call": "long-call rate: one-off keyframe / opening intra frame left out",
                "call12": "12-s call: long-call rate + one-off bytes over 12 s",
                "call60": "60-s call: long-call rate + one-off bytes over 60 s"}
METRIC_TITLES = {"psnr": "PSNR (dB, higher is better)", "ssim": "SSIM (higher is better)",
                 "lpips_alex": "stLPIPS-Alex (lower is better)", "lpips_vgg": "stLPIPS-VGG (lower is better)"}


@dataclass
class RdRun:
    """One `facecodec rd` run: its inputs and measured points (per clip)."""

    command: str
    preset: str
    weights: dict  # {"path", "sha256", "kind": "trained" | "random (seed 0)"}
    clips: list[dict]  # name, path, frames, fps, seconds
    lpips: LpipsPlan
    codecs: list[str]
    points: list[RdPoint]
    quantisation: dict[str, QuantisationEffect] = field(default_factory=dict)
    wall_seconds: float = 0.0

    @classmethod
    def from_json(cls, data: dict) -> RdRun:
        """The run stored in an rd.json (quantisation checks are kept as their JSON rows)."""
        quantisation = {clip: QuantisationEffect(NeuralSetting.from_label(q["setting"]), q["quality_vs_unquantised"],
                                                 q["motion_kbps"], q["kbps"], q["frames"])
                        for clip, q in data["quantisation"].items()}
        return cls(data["command"], data["preset"], data["weights"], data["clips"],
                   LpipsPlan(tuple(data["lpips_frame_strides"].items())), data["codecs"],
                   [RdPoint.from_json(p) for p in data["points"]], quantisation, data["wall_seconds"])

    @property
    def metrics(self) -> list[str]:
        return list(self.points[0].quality)

    @property
    def means(self) -> list[RdPoint]:
        return mean_points(self.points)


def write_report(run: RdRun, out: str | Path) -> dict[str, Path]:
    """Write rd.json, rd_<metric>.png and report.md under `out`; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    means = run.means
    matches = match_rows(means, run.codecs, run.metrics)
    bds = bd_rows(means, run.codecs, run.metrics)
    paths = {"json": out / "rd.json", "report": out / "report.md"}
    paths["json"].write_text(json.dumps(_json(run, means, matches, bds), indent=1, default=_json_default) + "\n")
    for metric in run.metrics:
        paths[metric] = plot_metric(means, run.codecs, metric, out / f"rd_{metric}.png")
    paths["report"].write_text(markdown(run, means, matches, bds, {m: paths[m].name for m in run.metrics}))
    return paths


def _json(run: RdRun, means, matches, bds) -> dict:
    return {
        "command": run.command, "preset": run.preset, "weights": run.weights, "clips": run.clips,
        "lpips_frame_strides": dict(run.lpips.strides), "codecs": run.codecs,
        "anchors": {c: {"encoder": ANCHORS[c].encoder, "options": list(ANCHORS[c].options),
                        "description": ANCHORS[c].description} for c in run.codecs},
        "rate_bases": {k: v[1] for k, v in BASES.items()},
        "points": [p.to_json() for p in run.points], "means": [p.to_json() for p in means],
        "match_default": [r.to_json() for r in matches], "bd_rate": [r.to_json() for r in bds],
        "quantisation": {clip: q.to_json() for clip, q in run.quantisation.items()},
        "wall_seconds": run.wall_seconds,
    }


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def plot_metric(means: Sequence[RdPoint], codecs: Sequence[str], metric: str, path: Path) -> Path:
    """Two panels (clip rate, long-call rate), kbps on a log axis, one curve per codec."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, axes = plt.subplots(1, len(BASES), figsize=(5.5 * len(BASES), 4.4), sharey=True)
    for ax, (basis, (attr, title)) in zip(axes, BASES.items()):
        for codec in codecs:
            pts = sorted((getattr(p, attr), p.quality[metric]) for p in means if p.codec == codec)
            ax.plot(*zip(*pts), marker="o", ms=4, label=codec)
        own = [p for p in means if p.codec == FACECODEC]
        ax.scatter([getattr(p, attr) for p in own], [p.quality[metric] for p in own], color="k", s=18, zorder=3,
                   label="facecodec settings")
        front = hull(means, FACECODEC, metric, basis)
        ax.plot(*zip(*front), color="k", lw=1.2, ls="--", label="facecodec hull")
        ref = default_point(means)
        ax.scatter([getattr(ref, attr)], [ref.quality[metric]], marker="*", s=180, color="crimson", zorder=4,
                   label=f"facecodec default ({ref.setting})")
        for base in (p for p in means if p.codec == KEYFRAME_ONLY):
            if getattr(base, attr) > 0:
                ax.scatter([getattr(base, attr)], [base.quality[metric]], marker="x", s=60, color="gray", zorder=4,
                           label="keyframe only (frozen frame)")
            else:  # no bits after the keyframe: a level to beat, not a point on a log axis
                ax.axhline(base.quality[metric], color="gray", ls=":", label="keyframe only (0 kbps after it)")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("kbit/s (log axis)")
        ax.set_title(PANEL_TITLES[basis], fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(METRIC_TITLES.get(metric, metric))
    if not HIGHER_IS_BETTER[metric]:
        axes[0].invert_yaxis()  # better is up on every plot
    handles = {}
    for ax in axes:  # one legend for both panels (the keyframe-only marker differs between them)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    axes[1].legend(handles.values(), handles.keys(), fontsize=7, loc="best")
    fig.suptitle(f"{METRIC_TITLES.get(metric, metric)}, mean over clips", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(value: float, metric: str) -> str:
    return f"{value:.2f}" if metric == "psnr" else f"{value:.4f}"


def markdown(run: RdRun, means: list[RdPoint], matches: list[MatchRow], bds: list[BdRow], plots: dict[str, str]) -> str:
    ref = default_point(means)
    lines = ["# facecodec rate–distortion report", "",
             f"Generated by `{run.command}` ({run.wall_seconds / 60:.1f} min).", ""]
    lines += _setup(run)
    lines += ["## Headline (mean over clips)", ""]
    nets = [m for m in run.metrics if m.startswith("lpips")]
    for anchor in (a for a in HEADLINE_ANCHORS if a in run.codecs):
        for metric in nets:
            for basis in BASES:
                lines.append(f"- {headline(matches, anchor, metric, basis)}")
    lines += _baseline(means, nets)
    share = ref.sizes["keyframe"] / max(1, ref.sizes["stream"])
    lines += ["", f"facecodec default point: {ref.setting} — {ref.kbps:.1f} kbps over the clip "
              f"(keyframe {ref.sizes['keyframe']} B + motion {ref.sizes['motion']} B + header {ref.sizes['header']} B; "
              f"the keyframe is {share:.0%} of the bytes), {ref.steady_kbps:.2f} kbps for the motion packets alone.",
              ""]
    lines += _rates_section()
    lines += _points_table(run, means)
    lines += _match_section(run, matches)
    lines += _keyframe_only_section(run, means)
    lines += _legacy_section(run, means)
    lines += _bd_section(run, bds)
    lines += _per_clip_section(run)
    lines += _quantisation_section(run)
    lines += ["## Plots", ""] + [f"![{m}]({name})" for m, name in plots.items()] + [""]
    lines += _caveats(run)
    return "\n".join(lines) + "\n"


def _setup(run: RdRun) -> list[str]:
    w = run.weights
    lines = ["## Setup", "",
             f"- Preset `{run.preset}`, weights: **{w['kind']}**"
             + (f" — `{w['path']}`, sha256 `{w['sha256']}`" if w.get("path") else "") + ".",
             f"- LPIPS: shift-tolerant (stLPIPS, `facecodec.eval.metrics`), {run.lpips.describe()} (the same "
             "frames for every codec); PSNR and SSIM on every frame (RGB, 256²).",
             "- Clips (reference = the clip's own frames, centre-cropped square at 256², as decoded from the data "
             "set):", ""]
    lines += ["| clip | frames | fps | seconds |", "| --- | --- | --- | --- |"]
    lines += [f"| {c['name']} | {c['frames']} | {c['fps']:g} | {c['seconds']:.2f} |" for c in run.clips]
    lines += ["", "Anchors (ffmpeg, same 256² frames and frame rate, yuv420p, single-threaded, CRF sweep):", ""]
    lines += [f"- `{c}`: {ANCHORS[c].description}; `-c:v {ANCHORS[c].encoder} {' '.join(ANCHORS[c].options)}`, "
              f"CRF {', '.join(map(str, ANCHORS[c].crfs))}" for c in run.codecs]
    return lines + [""]


def _rates_section() -> list[str]:
    return ["## How rates are counted", "",
            "- **clip** rate: everything the clip cost, over its duration (frames / fps). facecodec: the whole "
            "stream — header, the WebP keyframe packet, every motion packet with its framing and CRC — i.e. the "
            "one-shot keyframe amortised over these few seconds only. Anchors: the coded video packets "
            "(elementary stream, opening intra frame included), **without** the MP4 container, which is listed "
            "separately (`file kbps`); leaving it out favours the anchors.",
            "- **call** rate: a long call, where the one-off costs vanish. facecodec: motion packets only "
            "(`StreamStats.kbps(keyframes=False)`); anchors: packets after the opening intra frame. The quality "
            "is the one measured on the clip for both.",
            "- A call of S seconds costs facecodec motion kbps + 8·(keyframe + header bytes)/S/1000 kbit/s; the "
            "byte counts are in `rd.json`.", ""]


def _points_table(run: RdRun, means: list[RdPoint]) -> list[str]:
    head = "| codec | setting | clip kbps | call kbps | file kbps | " + " | ".join(run.metrics) + " |"
    lines = ["## Measured points (mean over clips)", "", head, "|" + " --- |" * (5 + len(run.metrics))]
    for codec in [FACECODEC, KEYFRAME_ONLY, *run.codecs]:
        for p in sorted((p for p in means if p.codec == codec), key=lambda p: p.kbps):
            star = " (default)" if p.default else ""
            q = " | ".join(_fmt(p.quality[m], m) for m in run.metrics)
            rates = f"{p.kbps:.2f} | {p.steady_kbps:.2f} | {p.file_kbps:.2f}"
            lines.append(f"| {codec} | {p.setting}{star} | {rates} | {q} |")
    return lines + [""]


def _match_section(run: RdRun, matches: list[MatchRow]) -> list[str]:
    lines = ["## Bitrate each anchor needs to match facecodec's default point", "",
             "Interpolated linearly in log-rate between the two anchor points that bracket facecodec's quality "
             "(mean over clips). *never this bad*: the anchor's cheapest point is already better, so it matches "
             "at some rate below that point; *not reached*: its richest point is still worse. Ratios are anchor "
             "kbps / facecodec kbps.", ""]
    for basis in BASES:
        rows = {(r.anchor, r.metric): r for r in matches if r.basis == basis}
        ref = next(iter(rows.values())).facecodec_kbps
        targets = {m: _fmt(rows[(run.codecs[0], m)].facecodec_quality, m) for m in run.metrics}
        lines += [f"**{basis}** rate (facecodec {ref:.2f} kbps):", "",
                  "| anchor | " + " | ".join(f"{m} = {targets[m]}" for m in run.metrics) + " |",
                  "|" + " --- |" * (1 + len(run.metrics))]
        for anchor in run.codecs:
            cells = [rows[(anchor, m)].match.describe(ref) for m in run.metrics]
            lines.append(f"| {anchor} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _bd_section(run: RdRun, bds: list[BdRow]) -> list[str]:
    lines = ["## Bjøntegaard delta rate of facecodec against each anchor", "",
             "facecodec's curve is the hull of all its settings; PCHIP in log-rate over the quality range both "
             "curves cover (no extrapolation). Negative: facecodec needs fewer bits at equal quality. "
             "⚠ narrow overlap: the common range is under a tenth of the anchor's, so the number is little more "
             "than the single-point match above.", "",
             "| basis | metric | " + " | ".join(run.codecs) + " |", "|" + " --- |" * (2 + len(run.codecs))]
    by_key = {(r.anchor, r.metric, r.basis): r for r in bds}
    for basis in BASES:
        for metric in run.metrics:
            cells = [by_key[(a, metric, basis)].text() for a in run.codecs]
            lines.append(f"| {basis} | {metric} | " + " | ".join(cells) + " |")
    return lines + [""]


def _per_clip_section(run: RdRun) -> list[str]:
    nets = [m for m in run.metrics if m.startswith("lpips")]
    lines = ["## Per clip: rate to match facecodec's default LPIPS (clip rate)", "",
             "| clip | " + " | ".join(f"{a} ({m})" for a in run.codecs for m in nets) + " |",
             "|" + " --- |" * (1 + len(run.codecs) * len(nets))]
    table = {(a, m): per_clip_ratios(run.points, a, m) for a in run.codecs for m in nets}
    for clip in sorted({p.clip for p in run.points}):
        lines.append(f"| {clip} | " + " | ".join(table[(a, m)][clip] for a in run.codecs for m in nets) + " |")
    return lines + [""]


def _quantisation_section(run: RdRun) -> list[str]:
    if not run.quantisation:
        return []
    metrics = list(next(iter(run.quantisation.values())).quality)
    lines = ["## Keypoint quantisation alone (acceptance check 4)", "",
             "The default setting's decode against the same receiver fed the UNquantised motion (same decoded "
             "keyframe): what quantising the keypoints costs, separate from what the networks cost.", "",
             "| clip | motion kbps (no keyframe) | " + " | ".join(metrics) + " |", "|" + " --- |" * (2 + len(metrics))]
    for clip, q in run.quantisation.items():
        lines.append(f"| {clip} | {q.motion_kbps:.2f} | " + " | ".join(_fmt(q.quality[m], m) for m in metrics) + " |")
    mean = {m: float(np.mean([q.quality[m] for q in run.quantisation.values()])) for m in metrics}
    kbps = float(np.mean([q.motion_kbps for q in run.quantisation.values()]))
    lines.append(f"| mean | {kbps:.2f} | " + " | ".join(_fmt(mean[m], m) for m in metrics) + " |")
    return lines + [""]


def _caveats(run: RdRun) -> list[str]:
    lines = ["## Caveats (generated)", ""]
    if not run.weights.get("path"):
        lines.append("- **The networks have seeded random weights**: facecodec's quality here says nothing about "
                     "the trained codec; only the rates and the anchors are meaningful.")
    seconds = sorted(c["seconds"] for c in run.clips)
    span = f"{seconds[0]:.1f}" if seconds[0] == seconds[-1] else f"{seconds[0]:.1f}–{seconds[-1]:.1f}"
    lines += [
        f"- Clips are {span} s long: the clip rate charges facecodec's whole keyframe to "
        "these few seconds; the call rate assumes the quality measured here holds over a long call, which for "
        "facecodec depends on the speaker staying close to the source image's pose and look.",
        f"- LPIPS is sampled ({run.lpips.describe()}); PSNR and SSIM use every frame.",
        "- The anchors' call rate drops only the opening intra frame; with their default GOPs a 100-frame clip "
        "holds no other intra frame, while facecodec's call rate keeps its intra MOTION packets (every 25th frame).",
        "- The lite model is trained with a perceptual loss on stLPIPS-AlexNet features; LPIPS-Alex can therefore "
        "flatter it. LPIPS-VGG is the less partial perceptual metric when present.",
        "- Anchors are measured without the MP4 container (`file kbps` has it); facecodec's rate includes its packet "
        "framing (length, type, sequence number, timestamp, CRC: 13 bytes a frame, 2.6 kbit/s at 25 fps).",
    ]
    return lines + [""]


def _baseline(means: list[RdPoint], metrics: list[str]) -> list[str]:
    """The frozen-keyframe comparison: does facecodec's motion buy anything over showing the keyframe?"""
    base = [p for p in means if p.codec == KEYFRAME_ONLY]
    if not base:
        return []
    ref, base = default_point(means), base[0]
    parts = []
    for metric in metrics:
        better = (ref.quality[metric] > base.quality[metric]) == HIGHER_IS_BETTER[metric]
        parts.append(f"{metric} {_fmt(ref.quality[metric], metric)} vs {_fmt(base.quality[metric], metric)} "
                     f"({'better' if better else '**worse**'})")
    lines = [f"- Baseline: facecodec's default decode against the keyframe alone shown for every frame (no motion "
             f"sent): {'; '.join(parts)}."]
    if any("**worse**" in part for part in parts):
        lines.append("- ⚠ Where facecodec is worse than the frozen keyframe, its ratios above measure how well the "
                     "anchors compete with one sharp still image, not the value of the motion it sends.")
    return lines


def _legacy_section(run: RdRun, means: list[RdPoint]) -> list[str]:
    """The stream before issue 21 (legacy packets, WebP 90) against the default, measured in the same run."""
    old = next((p for p in means if p.codec == FACECODEC and p.setting.endswith(", legacy")), None)
    if old is None:
        return []
    new = default_point(means)
    lines = ["## Today's stream against the stream before issue 21 (same run)", "",
             f"`{old.setting}` is the stream as it was (legacy packets, versions 1/2; WebP keyframe); `{new.setting}` "
             "the default now (compact packets, version 3; the keyframe as its setting says). Same motion, same "
             "networks.", "",
             "| stream | clip kbps | 12-s call | 60-s call | long call | " + " | ".join(run.metrics) + " |",
             "|" + " --- |" * (5 + len(run.metrics))]
    for p in (old, new):
        rates = f"{p.kbps:.2f} | {p.call12_kbps:.2f} | {p.call60_kbps:.2f} | {p.steady_kbps:.2f}"
        lines.append(f"| {p.setting} | {rates} | " + " | ".join(_fmt(p.quality[m], m) for m in run.metrics) + " |")
    lines.append(f"| new / old | {new.kbps / old.kbps:.2f} | {new.call12_kbps / old.call12_kbps:.2f} | "
                 f"{new.call60_kbps / old.call60_kbps:.2f} | {new.steady_kbps / old.steady_kbps:.2f} | "
                 + " | ".join("" for _ in run.metrics) + " |")
    return lines + [""]


def _keyframe_only_section(run: RdRun, means: list[RdPoint]) -> list[str]:
    """What the anchors need to match a decoder that only ever shows the keyframe."""
    base = next((p for p in means if p.codec == KEYFRAME_ONLY), None)
    if base is None:
        return []
    rows = {(r.anchor, r.metric): r for r in match_rows(means, run.codecs, run.metrics, ["clip"], reference=base)}
    lines = ["## Reference: the keyframe alone", "",
             f"The default keyframe ({base.setting}, {base.kbps:.2f} kbps over the clip, nothing after it) shown for "
             "every frame, matched like facecodec above (clip rate; in a long call it costs 0 kbit/s after the "
             "start). Where this frozen frame already \"beats\" an anchor, that metric rewards a sharp but "
             "motionless picture, and a facecodec ratio on it says little about motion.",
             "", "| anchor | " + " | ".join(f"{m} = {_fmt(base.quality[m], m)}" for m in run.metrics) + " |",
             "|" + " --- |" * (1 + len(run.metrics))]
    for anchor in run.codecs:
        lines.append(f"| {anchor} | " + " | ".join(rows[(anchor, m)].match.describe(base.kbps) for m in run.metrics)
                     + " |")
    return lines + [""]
