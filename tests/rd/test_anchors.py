"""Conventional anchors through ffmpeg on real frames."""

import numpy as np
import pytest

from facecodec.eval.metrics import psnr
from facecodec.rd.anchors import encode_anchor, packet_sizes


def test_a_higher_crf_costs_fewer_bits_and_loses_quality(sample_frames):
    frames = sample_frames[:10]
    fine, coarse = (encode_anchor(frames, 25.0, "x264-veryslow", crf) for crf in (30, 45))
    assert coarse.payload_bytes < fine.payload_bytes and coarse.kbps < fine.kbps
    assert psnr(frames, coarse.frames).mean() < psnr(frames, fine.frames).mean()
    for enc in (fine, coarse):
        assert enc.frames.shape == frames.shape and enc.seconds == pytest.approx(0.4)
        assert enc.first_packet_bytes < enc.payload_bytes < enc.file_bytes  # the MP4 adds its container
        assert enc.kbps == pytest.approx(8 * enc.payload_bytes / 0.4 / 1000)


def test_packet_sizes_add_up_to_the_coded_stream(sample_frames, tmp_path):
    from facecodec.media import write_video

    path = write_video(tmp_path / "clip.mp4", sample_frames[:5], fps=25.0, crf=30)
    sizes = packet_sizes(path)
    assert len(sizes) == 5 and all(s > 0 for s in sizes) and sum(sizes) < path.stat().st_size


def test_an_unknown_anchor_is_a_clear_error(sample_frames):
    with pytest.raises(ValueError, match="unknown anchor codec"):
        encode_anchor(sample_frames[:2], 25.0, "mpeg2", 30)
    assert np.asarray(sample_frames).dtype == np.uint8
