"""facecodec operating points: real bitstream round trip, rate accounting, quantisation-only check."""

import pytest
import torch

from facecodec.bitstream import decode_stream
from facecodec.codec.pipeline import TorchNetworks
from facecodec.codec.sender import stream_header
from facecodec.models import FaceVid2Vid
from facecodec.presets import get_preset
from facecodec.rd.neural import (DEFAULT_SETTING, NeuralSetting, quantisation_effect, run_setting, sender_motion,
                                 transmit)
from facecodec.rd.quality import LpipsPlan


@pytest.fixture(scope="module")
def networks():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is fastest on a shared machine
    torch.manual_seed(0)
    yield TorchNetworks(FaceVid2Vid(get_preset("lite")).eval())
    torch.set_num_threads(threads)


def test_the_point_rate_is_the_stream_bytes_over_the_clip(networks, sample_frames):
    frames, fps = sample_frames[:10], 25.0
    header = stream_header("lite", 15, frames.shape[1], fps)
    motion = sender_motion(networks, frames)
    setting = NeuralSetting(qscale=32, keyframe_quality=75)
    enc = run_setting(networks, frames, fps, motion, header, setting)
    data, decoded = transmit(header, frames, motion, setting)
    assert enc.stream_bytes == len(data) and enc.seconds == pytest.approx(0.4)
    assert enc.kbps == pytest.approx(len(data) * 8 / 0.4 / 1000)
    assert enc.motion_kbps == pytest.approx(decode_stream(data).stats.kbps(keyframes=False))
    assert enc.header_bytes + enc.keyframe_bytes + enc.motion_bytes == enc.stream_bytes
    assert enc.frames.shape == frames.shape and enc.keyframe.shape == frames[0].shape
    assert enc.call_kbps(1e9) == pytest.approx(enc.motion_kbps)


def test_quantisation_effect_measures_only_the_keypoint_quantisation(networks, sample_frames):
    effect = quantisation_effect(networks, sample_frames[:6], 25.0, preset="lite", num_kp=15,
                                 plan=LpipsPlan((("alex", 3),)))
    assert effect.setting == DEFAULT_SETTING and effect.frames == 6
    assert 0 <= effect.quality["lpips_alex"] < 0.05  # same source, nearly the same keypoints
    assert effect.quality["psnr"] > 30 and 0 < effect.motion_kbps < effect.kbps
