"""The decoder's session logic without a server: tiny numpy networks stand in for the real ones,
so every rule (START, END, cap, idle eviction, per-request errors, batching) is checked fast."""

from __future__ import annotations

import numpy as np
import pytest

from facecodec.codec.pipeline import MotionBatch, ViewEdit
from facecodec.codec.session import FrameRequest, SessionError, SessionStore

K = 15


class TinyNetworks:
    """appearance: f_s = the image mean; warp: frame = f_s + mean driving keypoint (so sessions and
    motions are told apart by value). Counts calls per network."""

    def __init__(self):
        self.calls: dict[str, int] = {}

    def __call__(self, name, feeds):
        self.calls[name] = self.calls.get(name, 0) + 1
        if name == "appearance_encoder":
            img = feeds["source_image"]
            mean = img.mean(axis=(1, 2, 3))
            return {
                "source_features": np.ones((len(img), 2, 1, 2, 2), np.float32) * mean[:, None, None, None, None],
                "kp_canonical": np.zeros((len(img), K, 3), np.float32),
            }
        if name == "motion_encoder":
            b = len(feeds["image"])
            return {
                "rotation": np.zeros((b, 3), np.float32),
                "translation": np.full((b, 3), 0.1, np.float32),
                "expression": np.zeros((b, K, 3), np.float32),
            }
        assert name == "warp_decoder"
        f = feeds["source_features"].mean(axis=(1, 2, 3, 4)) + feeds["kp_driving"].mean(axis=(1, 2))
        return {"output_image": np.ones((len(f), 3, 4, 4), np.float32) * f[:, None, None, None]}


def motion(t: float) -> MotionBatch:
    return MotionBatch(np.zeros((1, 3), np.float32), np.full((1, 3), t, np.float32), np.zeros((1, K, 3), np.float32))


def source(value: float) -> np.ndarray:
    return np.full((1, 3, 4, 4), value, np.float32)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def store():
    return SessionStore(TinyNetworks(), max_sessions=3, idle_s=10.0, clock=Clock())


def decode_one(store, req):
    (out,) = store.decode([req])
    return out


def test_start_frames_end(store):
    first = decode_one(store, FrameRequest(1, start=True, source_image=source(0.5), motion=motion(0.0)))
    assert first.shape == (1, 3, 4, 4) and np.allclose(first, 0.5)
    frame = decode_one(store, FrameRequest(1, motion=motion(0.3)))
    assert np.allclose(frame, 0.5 + 0.3)  # the mean driving keypoint moves by t
    assert len(store) == 1
    decode_one(store, FrameRequest(1, end=True, motion=motion(0.0)))
    assert len(store) == 0


def test_start_without_motion_estimates_it(store):
    out = decode_one(store, FrameRequest(7, start=True, source_image=source(0.2)))
    assert store.networks.calls["motion_encoder"] == 1
    assert np.allclose(out, 0.2 + 0.1)


@pytest.mark.parametrize(
    "req, message",
    [
        (FrameRequest(5, motion=motion(0.0)), "unknown session"),
        (FrameRequest(5, start=True, motion=motion(0.0)), "START needs source_image"),
    ],
)
def test_clear_errors(store, req, message):
    out = decode_one(store, req)
    assert isinstance(out, SessionError) and message in str(out) and "session 5" in str(out)


def test_frame_without_motion_is_an_error_but_end_alone_closes(store):
    decode_one(store, FrameRequest(1, start=True, source_image=source(0.5), motion=motion(0.0)))
    assert isinstance(decode_one(store, FrameRequest(1)), SessionError)
    assert np.allclose(decode_one(store, FrameRequest(1, end=True)), 0.5)  # the source at its own pose
    assert len(store) == 0


def test_cap_refuses_then_admits_after_end(store):
    for sid in (1, 2, 3):
        decode_one(store, FrameRequest(sid, start=True, source_image=source(0.1), motion=motion(0.0)))
    refused = decode_one(store, FrameRequest(4, start=True, source_image=source(0.1), motion=motion(0.0)))
    assert isinstance(refused, SessionError) and "maximum of 3 live sessions" in str(refused)
    decode_one(store, FrameRequest(1, end=True, motion=motion(0.0)))
    assert not isinstance(decode_one(store, FrameRequest(4, start=True, source_image=source(0.1))), Exception)


def test_start_on_a_live_id_is_refused_and_the_call_goes_on(store):
    first = decode_one(store, FrameRequest(2, start=True, source_image=source(0.1), motion=motion(0.0)))
    taken = decode_one(store, FrameRequest(2, start=True, source_image=source(0.9), motion=motion(0.0)))
    assert isinstance(taken, SessionError) and "START refused" in str(taken)
    assert np.allclose(decode_one(store, FrameRequest(2, motion=motion(0.0))), first)  # still the first source


def test_a_session_belongs_to_the_token_that_started_it():
    store = SessionStore(TinyNetworks(), max_sessions=3, idle_s=10.0, require_token=True)
    owner = "o" * 24
    refused = decode_one(store, FrameRequest(1, start=True, source_image=source(0.1)))
    assert isinstance(refused, SessionError) and "session token" in str(refused) and len(store) == 0
    assert not isinstance(decode_one(store, FrameRequest(1, start=True, source_image=source(0.1), token=owner)),
                          Exception)
    for stranger in (None, "x" * 24, owner[:-1]):
        for request in (FrameRequest(1, motion=motion(0.2), token=stranger),
                        FrameRequest(1, end=True, motion=motion(0.2), token=stranger),
                        FrameRequest(1, source_image=source(0.7), motion=motion(0.2), token=stranger)):
            got = decode_one(store, request)
            assert isinstance(got, SessionError) and "session token" in str(got), got
    assert len(store) == 1  # the stranger's END did not end it, nor did its source replace the call's
    frame = decode_one(store, FrameRequest(1, motion=motion(0.2), token=owner))
    reference = SessionStore(TinyNetworks(), max_sessions=1, idle_s=10.0)
    decode_one(reference, FrameRequest(1, start=True, source_image=source(0.1)))
    assert np.allclose(frame, decode_one(reference, FrameRequest(1, motion=motion(0.2))))
    assert not isinstance(decode_one(store, FrameRequest(1, end=True, motion=motion(0.0), token=owner)), Exception)
    assert len(store) == 0


def test_idle_sessions_are_evicted(store):
    decode_one(store, FrameRequest(1, start=True, source_image=source(0.1), motion=motion(0.0)))
    decode_one(store, FrameRequest(2, start=True, source_image=source(0.1), motion=motion(0.0)))
    store.clock.now = 8.0
    decode_one(store, FrameRequest(2, motion=motion(0.0)))  # session 2 stays active
    store.clock.now = 12.0
    assert store.evict_idle() == [1]
    assert isinstance(decode_one(store, FrameRequest(1, motion=motion(0.0))), SessionError)
    assert len(store) == 1


def test_batch_errors_stay_with_their_request_and_sessions_do_not_mix(store):
    reqs = [
        FrameRequest(1, start=True, source_image=source(0.25), motion=motion(0.0)),
        FrameRequest(9, motion=motion(0.0)),  # unknown
        FrameRequest(2, start=True, source_image=source(0.75), motion=motion(0.0)),
        FrameRequest(1, motion=motion(0.0), view=ViewEdit(override=(45.0, None, None))),  # out of range
        ValueError("malformed request"),
    ]
    out = store.decode(reqs)
    assert np.allclose(out[0], 0.25) and np.allclose(out[2], 0.75)
    assert isinstance(out[1], SessionError) and isinstance(out[3], SessionError) and "±30" in str(out[3])
    assert isinstance(out[4], ValueError)
    assert store.networks.calls["warp_decoder"] == 1  # the good frames of both sessions in one run


def test_relative_motion_starts_from_the_first_relative_frame(store):
    decode_one(store, FrameRequest(1, start=True, source_image=source(0.5), motion=motion(0.0)))
    first = decode_one(store, FrameRequest(1, motion=motion(0.4), relative=True))
    later = decode_one(store, FrameRequest(1, motion=motion(0.6), relative=True))
    assert np.allclose(first, 0.5) and np.allclose(later, 0.5 + 0.2)


def test_new_source_mid_call(store):
    decode_one(store, FrameRequest(1, start=True, source_image=source(0.5), motion=motion(0.0)))
    out = decode_one(store, FrameRequest(1, source_image=source(0.1), motion=motion(0.0)))
    assert np.allclose(out, 0.1) and store.networks.calls["appearance_encoder"] == 2


def test_padding_slot_is_answered_without_a_session(store):
    out = decode_one(store, FrameRequest(0, ready=False))
    assert isinstance(out, SessionError) and len(store) == 0


def test_request_tensors_round_trip():
    req = FrameRequest(
        42,
        start=True,
        end=False,
        source_image=source(0.3),
        motion=motion(0.2),
        view=ViewEdit(override=(None, 10.0, None), offset=(1.0, 0.0, -2.0), frontalise=True),
        relative=True,
    )
    tensors = req.to_tensors()
    tensors.update(
        START=np.array([[1.0]], np.float32),
        END=np.array([[0.0]], np.float32),
        READY=np.array([[1.0]], np.float32),
        CORRID=np.array([[42]], np.uint64),
    )
    back = FrameRequest.from_tensors(tensors)
    assert (back.session_id, back.start, back.end, back.ready, back.relative) == (42, True, False, True, True)
    assert back.view == req.view
    np.testing.assert_array_equal(back.source_image, req.source_image)
    np.testing.assert_array_equal(back.motion.translation, req.motion.translation)


def test_partial_motion_is_rejected():
    with pytest.raises(SessionError, match="motion needs all of"):
        FrameRequest.from_tensors({"CORRID": np.array([[1]], np.uint64), "rotation": np.zeros((1, 3), np.float32)})


def test_a_failing_network_fails_only_its_request(store):
    decode_one(store, FrameRequest(1, start=True, source_image=source(0.5), motion=motion(0.0)))
    networks = store.networks

    def broken(name, feeds):
        if name == "appearance_encoder":
            raise RuntimeError("BLS request to appearance_encoder failed: model unavailable")
        return networks(name, feeds)

    store.networks = broken
    out = store.decode([FrameRequest(2, start=True, source_image=source(0.1)), FrameRequest(1, motion=motion(0.0))])
    assert isinstance(out[0], RuntimeError) and "appearance_encoder" in str(out[0]) and len(store) == 1
    assert np.allclose(out[1], 0.5)
