"""Bit rate on synthetic talking-head motion (K = 15, 25 fps): defaults and rate control."""

import pytest

from facecodec.bitstream import Encoder, StreamHeader
from facecodec.bitstream.quant import QSCALE_MAX
from facecodec.bitstream.synthetic import random_walk_motion


def _encode(header, motions, **kwargs) -> Encoder:
    encoder = Encoder(header, **kwargs)
    for n, motion in enumerate(motions):
        encoder.encode(motion, round(n * header.frame_ms))
    return encoder


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_settings_stay_under_8_kbps_without_keyframes(seed):
    encoder = _encode(StreamHeader(), random_walk_motion(500, 15, seed=seed))
    kbps = encoder.stats.kbps(keyframes=False)
    assert 3.0 < kbps <= 5.5  # measured ≈ 4.4 (1.0 of it packet framing; legacy packets: ≈ 6.3, 2.4 of framing)
    assert encoder.stats.intra_frames == 20 and encoder.stats.predicted_frames == 480


def test_keyframe_bytes_count_in_the_rate_with_keyframes(motions, smooth_image):
    encoder = Encoder(StreamHeader())
    encoder.request_keyframe(smooth_image)
    for n, motion in enumerate(motions[:250]):
        encoder.encode(motion, 40 * n)
    stats = encoder.stats
    assert stats.kbps() - stats.kbps(keyframes=False) == pytest.approx(8 * stats.keyframe_bytes / 10.0 / 1000)


@pytest.mark.parametrize("target_kbps", [3.0, 4.5, 6.5])
def test_target_kbps_lands_within_15_percent(motions, target_kbps):
    encoder = _encode(StreamHeader(), motions, target_kbps=target_kbps)
    assert encoder.stats.kbps(keyframes=False) == pytest.approx(target_kbps, rel=0.15)
    assert not encoder.rate.saturated


def test_infeasible_target_saturates_at_the_coarsest_scale(motions):
    encoder = _encode(StreamHeader(), motions[:200], target_kbps=1.5)
    assert encoder.rate.saturated and encoder.rate.qscale == QSCALE_MAX
    assert 1.5 < encoder.stats.kbps(keyframes=False) < 2.5  # the floor: 5 bytes of framing + a few of payload

