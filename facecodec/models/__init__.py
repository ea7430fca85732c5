"""The face-vid2vid networks, one module each, and the three served groups."""

from .appearance import AppearanceConfig, AppearanceFeatureExtractor
from .generator import Generator, GeneratorConfig
from .head_pose import HeadPoseConfig, HeadPoseEstimator
from .keypoint_detector import CanonicalKeypointDetector, KeypointDetectorConfig
from .motion_field import MotionFieldConfig, MotionFieldEstimator
from .facevid2vid import AppearanceEncoder, FaceVid2Vid, ModelConfig, MotionEncoder, WarpDecoder

__all__ = [
    "AppearanceConfig",
    "AppearanceEncoder",
    "AppearanceFeatureExtractor",
    "CanonicalKeypointDetector",
    "FaceVid2Vid",
    "Generator",
    "GeneratorConfig",
    "HeadPoseConfig",
    "HeadPoseEstimator",
    "KeypointDetectorConfig",
    "ModelConfig",
    "MotionEncoder",
    "MotionFieldConfig",
    "MotionFieldEstimator",
    "WarpDecoder",
]
