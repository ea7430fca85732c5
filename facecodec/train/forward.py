"""The whole model run for training: one source image, N driving frames of the same clip.

Mirrors what sender and receiver do at inference (source side once, head pose per frame,
x = R·x_c + t + δ, warp + decode), and also returns the intermediate tensors the losses need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..kinematics import bins_to_degrees, transform_keypoints
from ..models import FaceVid2Vid


@dataclass
class ForwardOut:
    generated: torch.Tensor  # (B·N, 3, S, S), driving order: source-major
    deformation: torch.Tensor  # (B·N, D, h, w, 3)
    occlusion: torch.Tensor  # (B·N, 1, h, w)
    kp_canonical: torch.Tensor  # (B, K, 3)
    kp_driving: torch.Tensor  # (B·N, K, 3)
    rotation: torch.Tensor  # (B + B·N [+ B·N], 3) degrees: sources, drivings, transformed drivings
    expression: torch.Tensor  # (B + B·N [+ B·N], K, 3), same order
    kp_transformed: torch.Tensor | None  # (B·N, K, 3) keypoints of the affine-warped drivings
    pose_logits: torch.Tensor  # (same rows as `rotation`, 3, bins) yaw, pitch, roll bin logits
    view_deformation: torch.Tensor | None = None  # (B, D, h, w, 3) each source re-rendered at `view_angles`
    decoded: torch.Tensor | None = None  # (B·N, 3, S, S) the decoder's own image, before the source blend


def run_model(model: FaceVid2Vid, sources: torch.Tensor, drivings: torch.Tensor,
              transformed: torch.Tensor | None = None, view_angles: torch.Tensor | None = None,
              expression_flows: torch.Tensor | None = None) -> ForwardOut:
    """sources (B, 3, S, S), drivings (B, N, 3, S, S), transformed (B·N, 3, S, S) or None.

    view_angles (B, 3) degrees or None: also the motion of a free-view edit of each source (the
    receiver's `ViewEdit`): angles that are NaN keep the model's estimate, t and δ stay the source's.
    expression_flows (B·N, 3, E, E) or None: the expression channel's flow per pair (`train.expression`).
    """
    b, n = drivings.shape[:2]
    flat = drivings.flatten(0, 1)  # (B·N, 3, S, S)
    features = model.appearance(sources)  # (B, C, D, H, W)
    kp_c = model.keypoints(sources)  # (B, K, 3)
    frames = [sources, flat] + ([transformed] if transformed is not None else [])
    yaw, pitch, roll, t, exp = model.head_pose(torch.cat(frames))  # one batched pass for all frames
    rotation = torch.stack([bins_to_degrees(yaw), bins_to_degrees(pitch), bins_to_degrees(roll)], dim=1)
    per_frame_c = torch.cat([kp_c] + [kp_c.repeat_interleave(n, 0)] * (len(frames) - 1))
    kp = transform_keypoints(per_frame_c, rotation[:, 0], rotation[:, 1], rotation[:, 2], t, exp)
    kp_s, kp_d = kp[:b].repeat_interleave(n, 0), kp[b : b + b * n]
    kp_t = kp[b + b * n :] if transformed is not None else None
    feats = features.repeat_interleave(n, 0)  # (B·N, C, D, H, W)
    deformation, occlusion, _ = model.motion(feats, kp_s, kp_d)
    generated, decoded = model.generator.parts(feats, deformation, occlusion, sources.repeat_interleave(n, 0),
                                               expression_flows)
    view_deformation = None
    if view_angles is not None:
        angles = torch.where(torch.isnan(view_angles), rotation[:b], view_angles)
        kp_view = transform_keypoints(kp_c, angles[:, 0], angles[:, 1], angles[:, 2], t[:b], exp[:b])
        view_deformation = model.motion(features, kp[:b], kp_view)[0]
    return ForwardOut(generated, deformation, occlusion, kp_c, kp_d, rotation, exp, kp_t,
                      torch.stack([yaw, pitch, roll], dim=1), view_deformation, decoded)


HEAD_NAMES = ("fc_yaw", "fc_pitch", "fc_roll", "fc_t", "fc_exp")
SLOW_HEADS = ("fc_t", "fc_exp")  # outputs that move keypoints directly (normalised units)


def init_for_training(model: FaceVid2Vid, blend_bias: float, head_scale: float = 0.01) -> None:
    """Start from (almost exactly) the repeat-the-first-frame baseline, and improve on it.

    * the pose/t/δ heads are scaled down: default init gives a few degrees and |δ| ≈ 0.3 that
      differ per frame, i.e. random flows. Near-constant heads give x_s ≈ x_d, so every candidate
      flow of the motion network is the identity and the warped source is the source.
    * the lite generator's blend mask starts at sigmoid(blend_bias) on that warped source, so the
      first output is ≈ the source image, not grey. conv_img predicts (3 + 1)·r² channels;
      pixel_shuffle takes output channel c from inputs c·r² … (c+1)·r² − 1.
    """
    with torch.no_grad():
        for name in HEAD_NAMES:
            head = getattr(model.head_pose, name)
            head.weight.mul_(head_scale)
            head.bias.mul_(head_scale)
        decoder = model.generator.decoder
        if decoder.out_channels == 4:
            r2 = decoder.shuffle**2
            decoder.conv_img.bias[3 * r2 : 4 * r2].fill_(blend_bias)


def parameter_groups(model: FaceVid2Vid, lr: float, head_lr_scale: float) -> list[dict]:
    """The t/δ heads read 32·be ≥ 1024 pooled post-ReLU features: Adam moves every weight by ≈ lr
    per step, so keypoints jump by up to ~lr·1024·|feature|; a smaller lr keeps them calm. The pose
    bins stay at the full lr: at 0.1× their near-uniform logits never left the mean pose."""
    heads = {id(p) for name in SLOW_HEADS for p in getattr(model.head_pose, name).parameters()}
    rest = [p for p in model.parameters() if id(p) not in heads]
    head_params = [p for p in model.parameters() if id(p) in heads]
    return [{"params": rest, "lr": lr}, {"params": head_params, "lr": lr * head_lr_scale}]


def random_views(batch: int, rng: np.random.Generator, max_angle: float, frontalise_share: float) -> torch.Tensor:
    """(batch, 3) free-view edits like the receiver's: one of yaw/pitch/roll set to U(±max_angle)
    (the others NaN: keep the estimate), or, for `frontalise_share` of them, all three 0."""
    views = np.full((batch, 3), np.nan, np.float32)
    for row in views:
        if rng.random() < frontalise_share:
            row[:] = 0
        else:
            row[rng.integers(3)] = rng.uniform(-max_angle, max_angle)
    return torch.from_numpy(views)


def random_affine(batch: int, max_rotation_deg: float, max_scale: float, max_shift: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """(batch, 2, 3) affine maps of normalised coordinates, output → input (as `F.affine_grid`)."""
    u = lambda: torch.rand(batch, generator=generator) * 2 - 1  # noqa: E731
    angle = u() * max_rotation_deg * torch.pi / 180
    scale = 1 + u() * max_scale
    cos, sin = angle.cos() * scale, angle.sin() * scale
    return torch.stack([torch.stack([cos, -sin, u() * max_shift], 1),
                        torch.stack([sin, cos, u() * max_shift], 1)], 1)


def apply_affine_image(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def apply_affine_points(points: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """points (B, K, 2) normalised (x, y) → theta · [p; 1] (B, K, 2)."""
    return torch.einsum("bij,bkj->bki", theta[:, :, :2], points) + theta[:, None, :, 2]
