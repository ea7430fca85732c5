"""Head kinematics: pose bins → degrees → rotation → 3-D keypoints, and receiver-side edits.

Conventions are those of the public face-vid2vid checkpoint (`vox256`), used by both presets:

* Angles are in **degrees**; yaw turns about the y axis, pitch about x, roll about z.
* Degrees → radians multiplies by 3.14 / 180 (the reference's constant, not π).
* R = Rx(pitch) · Ry(yaw) · Rz(roll), right-handed.
* Keypoints live in the normalised feature-volume cube [-1, 1]³, last axis (x, y, z);
  a frame's keypoints are x = R · x_c + t + δ (per keypoint).

All functions take and return arrays with a leading batch axis B and broadcast nothing silently:
shapes are stated per function. The geometry (rotation, keypoints, view edits) runs on torch tensors
(the networks, training, export) and on numpy arrays alike, by one code path: the receiver's
keypoints need no torch (the served decoder's process never imports it: it starts a second sooner
and stays ~200 MB smaller). `bins_to_degrees` is the networks' and takes torch only.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PI_REFERENCE = 3.14  # the reference converts degrees with 3.14, not math.pi; keep bit-compatibility
FREE_VIEW_LIMIT_DEG = 30.0


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """Pose-bin logits (B, 66) → angle in degrees (B,): softmax expectation, 3°/bin from −99°."""
    import torch

    probs = torch.softmax(logits, dim=1)
    idx = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return (probs * idx).sum(dim=1) * 3 - 99


def _xp(array):
    """The array's library: numpy for numpy arrays, else torch (already imported by whoever made it)."""
    return np if isinstance(array, np.ndarray) else sys.modules["torch"]


def _stack(xp, arrays, axis: int):
    return xp.stack(arrays, axis) if xp is np else xp.stack(arrays, dim=axis)


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Angles in degrees, each (B,) → rotation matrices (B, 3, 3) = Rx(pitch) · Ry(yaw) · Rz(roll)."""
    xp = _xp(yaw)
    y, p, r = (a / 180 * PI_REFERENCE for a in (yaw, pitch, roll))
    one, zero = xp.ones_like(y), xp.zeros_like(y)
    (cy, sy), (cp, sp), (cr, sr) = ((xp.cos(a), xp.sin(a)) for a in (y, p, r))

    def mat(rows):  # rows of (B,) arrays → (B, 3, 3)
        return _stack(xp, [_stack(xp, row, -1) for row in rows], -2)

    rx = mat([[one, zero, zero], [zero, cp, -sp], [zero, sp, cp]])
    ry = mat([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rz = mat([[cr, -sr, zero], [sr, cr, zero], [zero, zero, one]])
    return rx @ ry @ rz


def transform_keypoints(
    kp_canonical: torch.Tensor,
    yaw: torch.Tensor,
    pitch: torch.Tensor,
    roll: torch.Tensor,
    t: torch.Tensor,
    exp: torch.Tensor,
) -> torch.Tensor:
    """x = R · x_c + t + δ.

    kp_canonical (B, K, 3); yaw, pitch, roll (B,) degrees; t (B, 3); exp (B, K, 3) → (B, K, 3).
    """
    rot = rotation_matrix(yaw, pitch, roll)  # (B, 3, 3)
    return _xp(kp_canonical).einsum("bij,bkj->bki", rot, kp_canonical) + t[:, None, :] + exp


def _check_free_view(name: str, value: float) -> float:
    if not -FREE_VIEW_LIMIT_DEG <= value <= FREE_VIEW_LIMIT_DEG:
        raise ValueError(f"{name}={value}° is outside the free-view range ±{FREE_VIEW_LIMIT_DEG:g}°")
    return float(value)


def free_view(
    yaw: torch.Tensor,
    pitch: torch.Tensor,
    roll: torch.Tensor,
    *,
    override: tuple[float | None, float | None, float | None] = (None, None, None),
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Receiver-side view change of angles in degrees, each (B,) → (yaw, pitch, roll), each (B,).

    `override` replaces an angle (None keeps the sender's), then `offset` is added. Each given
    value must lie within ±30°, the range the model is trained to render.
    """
    out = []
    for name, angle, fixed, delta in zip(("yaw", "pitch", "roll"), (yaw, pitch, roll), override, offset):
        if fixed is not None:
            angle = _xp(angle).full_like(angle, _check_free_view(name, fixed))
        out.append(angle + _check_free_view(f"{name} offset", delta))
    return out[0], out[1], out[2]


def frontalise(
    yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Face the camera: all angles zero (degrees, each (B,)); translation and expression are kept."""
    xp = _xp(yaw)
    return xp.zeros_like(yaw), xp.zeros_like(pitch), xp.zeros_like(roll)


def relative_keypoints(
    kp_source: torch.Tensor,
    kp_driving: torch.Tensor,
    kp_driving_initial: torch.Tensor,
    scale: float = 1.0,
) -> torch.Tensor:
    """Motion transfer: apply the driver's motion since its first frame to the source.

    kp_source + (kp_driving − kp_driving_initial) · scale; all (B, K, 3). With the source equal to
    the driver's first frame this is the identity on kp_driving.
    """
    return kp_source + (kp_driving - kp_driving_initial) * scale
