"""The one in-process receiver (`codec.receive`): decoded packets → session requests → frames, with
the source swapped at each keyframe, exactly the rule of the server's call session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecodec.bitstream import DecodedFrame
from facecodec.codec.pipeline import Receiver, TorchNetworks, encode_frames, images_to_batch
from facecodec.codec.receiver import frame_requests, receive
from facecodec.models import FaceVid2Vid
from facecodec.presets import get_preset


@pytest.fixture(scope="module")
def networks():
    torch.manual_seed(0)
    return TorchNetworks(FaceVid2Vid(get_preset("lite")).eval())


def _decoded(frames, motion, keyframes):
    return [DecodedFrame(n, 40 * n, m, False, frames[n] if n in keyframes else None)
            for n, m in enumerate(motion.to_motions())]


def test_receive_swaps_the_source_at_each_keyframe(networks, sample_frames):
    frames = sample_frames[:6]
    motion = encode_frames(networks, images_to_batch(frames))
    out = receive(networks, _decoded(frames, motion, {0, 4}))
    for start, end in ((0, 4), (4, 6)):
        receiver = Receiver(networks)
        receiver.set_source(images_to_batch(frames[start][None]), motion[start])
        expected = receiver.render(receiver.driving_keypoints(motion[start:end]))
        np.testing.assert_allclose(out[start:end], expected, atol=1e-5)


def test_frames_before_the_first_keyframe_are_skipped_and_a_stream_needs_one(networks, sample_frames):
    frames = sample_frames[:4]
    motion = encode_frames(networks, images_to_batch(frames))
    requests = list(frame_requests(_decoded(frames, motion, {1}), session_id=7))
    assert [r.start for r in requests] == [True, False, False] and requests[-1].end
    assert requests[0].source_image is not None and all(r.session_id == 7 for r in requests)
    with pytest.raises(ValueError, match="no keyframe"):
        receive(networks, _decoded(frames, motion, set()))


def test_a_stream_the_networks_cannot_decode_is_refused_by_name(tmp_path, caplog):
    """A header with 16 keypoints, a 300² picture, an unknown preset or basis: one clear line, exit 2."""
    import logging

    from facecodec.bitstream import StreamHeader, write_stream
    from facecodec.cli import main
    from facecodec.codec.pipeline import check_stream

    cases = {"num_kp": StreamHeader(num_kp=16), "height": StreamHeader(height=300, width=300),
             "unknown preset": StreamHeader(preset="../../etc"),
             "expression basis": StreamHeader(face_basis=7, num_face=16)}
    for needle, header in cases.items():
        path = tmp_path / "bad.fcdc"
        write_stream(path, header, [])
        with caplog.at_level(logging.ERROR):
            caplog.clear()
            assert main(["decode", str(path), "-o", str(tmp_path / "x.mp4")]) == 2
        assert needle in caplog.text, (needle, caplog.text)
    with pytest.raises(ValueError, match="num_kp is 16"):
        check_stream(StreamHeader(num_kp=16), preset="lite", num_kp=15, image_size=256)
