"""Evaluation outputs: `metrics.json`, `report.md`, matplotlib figures and side-by-side videos.

JSON cannot hold NaN or inf: such values are written as null (NaN: no face found / model disabled;
inf: PSNR of identical frames).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .compare import HIGHER_IS_BETTER, UNITS
from .metrics import nanmean

OUTPUTS = ("model", "baseline")
STABILITY = {  # per clip, over time: name → unit
    "jitter_camera": "px per frame², mean |second difference| of the landmarks (metrics.jitter)",
    "jitter_codec": "px per frame², as jitter_camera",
    "breathing_codec": "%, std over frames of 100·ln(face scale / the camera's) (metrics.breathing)",
    "breathing_baseline": "%, as breathing_codec, for the repeated keyframe: the camera's own size change",
}
EXPRESSION = {  # per clip and output: how the decoded mouth and eyes follow the real ones
    "mouth_corr": "Pearson correlation over frames of the decoded vs the original mouth opening (metrics.follows)",
    "mouth_amp": "std(decoded mouth opening) / std(original): 1 moves as much, 0 not at all",
    "eye_corr": "as mouth_corr, for the eye opening (metrics.eye_opening)",
    "eye_amp": "as mouth_amp, for the eye opening",
}
LABELS = {"model": "codec", "baseline": "repeat source (baseline)"}


@dataclass
class ClipResult:
    """One clip: per-frame metrics of the codec output and of the repeated-source baseline."""

    name: str
    path: str
    fps: float
    frames: int
    kbps: float  # codec stream: keyframe + motion packets
    motion_kbps: float
    keyframe_bytes: int  # the first keyframe
    faces: dict[str, int]  # frames with a face found: original, model, baseline
    per_frame: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # output → metric → (T,)
    keyframes: int = 1  # sent by the codec: the first + refreshes
    stability: dict[str, float] = field(default_factory=dict)  # STABILITY keys (`metrics.jitter`, `.breathing`)
    expression: dict[str, dict[str, float]] = field(default_factory=dict)  # output → EXPRESSION keys
    openings: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # original/model → mouth/eye → (T,)

    @property
    def baseline_kbps(self) -> float:
        """The baseline sends the keyframe once and nothing else."""
        return 8.0 * self.keyframe_bytes / (self.frames / self.fps) / 1000.0

    def means(self, output: str) -> dict[str, float]:
        out = {name: nanmean(values) for name, values in self.per_frame[output].items()}
        out["kbps"] = self.kbps if output == "model" else self.baseline_kbps
        out["motion_kbps"] = self.motion_kbps if output == "model" else 0.0
        return out


def mean_over_clips(results: list[ClipResult], output: str) -> dict[str, float]:
    """Each clip weighs the same (mean of the per-clip means)."""
    per_clip = [r.means(output) for r in results]
    return {key: nanmean(np.array([m[key] for m in per_clip])) for key in per_clip[0]}


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_finite_or_none(v) for v in obj.astype(np.float64).tolist()]
    if isinstance(obj, (float, np.floating)):
        return _finite_or_none(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(_jsonable(data), indent=1) + "\n")
    return path


def metrics_document(results: list[ClipResult], info: dict) -> dict:
    """The content of metrics.json."""
    clips = [
        {
            "name": r.name, "path": r.path, "frames": r.frames, "fps": r.fps, "faces_found": r.faces,
            "kbps": r.kbps, "motion_kbps": r.motion_kbps, "keyframe_bytes": r.keyframe_bytes, "keyframes": r.keyframes,
            **{output: r.means(output) for output in OUTPUTS},
            "stability": r.stability, "expression": r.expression, "openings": r.openings, "per_frame": r.per_frame,
        }
        for r in results
    ]
    mean = {o: mean_over_clips(results, o) for o in OUTPUTS}
    return {**info, "units": {**UNITS, **STABILITY, **EXPRESSION}, "clips": clips, "mean": mean,
            "mean_stability": _mean_stability(results), "mean_expression": mean_expression(results)}


def _mean_stability(results: list[ClipResult]) -> dict[str, float]:
    return {k: nanmean(np.array([r.stability.get(k, np.nan) for r in results])) for k in STABILITY}


def mean_expression(results: list[ClipResult]) -> dict[str, dict[str, float]]:
    """output → EXPRESSION key → mean over the clips that have it."""
    return {o: {k: nanmean(np.array([r.expression.get(o, {}).get(k, np.nan) for r in results])) for k in EXPRESSION}
            for o in OUTPUTS}


def _fmt(value: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "inf"
    digits = {"psnr": 2, "ssim": 4, "akd": 2, "aed": 3, "pose_err": 2, "kbps": 2, "jitter": 2, "breathing": 2,
              "ratio": 2}
    return f"{value:.{digits.get(metric, 4)}f}"


def _table(results: list[ClipResult], names: list[str]) -> list[str]:
    arrows = [f"{n} {'↑' if n in HIGHER_IS_BETTER else '↓'}" for n in names]
    lines = ["| clip | frames | output | " + " | ".join(arrows) + " | kbit/s | motion kbit/s |",
             "|" + "---|" * (len(names) + 5)]
    rows = [(r.name, str(r.frames), r.means) for r in results]
    rows.append(("**mean of clips**", str(sum(r.frames for r in results)), lambda o: mean_over_clips(results, o)))
    for name, frames, means in rows:
        for output in OUTPUTS:
            m = means(output)
            cells = [_fmt(m[n], n) for n in names] + [_fmt(m["kbps"], "kbps"), _fmt(m["motion_kbps"], "kbps")]
            lines.append(f"| {name} | {frames} | {LABELS[output]} | " + " | ".join(cells) + " |")
    return lines


def _refresh_lines(results: list[ClipResult], refresh: str | None) -> list[str]:
    if refresh is None:
        return []
    counts = ", ".join(f"{r.name} {r.keyframes - 1}" for r in results)
    return [f"- **keyframe refresh on** ({refresh}): the sender also sends later frames as new sources; refresh "
            f"keyframes per clip: {counts}. Their bytes are in kbit/s."]


def _stability_lines(results: list[ClipResult]) -> list[str]:
    """Shaking and breathing: jitter beside the camera's (the repeated frame has none, so the camera
    is the reference there), breathing beside the baseline's (its size never changes, so it scores the
    camera's own size change)."""
    if not any(r.stability for r in results):
        return []
    lines = ["## Temporal stability", "",
             "Jitter = mean length of the 478 landmarks' second difference over time (px per frame², "
             "`facecodec.eval.metrics.jitter`): what a viewer sees as shaking. The camera's own is the reference: a "
             "decoded call well above it shakes, well below it has lost motion. Breathing = how much the face's size "
             "wanders against the real face's (std over frames of 100·ln(scale ratio), %, "
             "`facecodec.eval.metrics.breathing`): a head that grows and shrinks; the repeated keyframe scores the "
             "real face's own size change.", "",
             "| clip | jitter: camera | codec | codec / camera | breathing %: codec | baseline |",
             "|---|---|---|---|---|---|"]
    rows = [(r.name, r.stability) for r in results] + [("**mean of clips**", _mean_stability(results))]
    for name, st in rows:
        v = {k: st.get(k, math.nan) for k in STABILITY}
        ratio = v["jitter_codec"] / v["jitter_camera"] if v["jitter_camera"] else math.nan
        cells = [_fmt(v["jitter_camera"], "jitter"), _fmt(v["jitter_codec"], "jitter"), _fmt(ratio, "ratio"),
                 _fmt(v["breathing_codec"], "breathing"), _fmt(v["breathing_baseline"], "breathing")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _expression_lines(results: list[ClipResult]) -> list[str]:
    """Does the decoded face talk and blink: the mouth and eye openings' correlation and amplitude."""
    if not any(r.expression for r in results):
        return []
    lines = ["## Mouth and eyes", "",
             "Per frame, MediaPipe landmarks of the original and the decoded frame give the mouth opening (inner-lip "
             "gap 13–14 / inter-ocular distance 33–263) and the eye opening (lid gap / eye width, both eyes; "
             "`facecodec.eval.metrics`). Per clip: Pearson correlation of decoded vs original, and the amplitude "
             "ratio std(decoded) / std(original). Repeating the source scores 0 and 0.", "",
             "| clip | output | mouth corr ↑ | mouth amplitude (1 ideal) | eye corr ↑ | eye amplitude (1 ideal) |",
             "|---|---|---|---|---|---|"]
    means = mean_expression(results)
    rows = [(r.name, r.expression) for r in results] + [("**mean of clips**", means)]
    for name, expr in rows:
        for output in OUTPUTS:
            v = expr.get(output, {})
            cells = [_fmt(v.get(k, math.nan), "ratio") for k in EXPRESSION]
            lines.append(f"| {name} | {LABELS[output]} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_report(path: Path, results: list[ClipResult], info: dict, names: list[str], figures: dict[str, str],
                 extra: list[str] | None = None) -> Path:
    """report.md: setup, the per-clip table (codec and baseline side by side), figures, notes."""
    lines = [
        "# facecodec evaluation: self-reenactment",
        "",
        f"- model: preset `{info['preset']}`, weights: {info['weights']}",
        f"- clips: {len(results)} ({info['clips_from']}), at most {info['max_frames'] or 'all'} frames each, 256²",
        f"- source: each clip's first frame, sent as a WebP keyframe (quality {info['keyframe_quality']}); "
        "every frame then decoded from the motion "
        "packets by the in-process pipeline (eager PyTorch). kbit/s is the real stream: keyframe + packets "
        "over the clip's duration (short clips make the one-off keyframe dominate); motion kbit/s: packets alone.",
        *_refresh_lines(results, info.get("refresh")),
        *([f"- **{info['refine']}**: the receiver and the stream format are unchanged."] if info.get("refine") else []),
        *([f"- {info['expression'] or 'expression channel off (`--no-expression`): head motion only'}"]
          if "expression" in info else []),
        "- baseline: the receiver shows the decoded keyframe for every frame (costs the keyframe only).",
        "- metrics: PSNR and SSIM (Gaussian 11, σ 1.5) on RGB; LPIPS = shift-tolerant LPIPS (stlpips-pytorch "
        "AlexNet and VGG weights); AKD = mean distance of the 478 MediaPipe landmarks; AED = distance of dlib "
        "face-recognition embeddings (same person < 0.6); pose err = mean |Δ| of yaw, pitch, roll from "
        "landmarks + solvePnP. AKD, AED and pose use only frames where both faces are found.",
        "- means: per clip over its frames; the last rows average the clips with equal weight.",
        "",
        *_table(results, names),
        "",
        "Faces found (original / codec / baseline): "
        + ", ".join(f"{r.name} {r.faces['original']}/{r.faces['model']}/{r.faces['baseline']}" for r in results),
        "",
        *_stability_lines(results),
        *_expression_lines(results),
    ]
    for title, rel in figures.items():
        lines += [f"## {title}", "", f"![{title}]({rel})", ""]
    lines += extra or []
    path.write_text("\n".join(lines) + "\n")
    return path
