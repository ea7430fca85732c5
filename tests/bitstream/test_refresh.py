"""Keyframe refresh: the sender re-sends the source when the head has left its neighbourhood."""

from __future__ import annotations

import numpy as np
import pytest

from facecodec.bitstream import Flags, Motion, PacketType, RefreshPolicy, StreamHeader, decode_stream, scan_packets

K = 15


def _motion(yaw: float = 0.0, t: tuple[float, float] = (0.0, 0.0)) -> Motion:
    return Motion(yaw, 0.0, 0.0, np.array([*t, 0.0]), np.zeros((K, 3)))


def _frame(n: int) -> np.ndarray:
    """A picture that says which frame it is (its grey level), smooth enough for WebP."""
    return np.full((64, 64, 3), 40 + 2 * n, np.uint8)


@pytest.fixture
def header() -> StreamHeader:
    return StreamHeader(preset="lite", num_kp=K, height=64, width=64, fps_num=25, fps_den=1)


def test_policy_thresholds_and_interval():
    policy = RefreshPolicy(max_angle_deg=15, max_shift=0.15, min_interval_s=1.0)
    source = _motion()
    assert not policy.due(source, _motion(yaw=14.9), 5.0)
    assert policy.due(source, _motion(yaw=-15.1), 5.0)
    assert not policy.due(source, _motion(t=(0.1, 0.1)), 5.0)  # |Δt| = 0.141
    assert policy.due(source, _motion(t=(0.12, 0.1)), 5.0)  # |Δt| = 0.156
    assert not policy.due(source, _motion(yaw=40), 0.99)  # not in bursts
    with pytest.raises(ValueError, match="positive"):
        RefreshPolicy(max_angle_deg=0)


def test_a_turning_head_gets_refresh_keyframes_of_its_own_frames(header, send_stream):
    yaws = 0.5 * np.arange(100)  # 50° over 4 s at 25 fps
    motions = [_motion(yaw=y) for y in yaws]
    images = [_frame(n) for n in range(100)]
    data = send_stream(header, motions, images=images, refresh=RefreshPolicy())
    stream = decode_stream(data)

    keyframes = [f.seq for f in stream.frames if f.keyframe is not None]
    # 15° is passed 31 frames after each source (15.5°), always later than 1 s
    assert keyframes == [0, 31, 62, 93]
    for seq in keyframes:
        assert abs(float(stream.frames[seq].keyframe.mean()) - images[seq].mean()) < 2
    packets = scan_packets(data[len(header.to_bytes()):], header.framing)
    refreshes = [p.seq for p in packets if p.type == PacketType.KEYFRAME and p.flags & Flags.REFRESH]
    assert refreshes == [31, 62, 93]


def test_no_refresh_without_a_policy_or_beyond_thresholds(header, send_stream):
    motions = [_motion(yaw=y) for y in np.linspace(0, 45, 50)]
    images = [_frame(n) for n in range(50)]
    plain = decode_stream(send_stream(header, motions, images=images))
    assert [f.seq for f in plain.frames if f.keyframe is not None] == [0]
    slow = RefreshPolicy(max_angle_deg=50)
    kept = decode_stream(send_stream(header, motions, images=images, refresh=slow))
    assert [f.seq for f in kept.frames if f.keyframe is not None] == [0]


def test_refresh_needs_the_images(header, send_stream):
    with pytest.raises(ValueError, match="needs the frame images"):
        send_stream(header, [_motion()] * 3, refresh=RefreshPolicy())
