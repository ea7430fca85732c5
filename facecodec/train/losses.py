"""Self-supervised losses of face-vid2vid (§3.3): reconstruction, equivariance, keypoint prior,
head pose, expression prior. Each returns a scalar tensor; weights are in `LossWeights`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..expression import LEFT_EYE, LIPS, RIGHT_EYE
from ..kinematics import bins_to_degrees, rotation_matrix

from .config import LossWeights
from .dense_flow import dense_flow_loss
from ..models.generator import depth_averaged_flow, warp_image
from .forward import ForwardOut, apply_affine_points
from ..perceptual import PerceptualLoss


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


def _flow_readout_error(deformation: torch.Tensor, at: torch.Tensor, expect: torch.Tensor) -> torch.Tensor:
    """Mean L1 between the depth-averaged flow read at points `at` (M, L, 2) and `expect` (M, L, 2),
    over points finite in both (NaN = no face); normalised units (1 px at 256² = 0.0078)."""
    valid = torch.isfinite(at).all(-1) & torch.isfinite(expect).all(-1)  # (M, L)
    if not valid.any():
        return deformation.new_zeros(())
    grid = torch.nan_to_num(at)[:, :, None, :]  # (M, L, 1, 2)
    read = F.grid_sample(depth_averaged_flow(deformation), grid, mode="bilinear", align_corners=True)
    read = read[..., 0].transpose(1, 2)  # (M, 2, L, 1) → (M, L, 2)
    return (read - expect).abs().sum(-1)[valid].mean()


def landmark_flow_loss(deformation: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """The flow at each driving landmark must read the source at the same landmark.

    deformation (B·N, D, h, w, 3); landmarks (B, 1 + N, L, ≥ 2) normalised (source first).
    """
    n = landmarks.shape[1] - 1
    src = landmarks[:, :1, :, :2].expand(-1, n, -1, -1).flatten(0, 1)  # (B·N, L, 2)
    return _flow_readout_error(deformation, landmarks[:, 1:, :, :2].flatten(0, 1), src)


def rotate_landmarks(points: torch.Tensor, from_angles: torch.Tensor, to_angles: torch.Tensor,
                     focal: float = 2.0) -> torch.Tensor:
    """Where a head's landmarks go in the picture when it turns from one pose to another.

    points (B, L, 3) normalised x, y in [-1, 1] and MediaPipe's relative depth z on the same scale;
    angles (B, 3) yaw, pitch, roll degrees in the `facecodec.landmarks` convention, which is the
    kinematics' R = Rx(pitch)·Ry(yaw)·Rz(roll) in camera axes (x right, y down, z away). The
    landmarks are lifted into a pinhole camera whose focal length is the image size (2 in these
    units, the camera `landmarks.head_pose` fits with), turned by R_to·R_fromᵀ about their centroid
    (the face stays where it was) and projected again; → (B, L, 2). An orthographic turn would read
    ~15 % short under that perspective fit.
    """
    r_from = rotation_matrix(*from_angles.unbind(1))
    r_to = rotation_matrix(*to_angles.unbind(1))
    z = points[..., 2:]
    lifted = torch.cat([points[..., :2] * (1 + z / focal), focal + z], dim=-1)  # (x, y, depth) · depth/focal
    finite = torch.isfinite(lifted)
    centre = torch.nan_to_num(lifted).sum(1, keepdim=True) / finite.sum(1, keepdim=True).clamp(min=1)
    turned = torch.einsum("bij,bkj->bki", r_to @ r_from.transpose(1, 2), lifted - centre) + centre
    return focal * turned[..., :2] / turned[..., 2:]


def freeview_flow_loss(view_deformation: torch.Tensor, source_landmarks: torch.Tensor,
                       source_pose: torch.Tensor, view_angles: torch.Tensor) -> torch.Tensor:
    """A free-view render must move the face as the 3-D-lifted landmarks say a real head turns.

    view_deformation (B, D, h, w, 3): the motion for the edit `view_angles` (B, 3; NaN = keep);
    source_landmarks (B, L, 3) normalised; source_pose (B, 3) the pseudo-label of the source, which
    the edit's kept angles take. The flow at each turned landmark must read the source landmark.
    """
    target_pose = torch.where(torch.isnan(view_angles), source_pose, view_angles)
    turned = rotate_landmarks(source_landmarks, source_pose, target_pose)
    return _flow_readout_error(view_deformation, turned, source_landmarks[..., :2])


def face_boxes(landmarks: torch.Tensor, margin: float = 1.15) -> tuple[torch.Tensor, torch.Tensor]:
    """Square boxes around faces: landmarks (F, L, ≥ 2) normalised → (centres (F, 2), half-sides (F,));
    a frame without landmarks (NaN) gets NaN."""
    xy = landmarks[..., :2]
    low = torch.where(torch.isnan(xy), torch.inf, xy).amin(1)
    high = torch.where(torch.isnan(xy), -torch.inf, xy).amax(1)
    half = ((high - low).amax(1) / 2 * margin).where(torch.isfinite(low).all(1), torch.nan)
    return (low + high) / 2, half


def crop(images: torch.Tensor, centres: torch.Tensor, half: torch.Tensor, size: int) -> torch.Tensor:
    """(F, 3, S, S) → (F, 3, size, size) squares of half-side `half` around `centres` (normalised)."""
    zero = torch.zeros_like(half)
    theta = torch.stack([torch.stack([half, zero, centres[:, 0]], 1), torch.stack([zero, half, centres[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [len(images), 3, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def face_crop_loss(perceptual: PerceptualLoss, generated: torch.Tensor, target: torch.Tensor,
                   landmarks: torch.Tensor, size: int = 176) -> torch.Tensor:
    """The perceptual loss + L1 on the face alone, cropped from the driving frame's landmarks at
    about its full resolution (a talking head's face box is ≈ 180 px of 256): the whole-image loss
    runs at ½ and ¼ scale, where the details that make a face someone's (eyes, lips, teeth) are a
    few pixels. landmarks (F, L, ≥ 2) of `target`."""
    centres, half = face_boxes(landmarks)
    ok = torch.isfinite(half)
    if not ok.any():
        return generated.new_zeros(())
    g, t = (crop(x[ok], centres[ok], half[ok], size) for x in (generated, target))
    return perceptual.at_scale(g, t, 1.0) + (g - t).abs().mean()


REGIONS = (LIPS, LEFT_EYE, RIGHT_EYE)
REGION_MARGIN = (0.7, 1.0, 1.0)  # half box side per half extent of the region's landmarks


def region_boxes(landmarks: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(F, L, ≥ 2) normalised → per region (mouth, eyes): (centres (F, 2), half sides (F,)), NaN
    where a face is missing."""
    boxes = []
    for region, margin in zip(REGIONS, REGION_MARGIN):
        points = landmarks[:, list(region), :2]
        low, high = points.amin(dim=1), points.amax(dim=1)
        boxes.append(((low + high) / 2, (high - low).amax(dim=1) / 2 * (1 + margin)))
    return boxes


def expression_region_loss(perceptual: PerceptualLoss, generated: torch.Tensor, target: torch.Tensor,
                           landmarks: torch.Tensor,
                           size: int = 64) -> torch.Tensor:
    """Perceptual + L1 on the mouth and both eyes, each cropped from the driving frame's landmarks
    (F, L, ≥ 2) to size² (about the crop's own resolution: the mouth is ≈ 60 px wide at 256²)."""
    total = generated.new_zeros(())
    for centres, half in region_boxes(landmarks):
        ok = torch.isfinite(half) & (half > 0)
        if ok.any():
            g, t = (crop(x[ok], centres[ok], half[ok], size) for x in (generated, target))
            total = total + perceptual.at_scale(g, t, 1.0) + (g - t).abs().mean()
    return total / len(REGIONS)


def decoder_loss(perceptual: PerceptualLoss, decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The lite decoder's own image (before the blend with the warped source) against the driving frame.

    Why: the blend starts on the warped source (≈ 0.95), so the decoder's gradients are scaled by
    1 − blend and it never learns to draw; where the blend later leans on it (an opening mouth, eyes)
    its untrained pixel-shuffle output shows as coloured dots. Supervising it alone teaches it to
    draw the whole face, so the blend has something to use where moving pixels cannot explain a frame.
    """
    return perceptual(decoded, target) + (decoded - target).abs().mean()


class TrainingLoss(torch.nn.Module):
    """All terms; `forward` → (total, {name: value}) with the unweighted values for the log."""

    def __init__(self, weights: LossWeights):
        super().__init__()
        self.w = weights
        self.perceptual = PerceptualLoss(weights.perceptual_scales)

    def forward(self, *args, **kwargs) -> tuple[torch.Tensor, dict[str, float]]:
        return self.weighted(self.terms(*args, **kwargs))

    def terms(self, out: ForwardOut, sources: torch.Tensor, drivings: torch.Tensor,
              theta: torch.Tensor | None, pose_labels: torch.Tensor | None,
              landmarks: torch.Tensor | None = None,
              view_angles: torch.Tensor | None = None,
              flow_targets: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Every loss term that applies to this batch, unweighted. `flow_targets`: (target, weight) of
        `dense_flow.dense_flow_targets` for the dense-flow term."""
        w, n = self.w, drivings.shape[1]
        target = drivings.flatten(0, 1)
        small = F.interpolate(target, size=64, mode="bilinear", antialias=True)
        terms = {
            "perceptual": self.perceptual(out.generated, target),
            "pixel_l1": (out.generated - target).abs().mean(),
            "warp_l1": (warp_image(sources.repeat_interleave(n, 0), out.deformation, 64) - small).abs().mean(),
            "keypoint_prior": keypoint_prior(out.kp_driving, w.keypoint_min_distance, w.keypoint_depth),
            "expression": out.expression.abs().mean(),
        }
        if w.decoder and out.decoded is not None:
            terms["decoder"] = decoder_loss(self.perceptual, out.decoded, target)
        if flow_targets is not None:
            terms["dense_flow"] = dense_flow_loss(out.deformation, *flow_targets)
        if theta is not None and out.kp_transformed is not None:
            terms["equivariance"] = equivariance_loss(out.kp_driving, out.kp_transformed, theta)
        if pose_labels is not None:
            terms.update(self.pose_terms(out.pose_logits[: len(pose_labels)], pose_labels))
        if landmarks is not None:
            terms["landmark_flow"] = landmark_flow_loss(out.deformation, landmarks)
            driving_landmarks = landmarks[:, 1:].flatten(0, 1)
            if w.face_crop:
                terms["face_crop"] = face_crop_loss(self.perceptual, out.generated, target, driving_landmarks)
            if w.expression_region:
                terms["expression_region"] = expression_region_loss(self.perceptual, out.generated, target,
                                                                    driving_landmarks)
        if out.view_deformation is not None and landmarks is not None and pose_labels is not None:
            b = landmarks.shape[0]
            terms["freeview_flow"] = freeview_flow_loss(out.view_deformation, landmarks[:, 0], pose_labels[:b],
                                                        view_angles)
        return terms

    def pose_terms(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """logits (F, 3, bins) yaw/pitch/roll, labels (F, 3) degrees → the two head-pose terms."""
        degrees = torch.stack([bins_to_degrees(logits[:, i]) for i in range(3)], dim=1)
        return {"head_pose": head_pose_loss(degrees, labels), "head_pose_bins": head_pose_bin_loss(logits, labels)}

    def weighted(self, terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """(Σ weight·term, unweighted values for the log); names ending in `_frames` take the
        weight of the name without it (the same loss on the extra pose frames)."""
        total = sum(getattr(self.w, name.removesuffix("_frames")) * value for name, value in terms.items())
        values = torch.stack([v.detach().float() for v in terms.values()]).tolist()  # one device sync, not one per term
        return total, dict(zip(terms, values))
