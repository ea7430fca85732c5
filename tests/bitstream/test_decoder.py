import dataclasses

import numpy as np
import pytest

from facecodec.bitstream import (Decoder, DropReason, Encoder, Flags, PacketType, StreamHeader, parse_packet,
                                 scan_packets)
from facecodec.bitstream.decoder import conceal, unwrap_seq


def _run(header, chunks, **kwargs):
    decoder = Decoder(header, **kwargs)
    frames = [frame for chunk in chunks for frame in decoder.push(chunk)] + decoder.flush()
    return frames, decoder


def _vectors(frames):
    return np.stack([frame.motion.to_vector() for frame in frames])


def test_reordering_within_the_window_is_transparent(header, motions, encode_frames):
    chunks, expected = encode_frames(header, motions[:60])
    chunks[10], chunks[11] = chunks[11], chunks[10]
    frames, decoder = _run(header, chunks, reorder_window=1)
    np.testing.assert_array_equal(_vectors(frames), expected)
    assert not any(f.concealed for f in frames) and not decoder.drops


def test_reordering_beyond_the_window_conceals_until_the_next_intra(header, motions, encode_frames):
    chunks, expected = encode_frames(header, motions[:60])
    chunks[10], chunks[11] = chunks[11], chunks[10]
    frames, decoder = _run(header, chunks, reorder_window=0)
    assert [f.seq for f in frames] == list(range(60))
    assert [f.seq for f in frames if f.concealed] == list(range(10, 25))  # 25 is the next intra frame
    np.testing.assert_array_equal(_vectors(frames)[25:], expected[25:])
    assert decoder.drops == {DropReason.UNSYNCED: 14, DropReason.STALE: 1}  # frames 11…24; 10 came late


def test_duplicates_are_dropped_and_change_nothing(header, motions, encode_frames):
    chunks, expected = encode_frames(header, motions[:30])
    duplicated = [chunk for chunk in chunks for _ in range(2)]
    frames, decoder = _run(header, duplicated[:7] + [duplicated[5]] + duplicated[7:], reorder_window=3)
    np.testing.assert_array_equal(_vectors(frames), expected)
    assert decoder.drops[DropReason.STALE] + decoder.drops[DropReason.DUPLICATE] == 31


def test_keyframes_attach_to_their_frame_and_refresh_is_flagged(header, motions, smooth_image):
    encoder = Encoder(header)
    encoder.request_keyframe(smooth_image)
    chunks = [encoder.encode(motions[0], 0)]
    chunks += [encoder.encode(m, 40 * n) for n, m in enumerate(motions[1:5], 1)]
    encoder.request_keyframe(smooth_image[::-1].copy())
    chunks += [encoder.encode(m, 40 * n) for n, m in enumerate(motions[5:8], 5)]
    packets = [p for chunk in chunks for p in scan_packets(chunk, header.framing)]
    keyframes = [p for p in packets if p.type == PacketType.KEYFRAME]
    assert [(p.seq, p.flags) for p in keyframes] == [(0, Flags.NONE), (5, Flags.REFRESH)]
    frames, decoder = _run(header, chunks + [chunks[5]])  # a repeated keyframe is stale
    assert [f.seq for f in frames if f.keyframe is not None] == [0, 5]
    assert abs(frames[5].keyframe.astype(int) - smooth_image[::-1]).mean() < 3
    assert decoder.stats.keyframes == 3 and decoder.drops[DropReason.STALE] == 2  # keyframe + its motion


def test_keyframes_waiting_together_each_reach_their_frame(header, motions, smooth_image):
    """A whole file (or a burst within the reorder window) brings several keyframes before any of
    their frames is due: each must still come out with its own frame."""
    encoder = Encoder(header)
    chunks = []
    for n, m in enumerate(motions[:12]):
        if n in (0, 4, 8):
            encoder.request_keyframe(np.roll(smooth_image, 40 * n, axis=1))
        chunks.append(encoder.encode(m, 40 * n))
    decoder = Decoder(header)
    frames = decoder.push(b"".join(chunks)) + decoder.flush()
    assert [f.seq for f in frames if f.keyframe is not None] == [0, 4, 8]
    for n in (0, 4, 8):
        assert abs(frames[n].keyframe.astype(int) - np.roll(smooth_image, 40 * n, axis=1)).mean() < 3


def test_late_keyframe_attaches_to_the_next_frame(header, motions, smooth_image):
    encoder = Encoder(header)
    encoder.request_keyframe(smooth_image)
    first = list(scan_packets(encoder.encode(motions[0], 0), header.framing))
    later = [encoder.encode(m, 40 * n) for n, m in enumerate(motions[1:4], 1)]
    frames, _ = _run(header, [header.framing.frame(first[1]), later[0], header.framing.frame(first[0]), *later[1:]])
    assert [f.keyframe is not None for f in frames] == [False, False, True, False]


def test_lost_frames_get_extrapolated_timestamps_and_flush_conceals_the_tail(header, motions, encode_frames):
    chunks, _ = encode_frames(header, motions[:10])
    decoder = Decoder(header)
    frames = [f for chunk in chunks[:3] + chunks[6:8] for f in decoder.push(chunk)] + decoder.flush(end_seq=12)
    assert [f.seq for f in frames] == list(range(12))
    assert [f.concealed for f in frames] == [False] * 3 + [True] * 9
    assert [f.timestamp_ms for f in frames] == [40 * n for n in range(12)]


def test_sequence_numbers_wrap(motions, encode_frames):
    header = StreamHeader(compact=False)  # the legacy 16-bit seq; compact streams: test_compact.py
    chunks, expected = encode_frames(header, motions[:20])
    relabelled = []
    for n, chunk in enumerate(chunks):
        packet = parse_packet(chunk)
        relabelled.append(dataclasses.replace(packet, seq=(65530 + n) % 65536).to_bytes())
    frames, decoder = _run(header, relabelled, first_seq=65530)
    assert [f.seq for f in frames] == list(range(65530, 65550)) and not decoder.drops
    np.testing.assert_array_equal(_vectors(frames), expected)
    assert unwrap_seq(3, 65534) == 65539 and unwrap_seq(65534, 65539) == 65534


def test_joining_a_running_stream_waits_for_an_intra_frame(motions, encode_frames):
    header = StreamHeader(compact=False)  # legacy packets place every frame; compact ones join at an anchor
    chunks, expected = encode_frames(header, motions[:60])
    frames, _ = _run(header, chunks[30:], first_seq=None)
    assert frames[0].seq == 30 and [f.seq for f in frames if f.concealed] == list(range(30, 50))
    assert not frames[0].motion.to_vector().any()  # neutral until the first intra frame
    np.testing.assert_array_equal(_vectors(frames)[20:], expected[50:])


def test_conceal_holds_or_extrapolates_with_damping():
    last, previous = np.array([2.0, 1.0]), np.array([1.0, 1.0])
    np.testing.assert_array_equal(conceal(previous, last, 0, damping=0.0), last)
    np.testing.assert_array_equal(conceal(previous, last, 0, damping=0.5), [2.5, 1.0])
    np.testing.assert_array_equal(conceal(None, last, 0), last)
    assert conceal(None, None, 2).shape == (12,)


def test_encoder_intra_schedule_and_input_checks(header, motions, smooth_image):
    encoder = Encoder(dataclasses.replace(header, intra_interval=4))
    intra = []
    for n, motion in enumerate(motions[:10]):
        if n == 6:
            encoder.request_intra()
        intra.append(Flags.INTRA in parse_packet(encoder.encode(motion, n), header.framing).flags)
    assert intra == [True, False, False, False, True, False, True, False, False, False]
    with pytest.raises(ValueError, match="K=15"):
        encoder.encode(dataclasses.replace(motions[0], exp=np.zeros((3, 3))), 0)
    with pytest.raises(ValueError, match="finite"):
        encoder.encode(dataclasses.replace(motions[0], yaw=float("nan")), 0)
    with pytest.raises(ValueError, match="header says"):
        encoder.request_keyframe(smooth_image[:128])


def test_stream_stats_split_rates_by_packet_kind(header, motions, smooth_image):
    encoder = Encoder(header)
    encoder.request_keyframe(smooth_image)
    sent = sum(len(encoder.encode(m, 40 * n)) for n, m in enumerate(motions[:50]))
    stats = encoder.stats
    assert (stats.keyframes, stats.intra_frames, stats.predicted_frames, stats.seconds) == (1, 2, 48, 2.0)
    assert stats.keyframe_bytes + stats.intra_bytes + stats.predicted_bytes == sent
    assert stats.kbps() == pytest.approx(8 * sent / 2.0 / 1000)
    assert stats.kbps(keyframes=False) == pytest.approx(8 * (sent - stats.keyframe_bytes) / 2.0 / 1000)
