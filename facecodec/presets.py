"""Model presets.

* `vox256`: the public face-vid2vid re-implementation's `config/vox-256.yaml` (K = 15); loads its
  checkpoint strictly (`facecodec.checkpoint`). ≈ 609 GMAC per frame.
* `lite`: the same code, narrowed for real time on two CPU cores at 256²: f_s is 16×8×64×64,
  motion is estimated at 32², the decoder works at 64² and pixel-shuffles to 256², and the
  flow-warped source image is blended in for sharpness (see `models.generator`).
"""

from __future__ import annotations

from .models import (
    AppearanceConfig,
    GeneratorConfig,
    HeadPoseConfig,
    KeypointDetectorConfig,
    ModelConfig,
    MotionFieldConfig,
)

VOX256 = ModelConfig(
    name="vox256",
    image_size=256,
    num_kp=15,
    appearance=AppearanceConfig(block_expansion=64, num_down_blocks=2, max_features=512,
                                feature_channels=32, feature_depth=16, num_resblocks=6),
    keypoints=KeypointDetectorConfig(num_kp=15, block_expansion=32, max_features=1024, num_blocks=5,
                                     depth=16, temperature=0.1, scale_factor=0.25),
    head_pose=HeadPoseConfig(num_kp=15, block_expansion=64, num_bins=66, bottlenecks=(3, 3, 5, 2)),
    motion=MotionFieldConfig(num_kp=15, feature_channels=32, feature_depth=16, block_expansion=32,
                             max_features=1024, num_blocks=5, compress=4),
    generator=GeneratorConfig(feature_channels=32, feature_depth=16, warp_channels=256, decoder_channels=512,
                              num_middle_blocks=6, up_channels=(256, 64), spade_hidden=128),
)

LITE = ModelConfig(
    name="lite",
    image_size=256,
    num_kp=15,
    appearance=AppearanceConfig(block_expansion=16, num_down_blocks=2, max_features=64,
                                feature_channels=16, feature_depth=8, num_resblocks=2),
    keypoints=KeypointDetectorConfig(num_kp=15, block_expansion=16, max_features=256, num_blocks=4,
                                     depth=8, temperature=0.1, scale_factor=0.25),
    head_pose=HeadPoseConfig(num_kp=15, block_expansion=32, num_bins=66, bottlenecks=(1, 1, 1, 1),
                             input_scale=0.5),
    motion=MotionFieldConfig(num_kp=15, feature_channels=16, feature_depth=8, block_expansion=8,
                             max_features=64, num_blocks=3, compress=2, mask_kernel=3, occlusion_kernel=3,
                             output_conv=False, spatial_scale=2),
    generator=GeneratorConfig(feature_channels=16, feature_depth=8, warp_channels=32, decoder_channels=64,
                              num_middle_blocks=1, up_channels=(), spade_hidden=32, source_skip=True),
)

PRESETS: dict[str, ModelConfig] = {c.name: c for c in (VOX256, LITE)}


def get_preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
