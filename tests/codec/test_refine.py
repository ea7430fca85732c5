"""Sender-side motion search (`facecodec.codec.refine`) with the shipped lite weights on real frames:
it recovers a motion that was knocked off, never returns worse than its start, and the eval path
refuses the combinations it cannot do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecodec.codec.pipeline import MotionBatch, TorchNetworks, encode_frames, images_to_batch
from facecodec.codec.refine import (RefineConfig, _loss, _Renderer, motion_search, refine_call, refine_motion,
                                    smooth_motion)
from facecodec.kinematics import transform_keypoints
from facecodec.weights import build_model


@pytest.fixture(scope="module")
def lite():
    return build_model("lite").eval()  # the shipped weights (package data): missing is a failure, not a skip


def _render_loss(model, source, source_motion, frames, motion):
    """Per-frame loss of `motion` as `refine_motion` scores it."""
    with torch.no_grad():
        src = torch.from_numpy(source)
        feats, kp_c = model.appearance(src), model.keypoints(src)
        rs = torch.from_numpy(source_motion.rotation)
        kp_s = transform_keypoints(kp_c, rs[:, 0], rs[:, 1], rs[:, 2], torch.from_numpy(source_motion.translation),
                                   torch.from_numpy(source_motion.expression))
        out = _Renderer(model, src, feats, kp_c, kp_s)(*(torch.from_numpy(x) for x in
                                                        (motion.rotation, motion.translation, motion.expression)))
        return _loss(out, torch.from_numpy(frames), RefineConfig().coarse_weight).numpy()


def test_refine_recovers_a_knocked_off_motion(lite, sample_frames):
    """Target = the render of the encoder's own motion; start 6° of yaw and 0.04 of t_x away from it."""
    images = images_to_batch(sample_frames[[0, 40, 80]])
    motion = encode_frames(TorchNetworks(lite), images)
    source, source_motion, true = images[:1], motion[0:1], motion[1:]
    target = _render_frames(lite, source, source_motion, true)
    off = MotionBatch(true.rotation + np.array([6, 0, 0], np.float32), true.translation + np.array([0.04, 0, 0],
                      np.float32), true.expression.copy())
    refined = refine_motion(lite, source, source_motion, target, off, RefineConfig(steps=8))
    before = _render_loss(lite, source, source_motion, target, off)
    after = _render_loss(lite, source, source_motion, target, refined)
    assert (after <= before + 1e-6).all()
    assert after.mean() < 0.6 * before.mean()
    yaw_err_before = np.abs(off.rotation[:, 0] - true.rotation[:, 0])
    yaw_err_after = np.abs(refined.rotation[:, 0] - true.rotation[:, 0])
    assert (yaw_err_after < 0.6 * yaw_err_before).all(), (yaw_err_before, yaw_err_after)
    assert (np.abs(refined.translation[:, 0] - true.translation[:, 0]) < 0.6 * 0.04).all()


def _render_frames(model, source, source_motion, motion) -> np.ndarray:
    from facecodec.codec.pipeline import Receiver

    receiver = Receiver(TorchNetworks(model))
    receiver.set_source(source, source_motion)
    return receiver.render(receiver.driving_keypoints(motion))


def test_refine_never_worse_than_its_start_and_zero_steps_is_identity(lite, sample_frames):
    images = images_to_batch(sample_frames[:60:10])
    motion = encode_frames(TorchNetworks(lite), images)
    assert refine_motion(lite, images[:1], motion[0:1], images, motion, RefineConfig(steps=0)) is motion
    # batch 2: three batches, so the later ones also try the carried correction
    refined = refine_motion(lite, images[:1], motion[0:1], images, motion, RefineConfig(steps=2), batch=2)
    assert len(refined) == len(motion) and refined.expression.shape == motion.expression.shape
    before = _render_loss(lite, images[:1], motion[0:1], images, motion)
    after = _render_loss(lite, images[:1], motion[0:1], images, refined)
    assert (after <= before + 1e-6).all() and after.mean() < before.mean()
    assert lite.training is False and all(p.grad is None for p in lite.parameters())


def test_the_search_refuses_refresh_and_onnx_networks(lite, sample_frames):
    from facecodec.bitstream import RefreshPolicy
    from facecodec.eval.codec import self_reenact

    frames = sample_frames[:3]
    with pytest.raises(ValueError, match="does not combine with refresh"):
        self_reenact(TorchNetworks(lite), frames, preset="lite", num_kp=lite.cfg.num_kp, refresh=RefreshPolicy(),
                     search=motion_search(TorchNetworks(lite), RefineConfig(steps=1)))
    networks = lambda name, feeds: TorchNetworks(lite)(name, feeds)  # noqa: E731  a Networks without a model
    with pytest.raises(ValueError, match="needs the PyTorch networks"):
        motion_search(networks, RefineConfig(steps=1))


def test_self_reenact_with_the_search_beats_the_plain_encoder(lite, sample_frames):
    from facecodec.eval.codec import self_reenact

    frames = sample_frames[:9]
    runs = [self_reenact(TorchNetworks(lite), frames, preset="lite", num_kp=lite.cfg.num_kp, search=search)
            for search in (None, motion_search(TorchNetworks(lite), RefineConfig(steps=3)))]
    err = [np.abs(r.frames[1:].astype(np.float32) - frames[1:]).mean() for r in runs]
    assert err[1] < err[0]
    assert runs[1].frames.shape == frames.shape and runs[1].keyframes == 1


def test_the_sender_sends_the_searched_motion(lite, sample_frames):
    from facecodec.bitstream import RefreshPolicy, decode_stream, stream_bytes
    from facecodec.codec.sender import Sender, stream_header

    frames = sample_frames[:5]
    header = stream_header("lite", lite.cfg.num_kp, 256, 25.0)
    seen = []

    def search(f, motion, keyframe, face):
        seen.append((len(f), keyframe))
        assert face is None  # a stream without the expression channel
        return MotionBatch(motion.rotation + 5, motion.translation, motion.expression)

    plain = Sender(TorchNetworks(lite), header).send(frames)
    searched = Sender(TorchNetworks(lite), header, search=search).send(frames)
    streams = [decode_stream(stream_bytes(header, c)) for c in (plain, searched)]
    yaw = [np.array([f.motion.yaw for f in s.frames]) for s in streams]
    assert [n for n, _ in seen] == [5] and np.allclose(yaw[1] - yaw[0], 5, atol=0.5)  # within the quantiser's step
    # the search saw the keyframe the receiver decodes (lossy), not the camera frame
    received = streams[1].frames[0].keyframe
    assert np.array_equal(seen[0][1], received) and not np.array_equal(received, frames[0])
    with pytest.raises(ValueError, match="does not combine with refresh"):
        Sender(TorchNetworks(lite), header, refresh=RefreshPolicy(),
               search=motion_search(TorchNetworks(lite), RefineConfig(steps=1)))


def test_smooth_motion_keeps_steady_and_linear_motion_and_removes_alternating_jitter():
    t, k = 12, 3
    yaw = np.linspace(-10, 10, t, dtype=np.float32)
    jitter = np.where(np.arange(t) % 2 == 0, 1.0, -1.0).astype(np.float32)
    motion = MotionBatch(np.stack([yaw, jitter, np.full(t, 4, np.float32)], 1), np.zeros((t, 3), np.float32),
                         np.tile(np.float32([0.1, -0.2, 0.0]), (t, k, 1)))
    out = smooth_motion(motion, (1, 2, 1))
    assert np.allclose(out.rotation[1:-1, 0], yaw[1:-1], atol=1e-5)  # a symmetric filter keeps a ramp
    assert np.abs(out.rotation[1:-1, 1]).max() < 1e-6  # ±1 from frame to frame is gone
    assert np.allclose(out.rotation[:, 2], 4) and np.allclose(out.expression, motion.expression)
    assert out.rotation.dtype == np.float32 and out.expression.shape == (t, k, 3)
    assert smooth_motion(motion, ()) is motion and smooth_motion(motion[:1], (1, 2, 1)) is not None


def test_refine_call_sends_frame_0_as_estimated_and_smooths_the_rest(lite, sample_frames):
    frames = sample_frames[:6]
    motion = encode_frames(TorchNetworks(lite), images_to_batch(frames))
    raw = refine_call(lite, frames, motion, frames[0], cfg=RefineConfig(steps=2, smoothing=()))
    smoothed = refine_call(lite, frames, motion, frames[0], cfg=RefineConfig(steps=2))
    for out in (raw, smoothed):
        assert np.array_equal(out.rotation[0], motion.rotation[0]) and np.array_equal(out.expression[0],
                                                                                      motion.expression[0])
    assert np.allclose(smoothed.rotation[1:], smooth_motion(raw[1:], (1, 2, 1)).rotation, atol=1e-5)
