"""Typed training configuration: loss weights and run settings (architecture lives in the preset)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LossWeights:
    """Weights of the self-supervised losses (face-vid2vid §3.3, sized for a CPU budget).

    The paper also trains a multi-scale patch GAN with feature matching; on two CPU cores its
    cost (a second network, twice the generator passes) buys less than more steps, so it is off.
    """

    perceptual: float = 1.0  # per scale, normalised AlexNet (stLPIPS) features
    perceptual_scales: tuple[float, ...] = (0.5, 0.25)  # of the 256² image; full res costs 2× the model
    pixel_l1: float = 1.0  # 256², keeps colours right where features are blind
    warp_l1: float = 1.0  # the flow-warped source alone vs driving at 64²: a direct signal for motion
    equivariance: float = 10.0  # keypoints follow a random affine warp of the driving frame (x, y)
    keypoint_prior: float = 1.0  # pairwise-distance hinge (D_t) + mean depth target (z_t)
    keypoint_min_distance: float = 0.1  # D_t (squared distance)
    keypoint_depth: float = 0.33  # z_t
    head_pose: float = 0.05  # per degree of |yaw|+|pitch|+|roll| error vs the landmark pseudo-labels
    head_pose_bins: float = 0.1  # cross-entropy of the 3° pose bins vs the same labels
    landmark_flow: float = 10.0  # flow at driving landmarks → source landmarks (L1, normalised units)
    freeview_flow: float = 10.0  # free-view edits: flow at 3-D-turned landmarks → source landmarks
    face_crop: float = 0.0  # perceptual + L1 on the face box at ≈ full resolution (`losses.face_crop_loss`)
    decoder: float = 0.0  # the decoder's own image before the blend: L1 + perceptual (`losses.decoder_loss`)
    dense_flow: float = 0.0  # flow vs DIS optical flow on the driving face (`dense_flow.dense_flow_loss`)
    expression: float = 1.0  # L1 on δ: expression is a small residual of the rigid motion
    expression_region: float = 0.0  # perceptual + L1 on mouth and eye crops (`expression.expression_region_loss`)


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "lite"
    sources_per_batch: int = 2
    drivings_per_source: int = 4  # the source side (f_s, x_c) is computed once per group
    lr: float = 5e-4  # a CPU budget is a few hundred steps: higher than the paper's 2e-4
    head_lr_scale: float = 0.3  # t/δ output layers (`forward.parameter_groups`)
    warmup_steps: int = 50  # linear lr ramp at the start of a run (fresh optimiser)
    betas: tuple[float, float] = (0.5, 0.999)
    grad_clip: float = 1.0
    frame_stride: int = 2  # cache every 2nd frame (12.5 fps): neighbours are near-duplicates
    blend_init_bias: float = 3.0  # start with the blend mask ≈ 0.95 on the warped source (≈ the baseline)
    pose_frames_per_step: int = 16  # extra single frames from as many clips, for the pose terms only
    pose_balance: float = 0.0  # flatten the |yaw| histogram of drawn frames (`data.yaw_balance_weights`)
    view_max_angle: float = 35.0  # free-view edits in training: one angle in ±this (served range ±30°)
    view_frontalise_share: float = 0.2
    equivariance_max_rotation: float = 10.0  # degrees
    equivariance_max_scale: float = 0.1
    equivariance_max_shift: float = 0.1  # normalised coordinates
    checkpoint_minutes: float = 4.0
    sample_every: int = 25
    log_every: int = 5
    validate_every: int = 50
    validation_pairs: int = 32
    seed: int = 0
    expression_channel: bool = False  # render with the expression channel's flow (`train.expression`)
    prefetch: int = 0  # steps prepared ahead on a thread (`loop.Prefetcher`); `--prefetch`, 2 on a GPU
    threads: int = 1  # see `--threads`: on a loaded 2-core machine 2 threads stall on each other
    losses: LossWeights = field(default_factory=LossWeights)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)
