"""Clients against a real tritonserver: encode, decode, call, reenact, freeview, each compared with
the in-process (ONNX Runtime) path on the same input."""

from __future__ import annotations

import subprocess
import urllib.request

import numpy as np
import pytest

from facecodec.bitstream import RefreshPolicy, read_stream
from facecodec.client import calls
from facecodec.client.cli import main as client_main
from facecodec.codec.pipeline import ViewEdit, encode_frames, images_to_batch
from facecodec.codec.receiver import decode_file, receive
from facecodec.codec.sender import encode_file
from facecodec.codec.session import FrameRequest, SessionStore
from facecodec.media import ffmpeg_exe, read_video, to_frames, write_video
from facecodec.serving.server import model_metric

from ..served import assert_close_frames, local_decode

pytestmark = pytest.mark.triton


def test_server_is_healthy_on_loopback(triton):
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/decoder/ready"):
        with urllib.request.urlopen(triton.http_url + path, timeout=5) as resp:
            assert resp.status == 200
    assert triton.host == "127.0.0.1"
    metrics = triton.metrics()
    assert model_metric(metrics, "nv_inference_request_failure", "decoder") >= 0
    assert any(k.startswith("nv_inference_exec_count{") and 'model="decoder"' in k for k in metrics)


def test_encode_matches_in_process(conn, local, clip, tmp_path):
    calls.encode(conn, clip, tmp_path / "remote.fcdc", max_frames=10)
    encode_file(local, clip, tmp_path / "local.fcdc", preset="lite", num_kp=15, size=256, max_frames=10)
    remote, here = read_stream(tmp_path / "remote.fcdc"), read_stream(tmp_path / "local.fcdc")
    assert len(remote.frames) == len(here.frames) == 10
    for a, b in zip(remote.frames, here.frames, strict=True):  # quantised motion: equal up to a rare rounding flip
        np.testing.assert_allclose(a.motion.to_vector(), b.motion.to_vector(), atol=0.5)
    assert remote.frames[0].keyframe is not None


def test_decode_matches_in_process(conn, local, stream_factory, tmp_path):
    stream = stream_factory(0, 10)
    frames = calls.decode(conn, stream, tmp_path / "decoded.mp4")
    assert_close_frames(frames, local_decode(local, stream))
    assert (tmp_path / "decoded.mp4").stat().st_size > 0


def test_decode_with_free_view(conn, local, stream_factory):
    stream = stream_factory(0, 4)
    view = ViewEdit(override=(20.0, None, None), frontalise=True)
    frames = calls.decode(conn, stream, view=view)
    expected = to_frames(receive(local, read_stream(stream).frames, view=view))
    assert_close_frames(frames, expected)
    assert not np.array_equal(frames, local_decode(local, stream))  # the edit reached the session


def test_call_end_to_end(conn, local, clip, tmp_path):
    result = calls.call(conn, clip, tmp_path, max_frames=12)
    report = result.report
    assert report.frames == 12 and report.fps_target == 25.0 and result.frames.shape[0] == 12
    assert 0 < report.latency_ms_p50 <= report.latency_ms_p95 <= report.latency_ms_p99
    assert report.kbps > report.kbps_motion > 0 and report.fps_decoded > 0
    assert report.frames_delivered + report.frames_dropped == report.frames_sent <= report.frames
    for name in ("decoded.mp4", "side_by_side.mp4", "stream.fcdc"):
        assert (tmp_path / name).stat().st_size > 0
    assert "512x256" in _probe(tmp_path / "side_by_side.mp4")  # input | decoded
    expected = local_decode(local, tmp_path / "stream.fcdc")  # the packets the link carried, in-process
    seqs = sorted(result.delivered)  # live: the frames the receiver rendered are the in-process frames
    assert_close_frames(np.concatenate([result.delivered[s][None] for s in seqs]), expected[seqs])


def test_call_with_keyframe_refresh(conn, local, clip, tmp_path):
    """Refresh keyframes travel mid-call; the Triton session swaps its source on each, as in-process."""
    eager = RefreshPolicy(max_angle_deg=0.5, max_shift=0.01, min_interval_s=0.2)  # refresh at every chance
    result = calls.call(conn, clip, tmp_path, max_frames=24, realtime=False, refresh=eager, live=False)
    keyframes = [f.seq for f in read_stream(tmp_path / "stream.fcdc").frames if f.keyframe is not None]
    assert keyframes[0] == 0 and len(keyframes) >= 3 and result.report.keyframes == len(keyframes)
    assert all(b - a >= 5 for a, b in zip(keyframes, keyframes[1:]))  # at most one per 0.2 s at 25 fps
    assert_close_frames(result.frames, local_decode(local, tmp_path / "stream.fcdc"))


def _probe(path) -> str:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def _local_session(local, requests):
    store = SessionStore(local, max_sessions=1, idle_s=1e9)
    out = [store.decode([r])[0] for r in requests]
    return to_frames(np.concatenate(out))


def test_reenact_matches_in_process(conn, local, clip, tmp_path):
    portrait = read_video(clip, max_frames=60)[-1]
    write_video(tmp_path / "portrait.mp4", portrait[None])
    frames = calls.reenact(conn, tmp_path / "portrait.mp4", clip, tmp_path / "reenact.mp4", max_frames=6)
    driving = encode_frames(local, images_to_batch(read_video(clip, max_frames=6)))
    source = images_to_batch(read_video(tmp_path / "portrait.mp4")[:1])
    reqs = [FrameRequest(1, start=True, source_image=source)]
    reqs += [FrameRequest(1, motion=driving[i], relative=True) for i in range(6)]
    assert_close_frames(frames, _local_session(local, reqs)[1:])
    assert (tmp_path / "reenact.mp4").is_file()


def test_freeview_matches_in_process(conn, local, clip, tmp_path):
    write_video(tmp_path / "portrait.mp4", read_video(clip, max_frames=1))
    frames = calls.freeview(conn, tmp_path / "portrait.mp4", axes=("yaw", "roll"), frames_per_axis=3)
    assert frames.shape == (6, 256, 256, 3)
    source = images_to_batch(read_video(tmp_path / "portrait.mp4")[:1])
    motion = encode_frames(local, source)
    angles = 30.0 * np.sin(np.linspace(0, 2 * np.pi, 3))
    views = [ViewEdit(override=(float(a), None, None)) for a in angles]
    views += [ViewEdit(override=(None, None, float(a))) for a in angles]
    reqs = [
        FrameRequest(1, start=i == 0, source_image=source if i == 0 else None, motion=motion, view=v)
        for i, v in enumerate(views)
    ]
    assert_close_frames(frames, _local_session(local, reqs))
    front = calls.freeview(conn, tmp_path / "portrait.mp4", axes=(), frontalise=True)
    assert front.shape == (1, 256, 256, 3)


def test_cli_encode_decode_freeview(triton, tmp_path, clip, capsys):
    url = ["-u", triton.grpc_url, "-t", "240"]
    assert client_main(["encode", str(clip), "-o", str(tmp_path / "s.fcdc"), "--max-frames", "4", *url]) == 0
    assert client_main(["decode", str(tmp_path / "s.fcdc"), "-o", str(tmp_path / "d.mp4"), "--yaw", "10", *url]) == 0
    assert read_video(tmp_path / "d.mp4").shape[0] == 4
    assert "kbit/s" in capsys.readouterr().out


def test_cli_reports_an_unreachable_server(tmp_path, stream_factory, caplog):
    code = client_main(
        ["decode", str(stream_factory(0, 4)), "-o", str(tmp_path / "x.mp4"), "-u", "127.0.0.1:9", "-t", "5"]
    )
    assert code == 2
    assert (
        "127.0.0.1:9" in caplog.text
        or "failed to connect" in caplog.text.lower()
        or "unavailable" in caplog.text.lower()
    )


@pytest.fixture(scope="session")
def expression(expression_sender):
    return expression_sender


def test_expression_channel_through_the_server_matches_in_process(conn, local, clip, tmp_path, expression):
    """A version-2 stream: the session gets the source face at START and a code per frame."""
    stream = tmp_path / "expr.fcdc"
    encode_file(local, clip, stream, preset="lite", num_kp=15, size=256, max_frames=10, expression=expression)
    decoded = read_stream(stream)
    assert decoded.header.num_face > 0 and decoded.frames[0].face is not None
    frames = calls.decode(conn, stream)
    assert_close_frames(frames, local_decode(local, stream))
    plain = tmp_path / "plain.fcdc"
    encode_file(local, clip, plain, preset="lite", num_kp=15, size=256, max_frames=10)
    assert not np.array_equal(frames, local_decode(local, plain))  # the expression reached the session


def test_call_and_reenact_with_the_expression_channel(conn, local, clip, tmp_path, expression):
    result = calls.call(conn, clip, tmp_path, max_frames=8, realtime=False, expression=expression)
    assert read_stream(tmp_path / "stream.fcdc").header.num_face > 0 and result.report.frames == 8
    frames = calls.reenact(conn, clip, clip, max_frames=6, expression=expression)
    assert frames.shape == (6, 256, 256, 3)


def test_an_authenticated_call_and_stream(conn, local, clip, tmp_path):
    from facecodec.bitstream.auth import write_key

    result = calls.call(conn, clip, tmp_path, max_frames=6, realtime=False, authenticate=True)
    assert result.report.frames == 6
    assert read_stream(tmp_path / "stream.fcdc", key=b"-" * 32).drops  # another key: every packet forged
    key = write_key(tmp_path / "k")
    calls.encode(conn, clip, tmp_path / "a.fcdc", max_frames=4, key=key)
    frames = calls.decode(conn, tmp_path / "a.fcdc", key=key)
    assert frames.shape == (4, 256, 256, 3)
    with pytest.raises(ValueError, match="packet key"):
        calls.decode(conn, tmp_path / "a.fcdc")


def test_an_authenticated_call_rejects_and_counts_forged_packets_and_goes_on(conn, local, clip, tmp_path):
    """A party on the path alters a packet (CRC recomputed), replays an old one and injects one of its
    own (a guessed tag) while the call runs: the receiver drops each, the report counts them, and every
    frame of the call is still the in-process decode of the sender's own packets."""
    import dataclasses
    import secrets

    from facecodec.bitstream import Framing, scan_packets

    sent: dict[int, bytes] = {}
    unchecked = Framing(compact=True, verify=lambda *_: True)  # the intruder reads packets without the key

    def intruder(n: int, packet: bytes) -> list[bytes]:
        sent[n] = packet
        *_, parsed = list(scan_packets(packet, unchecked))  # the first chunk also holds the keyframe
        genuine_tag = packet[-8:]
        if n == 4:  # altered, racing ahead of the real one (its genuine tag kept)
            body = bytearray(parsed.body)
            body[0] ^= 0x01
            return [dataclasses.replace(parsed, body=bytes(body)).to_compact_bytes(lambda _: genuine_tag), packet]
        if n == 7:  # replayed: frame 2 again, its genuine tag
            return [packet, sent[2]]
        if n == 9:  # injected: the next frame's slot, a stranger's tag
            fake = dataclasses.replace(parsed, seq=parsed.seq + 1)
            return [fake.to_compact_bytes(lambda _: secrets.token_bytes(8)), packet]
        return [packet]

    result = calls.call(conn, clip, max_frames=12, realtime=False, authenticate=True, live=False, tap=intruder)
    report = result.report
    assert report.packets_rejected.get("forged") == 2, report.packets_rejected  # altered + injected
    assert report.packets_rejected.get("stale") == 1  # the replay: its frame was already emitted
    assert report.frames_delivered == report.frames == 12 and report.frames_lost == 0
    (tmp_path / "call.fcdc").write_bytes(result.stream)  # the sender's packets (key in the call, not the file)
    assert_close_frames(result.frames, decode_file(local, read_stream(tmp_path / "call.fcdc", key=result.key)))
