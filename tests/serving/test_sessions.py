"""Call sessions on a real tritonserver: concurrency without cross-talk, batching across calls,
clear errors that leave the server serving, and memory that END gives back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from facecodec.bitstream import read_stream
from facecodec.client import calls
from facecodec.client.reconnect import ReconnectingSession, SessionLost
from facecodec.client.remote import ClientError, DecoderSession
from facecodec.codec.pipeline import MotionBatch, images_to_batch
from facecodec.codec.receiver import frame_requests
from facecodec.codec.session import FrameRequest
from facecodec.media import to_frames
from facecodec.quality import psnr
from facecodec.serving.server import model_metric

from ..served import SETTINGS, assert_close_frames, local_decode

pytestmark = pytest.mark.triton
CALLS = 8


def batch_counters(server) -> tuple[float, float]:
    metrics = server.metrics()
    return (
        model_metric(metrics, "nv_inference_count", "decoder"),
        model_metric(metrics, "nv_inference_exec_count", "decoder"),
    )


def test_concurrent_calls_stay_apart_and_are_batched(triton, conn, local, stream_factory):
    streams = [stream_factory(first=10 * i, count=6) for i in range(CALLS)]  # a different source each
    before = batch_counters(triton)
    with ThreadPoolExecutor(CALLS) as pool:
        decoded = list(pool.map(lambda s: calls.decode(conn, s), streams))
    after = batch_counters(triton)
    expected = [local_decode(local, s) for s in streams]
    for i in range(CALLS):
        assert_close_frames(decoded[i], expected[i])  # each call got its own source and motion
        assert psnr(decoded[i], expected[(i + 1) % CALLS], per_frame=False) < 45.0  # ...and not its neighbour's
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert inferences == CALLS * 6
    assert inferences / executions > 1.0, f"decoder average batch {inferences / executions:.2f}"


def _motion(stream) -> MotionBatch:
    return MotionBatch.from_motions([read_stream(stream).frames[0].motion])


def test_frame_before_start_is_refused_by_the_scheduler(conn, stream_factory):
    with DecoderSession(conn.url, timeout=conn.timeout) as session:
        future = session.send(FrameRequest(session.session_id, motion=_motion(stream_factory(0, 4))))
        with pytest.raises(ClientError, match="START"):
            future.result(conn.timeout)


def test_start_without_source_then_unknown_session(conn, stream_factory):
    motion = _motion(stream_factory(0, 4))
    with DecoderSession(conn.url, timeout=conn.timeout) as session:
        start = session.send(FrameRequest(session.session_id, start=True, motion=motion))
        frame = session.send(FrameRequest(session.session_id, motion=motion))
        with pytest.raises(ClientError, match="START needs source_image"):
            start.result(conn.timeout)
        with pytest.raises(ClientError, match="unknown session"):
            frame.result(conn.timeout)


def test_session_cap_refuses_clearly_and_others_keep_going(conn, local, stream_factory):
    stream = stream_factory(0, 4)
    decoded = read_stream(stream)
    source = images_to_batch(decoded.frames[0].keyframe[None])
    motion = _motion(stream)
    expected = local_decode(local, stream)
    sessions = [DecoderSession(conn.url, timeout=conn.timeout) for _ in range(SETTINGS.max_sessions + 1)]
    try:
        starts = [
            s.send(FrameRequest(s.session_id, start=True, source_image=source, motion=motion)) for s in sessions[:-1]
        ]
        for f in starts:
            f.result(conn.timeout)
        extra = sessions[-1]
        refused = extra.send(FrameRequest(extra.session_id, start=True, source_image=source, motion=motion))
        with pytest.raises(ClientError, match=f"maximum of {SETTINGS.max_sessions} live sessions"):
            refused.result(conn.timeout)
        # a live call goes on decoding correctly next to the refusal
        live = sessions[0]
        frame = live.send(FrameRequest(live.session_id, motion=MotionBatch.from_motions([decoded.frames[1].motion])))
        assert_close_frames(to_frames(frame.result(conn.timeout)), expected[1:2])
    finally:
        for s in sessions:
            s.close()  # END for the open ones
    assert calls.decode(conn, stream).shape == expected.shape  # capacity is back after END


def test_end_frees_session_memory(triton, conn, stream_factory):
    """RSS of the server and its stubs stays flat (within 5 %) over 200 sequential sessions."""
    (first,) = frame_requests(read_stream(stream_factory(0, 1)).frames, session_id=0)
    assert first.start and first.end  # one request: START with the source, its frame, END

    def one_call():
        with DecoderSession(conn.url, timeout=conn.timeout) as session:
            session.send(first).result(conn.timeout)

    for _ in range(10):  # warm-up: arenas, shared memory and gRPC buffers reach their working size
        one_call()
    before = triton.rss_bytes()
    for _ in range(200):
        one_call()
    after = triton.rss_bytes()
    assert after <= 1.05 * before, f"RSS grew from {before / 2**20:.0f} MiB to {after / 2**20:.0f} MiB"


def test_a_call_belongs_to_its_token_not_to_its_id(conn, local, stream_factory):
    """A stranger who learnt a live call's correlation id (the server logs it) gets no frame of it, cannot
    restart it or replace its source; the call goes on decoding its own frames. An END from the stranger
    does end the sequence in Triton's scheduler (the model refuses it, the scheduler does not ask): the
    call then re-opens as a fresh session (new id and token) on the same server and goes on."""
    stream = stream_factory(0, 8)
    decoded = read_stream(stream)
    expected = local_decode(local, stream)
    requests = list(frame_requests(decoded.frames, session_id=0))
    motion = MotionBatch.from_motions([decoded.frames[2].motion])
    source = images_to_batch(decoded.frames[0].keyframe[None])
    with ReconnectingSession([conn.url], timeout=conn.timeout) as call:
        assert_close_frames(to_frames(call.send(requests[0]).result(conn.timeout)), expected[:1])
        victim = call._session
        with DecoderSession(conn.url, timeout=conn.timeout, session_id=victim.session_id) as stranger:
            assert stranger.token != victim.token
            attempts = {
                "frame": FrameRequest(0, motion=motion),
                "new source": FrameRequest(0, source_image=source * 0.5, motion=motion),
                "START": FrameRequest(0, start=True, source_image=source, motion=motion),
            }
            for what, request in attempts.items():
                with pytest.raises(ClientError, match="session token|START refused"):
                    stranger.send(request).result(conn.timeout)
                stranger.started = False  # its session never opened: close() sends no END
            for n in (1, 2):  # the call goes on, its own frames, on its first session
                assert_close_frames(to_frames(call.send(requests[n]).result(conn.timeout)), expected[n : n + 1])
            assert call.reconnects == []
            with pytest.raises(ClientError, match="session token"):
                stranger.send(FrameRequest(0, end=True, motion=motion)).result(conn.timeout)
        with pytest.raises(SessionLost):  # the scheduler forgot the sequence: this frame is the gap
            call.send(requests[3]).result(conn.timeout)
        for n in range(4, 8):  # a fresh session, the same call
            assert_close_frames(to_frames(call.send(requests[n]).result(conn.timeout)), expected[n : n + 1])
        assert len(call.reconnects) == 1 and call._session.session_id != victim.session_id
