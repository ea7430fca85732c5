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
