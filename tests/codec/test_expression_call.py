"""The expression channel through the one sender and the one receiver: the stream carries the codes
and the source face, the receiver (and the Triton session's requests) draw them."""

from __future__ import annotations

import numpy as np
import pytest

from facecodec.bitstream import decode_stream, stream_bytes
from facecodec.codec.pipeline import MotionBatch, Receiver, TorchNetworks, images_to_batch, shipped_basis
from facecodec.codec.receiver import frame_requests, receive
from facecodec.codec.sender import Sender, stream_header
from facecodec.codec.session import FrameRequest
from facecodec.eval.metrics import mouth_opening
from facecodec.weights import build_model


@pytest.fixture(scope="module")
def lite():
    return TorchNetworks(build_model("lite"))


@pytest.fixture(scope="session")
def expression(expression_sender):
    return expression_sender


@pytest.fixture(scope="module")
def clip(sample_frames, expression):
    """The source and the frames where the sample's speaker opens the mouth widest and least."""
    from facecodec.landmarks import FaceLandmarker

    with FaceLandmarker() as landmarker:
        opening = mouth_opening(landmarker.detect(sample_frames[:60]))
    order = np.argsort(opening)
    return sample_frames[[int(order[0]), int(order[-1]), int(order[1])]]  # closed source, open, closed


def test_the_stream_carries_codes_and_face_and_the_receiver_draws_them(lite, expression, clip):
    header = stream_header("lite", 15, 256, 25.0, expression=expression)
    assert header.num_face == shipped_basis().size and header.face_basis == shipped_basis().id
    stream = decode_stream(stream_bytes(header, Sender(lite, header, expression=expression).send(clip)))
    first = stream.frames[0]
    assert first.face is not None and first.motion.face.shape == (header.num_face,)
    codes = np.stack([f.motion.face for f in stream.frames])
    assert np.abs(codes[1] - codes[0]).max() > 5 * np.abs(codes[2] - codes[0]).max()  # the open mouth moved
    drawn = receive(lite, stream.frames)
    plain = receive(lite, [f.__class__(f.seq, f.timestamp_ms, f.motion, f.concealed, f.keyframe, None)
                           for f in stream.frames])  # the same stream without the source's face
    mouth = (slice(None), slice(None), slice(150, 215), slice(85, 170))
    moved = np.abs(drawn - plain)
    assert moved[1][mouth[1:]].mean() > 4 * moved[2][mouth[1:]].mean()  # drawn where the mouth opened
    assert moved[0].max() < 1e-6  # the source frame: its own expression
    # the same frames as the receiver's own render with the flows
    receiver = Receiver(lite)
    motion = MotionBatch.from_motions([f.motion for f in stream.frames])
    receiver.set_source(images_to_batch(first.keyframe[None]), motion[0], first.face)
    expected = receiver.render(receiver.driving_keypoints(motion), receiver.expression_flow(motion))
    np.testing.assert_allclose(drawn, expected, atol=1e-5)


def test_session_requests_carry_the_face_as_tensors(lite, expression, clip):
    header = stream_header("lite", 15, 256, 25.0, expression=expression)
    frames = decode_stream(stream_bytes(header, Sender(lite, header, expression=expression).send(clip))).frames
    for request in frame_requests(frames, session_id=7):
        tensors = request.to_tensors()
        back = FrameRequest.from_tensors({**tensors, "CORRID": np.array([7]), "START": np.array([request.start])})
        np.testing.assert_array_equal(back.motion.face, request.motion.face)
        if request.start:
            assert {"source_face_points", "source_face_map", "source_face_code"} <= set(tensors)
            np.testing.assert_array_equal(back.source_face.points, request.source_face.points)
            np.testing.assert_array_equal(back.source_face.code, request.source_face.code)
        else:
            assert back.source_face is None
    partial = {**frames_tensors(frames), "CORRID": np.array([1])}
    del partial["source_face_code"]
    from facecodec.codec.session import SessionError

    with pytest.raises(SessionError, match="source face needs all"):
        FrameRequest.from_tensors(partial)


def frames_tensors(frames):
    return next(frame_requests(frames, session_id=1)).to_tensors()


def test_relative_codes_move_a_portrait_like_its_driver(lite, expression, clip):
    """Motion transfer: the driver's change of expression since its first frame, on the portrait."""
    receiver = Receiver(lite)
    portrait = clip[2]
    zeros = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    receiver.set_source(images_to_batch(portrait[None]), MotionBatch(zeros(1, 3), zeros(1, 3), zeros(1, 15, 3)),
                        expression.source_face(portrait))
    codes = expression.encode(clip[[0, 1]])
    motion = MotionBatch(zeros(2, 3), zeros(2, 3), zeros(2, 15, 3), codes)
    flows = receiver.expression_flow(motion, relative=True)
    assert np.abs(flows[0]).max() < 1e-6  # the driver's first frame: the portrait's own expression
    assert np.abs(flows[1]).max() > 0.01  # its open mouth: the portrait's opens


def test_the_motion_search_renders_the_expression_and_keeps_the_codes(lite, expression, clip):
    from facecodec.codec.refine import RefineConfig, motion_search

    header = stream_header("lite", 15, 256, 25.0, expression=expression)
    plain = Sender(lite, header, expression=expression)
    searched = Sender(lite, header, expression=expression, search=motion_search(lite, RefineConfig(steps=1)))
    streams = [decode_stream(stream_bytes(header, s.send(clip))) for s in (plain, searched)]
    codes = [np.stack([f.motion.face for f in s.frames]) for s in streams]
    np.testing.assert_array_equal(codes[0], codes[1])  # the search moves the head, not the landmarks' codes
    assert searched.source_face is not None
