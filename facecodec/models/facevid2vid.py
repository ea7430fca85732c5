"""The whole model (five networks) and the three groups Triton serves.

| served group         | inputs                                          | outputs                          |
| -------------------- | ----------------------------------------------- | -------------------------------- |
| `MotionEncoder`      | frame                                           | rotation (yaw, pitch, roll °), t, δ |
| `AppearanceEncoder`  | source image                                    | f_s, canonical keypoints x_c     |
| `WarpDecoder`        | source image, f_s, source and driving keypoints | frame                            |

The groups split the model only at narrow tensors (keypoints, poses); f_s crosses once per call.
Tensor names and shapes of the groups are in `facecodec.io_spec`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import torch
from torch import nn

from ..expression import flow_size
from ..kinematics import bins_to_degrees
from .appearance import AppearanceConfig, AppearanceFeatureExtractor
from .generator import Generator, GeneratorConfig
from .head_pose import HeadPoseConfig, HeadPoseEstimator
from .keypoint_detector import CanonicalKeypointDetector, KeypointDetectorConfig
from .motion_field import MotionFieldConfig, MotionFieldEstimator


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of all five networks; versioned with the weights (stored in their metadata)."""

    name: str
    image_size: int
    num_kp: int
    appearance: AppearanceConfig
    keypoints: KeypointDetectorConfig
    head_pose: HeadPoseConfig
    motion: MotionFieldConfig
    generator: GeneratorConfig

    @property
    def expression_flow_size(self) -> int:
        """E of the expression flow (E×E over the image, `facecodec.expression.flow_size`)."""
        return flow_size(self.image_size)

    @property
    def feature_shape(self) -> tuple[int, int, int, int]:
        """(C, D, H, W) of f_s."""
        a, side = self.appearance, self.image_size // 2**self.appearance.num_down_blocks
        return (a.feature_channels, a.feature_depth, side, side)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        raw = json.loads(text)
        parts = {
            "appearance": AppearanceConfig,
            "keypoints": KeypointDetectorConfig,
            "head_pose": HeadPoseConfig,
            "motion": MotionFieldConfig,
            "generator": GeneratorConfig,
        }
        for key, kind in parts.items():
            fields = {k: tuple(v) if isinstance(v, list) else v for k, v in raw[key].items()}
            raw[key] = kind(**fields)
        return cls(**raw)


class FaceVid2Vid(nn.Module):
    """Container of the five networks; state-dict prefixes are the attribute names."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.appearance = AppearanceFeatureExtractor(cfg.appearance)
        self.keypoints = CanonicalKeypointDetector(cfg.keypoints)
        self.head_pose = HeadPoseEstimator(cfg.head_pose)
        self.motion = MotionFieldEstimator(cfg.motion)
        self.generator = Generator(cfg.generator)

    def motion_encoder(self) -> "MotionEncoder":
        return MotionEncoder(self.head_pose)

    def appearance_encoder(self) -> "AppearanceEncoder":
        return AppearanceEncoder(self.appearance, self.keypoints)

    def warp_decoder(self) -> "WarpDecoder":
        return WarpDecoder(self.motion, self.generator)


class MotionEncoder(nn.Module):
    """frame (B, 3, S, S) in [0, 1] → rotation (B, 3) = (yaw, pitch, roll) in degrees,
    translation t (B, 3), expression δ (B, K, 3)."""

    def __init__(self, head_pose: HeadPoseEstimator):
        super().__init__()
        self.head_pose = head_pose

    def forward(self, image: torch.Tensor):
        yaw, pitch, roll, t, exp = self.head_pose(image)
        rotation = torch.stack([bins_to_degrees(yaw), bins_to_degrees(pitch), bins_to_degrees(roll)], dim=1)
        return rotation, t, exp


class AppearanceEncoder(nn.Module):
    """source (B, 3, S, S) in [0, 1] → f_s (B, C, D, H, W), x_c (B, K, 3)."""

    def __init__(self, appearance: AppearanceFeatureExtractor, keypoints: CanonicalKeypointDetector):
        super().__init__()
        self.appearance = appearance
        self.keypoints = keypoints

    def forward(self, image: torch.Tensor):
        return self.appearance(image), self.keypoints(image)


class WarpDecoder(nn.Module):
    """source (B, 3, S, S), f_s (B, C, D, H, W), x_s (B, K, 3), x_d (B, K, 3), expression flow
    (B, 3, E, E) (`facecodec.expression`; None or zeros: the source's expression) → frame (B, 3, S, S)."""

    def __init__(self, motion: MotionFieldEstimator, generator: Generator):
        super().__init__()
        self.motion = motion
        self.generator = generator

    def forward(self, source_image, features, kp_source, kp_driving, expression_flow=None):
        deformation, occlusion, _ = self.motion(features, kp_source, kp_driving)
        return self.generator(features, deformation, occlusion, source_image, expression_flow)
