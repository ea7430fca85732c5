"""A tiny architecture (64² images) so training-step tests take a second, not a minute."""

from __future__ import annotations

import pytest
import torch

from facecodec.models import (
    AppearanceConfig,
    GeneratorConfig,
    HeadPoseConfig,
    KeypointDetectorConfig,
    ModelConfig,
    MotionFieldConfig,
)


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    return ModelConfig(
        name="tiny",
        image_size=64,
        num_kp=5,
        appearance=AppearanceConfig(block_expansion=8, num_down_blocks=2, max_features=16,
                                    feature_channels=4, feature_depth=4, num_resblocks=1),
        keypoints=KeypointDetectorConfig(num_kp=5, block_expansion=8, max_features=32, num_blocks=2,
                                         depth=4, temperature=0.1, scale_factor=0.5),
        head_pose=HeadPoseConfig(num_kp=5, block_expansion=8, num_bins=66, bottlenecks=(1, 1, 1, 1)),
        motion=MotionFieldConfig(num_kp=5, feature_channels=4, feature_depth=4, block_expansion=4,
                                 max_features=16, num_blocks=2, compress=2, mask_kernel=3, occlusion_kernel=3,
                                 output_conv=False, spatial_scale=1),
        generator=GeneratorConfig(feature_channels=4, feature_depth=4, warp_channels=8, decoder_channels=16,
                                  num_middle_blocks=1, up_channels=(), spade_hidden=8, feature_size=16,
                                  image_size=64, source_skip=True),
    )


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a shared, loaded 2-core machine two threads stall on each other (10×)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
