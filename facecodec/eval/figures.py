"""Figures (matplotlib, Agg backend, PNG) and side-by-side frames for the evaluation outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .report import LABELS, OUTPUTS, ClipResult, mean_over_clips

COLOURS = {"model": "tab:blue", "baseline": "tab:gray"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def error_heat(original: np.ndarray, decoded: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """|original − decoded| averaged over RGB, × gain, as an 'inferno' heat map (T, H, W, 3) uint8."""
    from matplotlib import colormaps

    err = np.abs(original.astype(np.float32) - decoded.astype(np.float32)).mean(axis=-1) * gain / 255.0
    return (colormaps["inferno"](np.clip(err, 0, 1))[..., :3] * 255 + 0.5).astype(np.uint8)


def side_by_side(*clips: np.ndarray) -> np.ndarray:
    """Clips of equal shape (T, H, W, 3) placed left to right → (T, H, W·n, 3)."""
    return np.concatenate(clips, axis=2)


def plot_curves(path: Path, results: list[ClipResult], metrics: tuple[str, ...] = ("psnr", "lpips_alex")) -> Path:
    """Per-frame curves, one row per clip, one column per metric; codec vs baseline."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(results), len(metrics), figsize=(5 * len(metrics), 2.2 * len(results)),
                             squeeze=False, sharex=False)
    for row, result in zip(axes, results):
        for ax, metric in zip(row, metrics):
            for output in OUTPUTS:
                values = result.per_frame[output].get(metric)
                if values is not None:
                    ax.plot(np.where(np.isfinite(values), values, np.nan), color=COLOURS[output],
                            label=LABELS[output], lw=1.2)
            ax.set_title(f"{result.name}: {metric}", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_openings(path: Path, result: ClipResult) -> Path:
    """Mouth and eye opening over one clip's frames: the original, the codec and the repeated source."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(8, 4.4), sharex=True)
    for ax, part in zip(axes, ("mouth", "eye")):
        for key, label, colour in (("original", "original", "black"), ("model", LABELS["model"], COLOURS["model"]),
                                   ("baseline", LABELS["baseline"], COLOURS["baseline"])):
            values = result.openings.get(key, {}).get(part)
            if values is not None:
                ax.plot(np.broadcast_to(values, (result.frames,)), label=label, color=colour, lw=1.1)
        scores = result.expression.get("model", {})
        ax.set_title(f"{result.name}: {part} opening (corr {scores.get(f'{part}_corr', np.nan):.2f}, "
                     f"amplitude {scores.get(f'{part}_amp', np.nan):.2f})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_bars(path: Path, results: list[ClipResult], names: list[str]) -> Path:
    """Mean of clips per metric (and kbit/s): codec vs baseline, one small panel each."""
    plt = _pyplot()
    keys = [*names, "kbps", "motion_kbps"]
    means = {o: mean_over_clips(results, o) for o in OUTPUTS}
    fig, axes = plt.subplots(1, len(keys), figsize=(1.7 * len(keys), 2.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        values = [means[o][key] for o in OUTPUTS]
        values = [v if np.isfinite(v) else 0.0 for v in values]
        ax.bar(range(len(OUTPUTS)), values, color=[COLOURS[o] for o in OUTPUTS])
        ax.set_xticks(range(len(OUTPUTS)), ["codec", "baseline"], fontsize=7)
        ax.set_title(key, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_transfer(path: Path, aed_portrait: np.ndarray, aed_driver: np.ndarray, threshold: float) -> Path:
    """Per-frame identity distance of the motion-transfer output to the portrait and to the driver."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.plot(aed_portrait, label="AED to portrait (identity kept: low)", color="tab:blue")
    ax.plot(aed_driver, label="AED to driver (identity leak: low)", color="tab:red")
    ax.axhline(threshold, color="gray", ls="--", lw=0.8, label=f"same-person threshold {threshold}")
    ax.set_xlabel("frame")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
