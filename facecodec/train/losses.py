"""Self-supervised losses of face-vid2vid (§3.3): reconstruction, equivariance, keypoint prior,
head pose, expression prior. Each returns a scalar tensor; weights are in `LossWeights`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import LossWeights
from .forward import ForwardOut, apply_affine_points, source_flow, warp_source
from .perceptual import PerceptualLoss


def equivariance_loss(kp_driving: torch.Tensor, kp_transformed: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Keypoints of an affine-warped frame, mapped back, must land on the frame's own (x, y)."""
    return (apply_affine_points(kp_transformed[..., :2], theta) - kp_driving[..., :2]).abs().mean()


def keypoint_prior(kp: torch.Tensor, min_sq_distance: float, depth: float) -> torch.Tensor:
    """Spread keypoints out (hinge on squared pairwise distance) and keep their mean depth at z_t."""
    dist = (kp[:, :, None, :] - kp[:, None, :, :]).pow(2).sum(-1)  # (B, K, K)
    off_diagonal = ~torch.eye(kp.shape[1], dtype=torch.bool, device=kp.device)
    hinge = F.relu(min_sq_distance - dist)[:, off_diagonal].sum(-1).mean()
    return hinge + (kp[..., 2].mean(-1) - depth).abs().mean()


def head_pose_loss(rotation: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L1 in degrees (summed over yaw, pitch, roll) on frames with a label (NaN rows are skipped)."""
    valid = torch.isfinite(labels).all(dim=1)
    if not valid.any():
        return rotation.new_zeros(())
    return (rotation[valid] - labels[valid]).abs().sum(dim=1).mean()


def head_pose_bin_loss(logits: torch.Tensor, labels: torch.Tensor, bin_degrees: float = 3.0,
                       first_bin: float = -99.0) -> torch.Tensor:
    """Cross-entropy of the yaw/pitch/roll bins (B, 3, bins) against the labels' bins (HopeNet's
    classification term): the L1 on the softmax expectation alone barely moves near-uniform logits."""
    valid = torch.isfinite(labels).all(dim=1)
    if not valid.any():
        return logits.new_zeros(())
    bins = ((labels[valid] - first_bin) / bin_degrees).round().clamp(0, logits.shape[-1] - 1).long()
    return F.cross_entropy(logits[valid].flatten(0, 1), bins.flatten())


def landmark_flow_loss(deformation: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """The flow at each driving landmark must read the source at the same landmark.

    deformation (B·N, D, h, w, 3); landmarks (B, 1 + N, L, 2) in [-1, 1] (source first, NaN = no
    face). L1 in normalised units (1 px at 256² = 0.0078), over landmarks found in both frames.
    """
    b, n1 = landmarks.shape[:2]
    src = landmarks[:, :1].expand(-1, n1 - 1, -1, -1).flatten(0, 1)  # (B·N, L, 2)
    drv = landmarks[:, 1:].flatten(0, 1)
    valid = torch.isfinite(src).all(-1) & torch.isfinite(drv).all(-1)  # (B·N, L)
    if not valid.any():
        return deformation.new_zeros(())
    grid = torch.nan_to_num(drv)[:, :, None, :]  # (B·N, L, 1, 2)
    read = F.grid_sample(source_flow(deformation), grid, mode="bilinear", align_corners=True)  # (B·N, 2, L, 1)
    read = read[..., 0].transpose(1, 2)  # (B·N, L, 2)
    return (read - src).abs().sum(-1)[valid].mean()


class TrainingLoss(torch.nn.Module):
    """All terms; `forward` → (total, {name: value}) with the unweighted values for the log."""

    def __init__(self, weights: LossWeights):
        super().__init__()
        self.w = weights
        self.perceptual = PerceptualLoss(weights.perceptual_scales)

    def forward(self, out: ForwardOut, sources: torch.Tensor, drivings: torch.Tensor,
                theta: torch.Tensor | None, pose_labels: torch.Tensor | None,
                landmarks: torch.Tensor | None = None):
        w, n = self.w, drivings.shape[1]
        target = drivings.flatten(0, 1)
        small = F.interpolate(target, size=64, mode="bilinear", antialias=True)
        terms = {
            "perceptual": self.perceptual(out.generated, target),
            "pixel_l1": (out.generated - target).abs().mean(),
            "warp_l1": (warp_source(sources.repeat_interleave(n, 0), out.deformation, 64) - small).abs().mean(),
            "keypoint_prior": keypoint_prior(out.kp_driving, w.keypoint_min_distance, w.keypoint_depth),
            "expression": out.expression.abs().mean(),
        }
        if theta is not None and out.kp_transformed is not None:
            terms["equivariance"] = equivariance_loss(out.kp_driving, out.kp_transformed, theta)
        if pose_labels is not None:
            terms["head_pose"] = head_pose_loss(out.rotation[: len(pose_labels)], pose_labels)
            terms["head_pose_bins"] = head_pose_bin_loss(out.pose_logits[: len(pose_labels)], pose_labels)
        if landmarks is not None:
            terms["landmark_flow"] = landmark_flow_loss(out.deformation, landmarks)
        total = sum(getattr(w, name) * value for name, value in terms.items())
        return total, {k: float(v.detach()) for k, v in terms.items()}
