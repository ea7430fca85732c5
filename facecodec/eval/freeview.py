"""Free-view check: one face re-rendered at yaw / pitch / roll −30°, 0°, +30° and frontalised, each
render's head pose measured (MediaPipe landmarks + solvePnP) against the pose that was requested.

An override sets one angle and keeps the other two as the model estimated them for the source.
Two errors per render, both in degrees:

* `abs_error`: |measured − requested| of the edited angle (frontalised: mean |measured| of all
  three). It includes any offset between the model's angle scale and the PnP measurement.
* `rel_error`: the change of the edited angle against the source, measured vs requested:
  |(measured − measured_source) − (requested − model_source)|. Offsets cancel; this is how far the
  rendered rotation is from the rotation asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..landmarks import FaceLandmarker, head_pose
from ..codec.pipeline import Networks, ViewEdit
from .codec import render_views

ANGLES = (-30.0, 0.0, 30.0)
AXES = ("yaw", "pitch", "roll")


@dataclass(frozen=True)
class View:
    label: str
    axis: int | None  # 0 yaw, 1 pitch, 2 roll; None: frontalised
    requested: float  # degrees (frontalised: 0 for all three)
    edit: ViewEdit


def views() -> list[View]:
    """Frontalised, then each axis at each angle of ANGLES."""
    out = [View("frontalised", None, 0.0, ViewEdit(frontalise=True))]
    for axis, name in enumerate(AXES):
        for angle in ANGLES:
            override = tuple(angle if i == axis else None for i in range(3))
            out.append(View(f"{name} {angle:+.0f}°", axis, angle, ViewEdit(override=override)))
    return out


@dataclass(frozen=True)
class FreeViewResult:
    source: np.ndarray  # (H, W, 3) uint8
    source_measured: np.ndarray  # (3,) PnP pose of the source
    source_model: np.ndarray  # (3,) the model's own estimate of the source pose
    views: list[View]
    images: np.ndarray  # (V, H, W, 3) uint8
    measured: np.ndarray  # (V, 3) PnP pose of each render (NaN: no face found)

    def errors(self) -> tuple[np.ndarray, np.ndarray]:
        """(abs_error (V,), rel_error (V,)) in degrees, as defined in the module docstring."""
        abs_err, rel_err = np.empty(len(self.views)), np.empty(len(self.views))
        for i, view in enumerate(self.views):
            if view.axis is None:
                abs_err[i] = np.abs(self.measured[i]).mean()
                rel_err[i] = np.abs((self.measured[i] - self.source_measured) + self.source_model).mean()
                continue
            a = view.axis
            abs_err[i] = abs(self.measured[i, a] - view.requested)
            rel_err[i] = abs((self.measured[i, a] - self.source_measured[a]) - (view.requested - self.source_model[a]))
        return abs_err, rel_err

    def to_dict(self) -> dict:
        abs_err, rel_err = self.errors()
        return {
            "angle_order": list(AXES),
            "source_measured": self.source_measured, "source_model": self.source_model,
            "views": [
                {"label": v.label, "axis": None if v.axis is None else AXES[v.axis], "requested": v.requested,
                 "measured": self.measured[i], "abs_error": abs_err[i], "rel_error": rel_err[i]}
                for i, v in enumerate(self.views)
            ],
            "mean_abs_error": float(np.nanmean(abs_err)), "mean_rel_error": float(np.nanmean(rel_err)),
        }


def evaluate_freeview(networks: Networks, image: np.ndarray, landmarker: FaceLandmarker) -> FreeViewResult:
    """Render `image` (H, W, 3) uint8 under every view of `views()` and measure each render's pose."""
    all_views = views()
    images, model_pose = render_views(networks, image, [v.edit for v in all_views])
    measured = head_pose(landmarker.detect(np.concatenate([image[None], images])), size=image.shape[0])
    return FreeViewResult(image, measured[0], model_pose.astype(np.float64), all_views, images, measured[1:])


def save_grid(path: Path, result: FreeViewResult, title: str | None = None) -> Path:
    """PNG: source and frontalised on top, then one row per axis (−30°, 0°, +30°), each tile titled
    with the measured pose and its errors; `title` (e.g. which weights) goes above the grid."""
    from .figures import _pyplot

    plt = _pyplot()
    abs_err, rel_err = result.errors()
    fig, axes = plt.subplots(4, 3, figsize=(7.5, 10.6))
    for ax in axes.flat:
        ax.axis("off")
    m = result.source_measured
    axes[0, 0].imshow(result.source)
    axes[0, 0].set_title(f"source\nmeasured y {m[0]:+.0f} p {m[1]:+.0f} r {m[2]:+.0f}", fontsize=8)
    tiles = [(0, 1)] + [(1 + axis, col) for axis in range(3) for col in range(3)]
    for (row, col), view, image, meas, ea, er in zip(tiles, result.views, result.images, result.measured,
                                                      abs_err, rel_err):
        axes[row, col].imshow(image)
        axes[row, col].set_title(f"{view.label}\nmeasured y {meas[0]:+.0f} p {meas[1]:+.0f} r {meas[2]:+.0f}\n"
                                 f"err {ea:.1f}° (rel. {er:.1f}°)", fontsize=8)
    s = result.source_model
    axes[0, 2].text(0, 0.5, "angles in degrees (yaw, pitch, roll)\n"
                    f"model's source estimate:\ny {s[0]:+.1f} p {s[1]:+.1f} r {s[2]:+.1f}\n"
                    "err: |measured − requested|\nrel.: change vs source,\nmeasured vs requested",
                    fontsize=8, va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
