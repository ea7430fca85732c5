"""Compact packets (stream version 3): sizes, pinned bytes, implied timestamps, tags in place of the CRC,
resynchronisation, loss, and the legacy versions still decoding beside them."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

from facecodec.bitstream import (ChecksumError, Decoder, DropReason, Encoder, Flags, ForgedError, Framing,
                                 FramingError, Packet, PacketType, StreamHeader, decode_stream, parse_packet,
                                 scan_packets)
from facecodec.bitstream.auth import new_key
from facecodec.bitstream.packet import (ANCHOR, ANCHOR_SEQ_MODULUS, SHORT_SEQ_MODULUS, TAG_BYTES,
                                        implied_timestamp)
from facecodec.bitstream.synthetic import random_walk_motion

COMPACT = Framing(compact=True)


def _vectors(frames) -> np.ndarray:
    return np.stack([f.motion.to_vector() for f in frames])


def _encode(header, motions, *, key=None, image=None, times=None):
    encoder = Encoder(header, key=key)
    if image is not None:
        encoder.request_keyframe(image)
    times = times if times is not None else [round(n * header.frame_ms) for n in range(len(motions))]
    return [encoder.encode(m, t) for m, t in zip(motions, times)]


def test_a_short_packet_costs_four_bytes_of_framing_and_its_bytes_are_pinned():
    packet = Packet(PacketType.MOTION, 300, None, Flags.NONE, b"\x18abcd")
    data = packet.to_compact_bytes()
    assert len(data) == 1 + 1 + 1 + 5 + 2  # length, head, seq, body, CRC-16
    assert data.hex() == "0902" "2c" "1861626364" "987e"  # changes only with the format
    parsed = parse_packet(data, COMPACT)
    assert parsed == dataclasses.replace(packet, seq=300 % SHORT_SEQ_MODULUS, seq_modulus=SHORT_SEQ_MODULUS)
    assert parsed.wire_size == len(data) == parsed.framed_size


def test_an_anchor_carries_the_frame_number_and_timestamp_and_long_packets_a_crc32():
    packet = Packet(PacketType.KEYFRAME, 70_000, 2**32 + 9, Flags.REFRESH, bytes(300))
    data = packet.to_compact_bytes()
    assert data[2] == PacketType.KEYFRAME | Flags.REFRESH | ANCHOR
    assert len(data) == 2 + 1 + 3 + 1 + 300 + 4  # 2-byte length, head, varint seq, varint timestamp, CRC32
    assert zlib.crc32(data[:-4]) == int.from_bytes(data[-4:], "big")
    parsed = parse_packet(data, COMPACT)
    assert (parsed.seq, parsed.timestamp_ms, parsed.seq_modulus) == (70_000, 9, ANCHOR_SEQ_MODULUS)


@pytest.mark.parametrize(("edit", "error"), [
    (lambda d: d[:-1], FramingError.__mro__[1]),  # any BitstreamError: truncated
    (lambda d: d[:3] + bytes([d[3] ^ 0x10]) + d[4:], ChecksumError),
])
def test_damage_is_caught(edit, error):
    data = Packet(PacketType.MOTION, 5, None, Flags.INTRA, b"\x18abcd").to_compact_bytes()
    with pytest.raises(error):
        parse_packet(edit(data), COMPACT)


def test_reserved_bits_are_invalid_even_with_a_good_crc():
    bad = Packet(PacketType.MOTION, 1, None, Flags(0x40), b"\x18")
    with pytest.raises(Exception, match="reserved"):
        parse_packet(bad.to_compact_bytes(), COMPACT)


def test_scanner_resynchronises_after_garbage():
    packets = [Packet(PacketType.MOTION, n, None, Flags.NONE, b"\x18abcd").to_compact_bytes() for n in range(3)]
    data = b"junk!" + packets[0] + b"\x00" * 7 + packets[1][:-2] + packets[2]
    items = list(scan_packets(data, COMPACT))
    assert [type(i) for i in items] == [FramingError, Packet, FramingError, Packet]
    assert [i.seq for i in items if isinstance(i, Packet)] == [0, 2]


def test_a_call_is_a_third_of_the_legacy_framing_and_decodes_identically(motions, smooth_image):
    compact, legacy = StreamHeader(), StreamHeader(compact=False)
    new, old = _encode(compact, motions, image=smooth_image), _encode(legacy, motions, image=smooth_image)
    a, b = decode_stream(compact.to_bytes() + b"".join(new)), decode_stream(legacy.to_bytes() + b"".join(old))
    np.testing.assert_array_equal(_vectors(a.frames), _vectors(b.frames))
    assert [f.timestamp_ms for f in a.frames] == [f.timestamp_ms for f in b.frames] == [40 * n for n in range(500)]
    assert not a.drops and a.stats.frames == 500
    # 480 short packets save 7 of their 12 framing bytes and most their qscale byte, all the range coder's
    # word padding (≈ 1.8 bytes); 20 intra anchors save less (seq and timestamp varints)
    saved = sum(map(len, old)) - sum(map(len, new))
    assert 480 * (12 - 5 + 1 + 1) < saved < 500 * (12 - 5 + 1 + 3)
    assert a.stats.kbps(keyframes=False) < 0.72 * b.stats.kbps(keyframes=False)  # ≈ 4.4 against ≈ 6.3 kbit/s


def test_timestamps_are_implied_on_the_grid_and_sent_after_a_gap(motions):
    header = StreamHeader(intra_interval=100)
    times = [40 * n for n in range(30)] + [40 * n + 500 for n in range(30, 60)]  # a 0.5-s stall at frame 30
    chunks = _encode(header, motions[:60], times=times)
    anchors = [n for n, c in enumerate(chunks) if parse_packet(c, COMPACT).timestamp_ms is not None]
    assert anchors == [0, 30]
    frames = decode_stream(header.to_bytes() + b"".join(chunks)).frames
    assert [f.timestamp_ms for f in frames] == times
    jitter = [100 + 40 * n + (n % 3 - 1) * 7 for n in range(60)]  # ±7 ms capture jitter: within half a frame
    frames = decode_stream(header.to_bytes() + b"".join(_encode(header, motions[:60], times=jitter))).frames
    assert [f.timestamp_ms for f in frames] == [93 + 40 * n for n in range(60)]  # the grid through frame 0


def test_ntsc_rates_stay_within_a_millisecond_without_anchors(motions):
    header = StreamHeader(fps_num=30000, fps_den=1001, intra_interval=1000)
    chunks = _encode(header, motions[:300])
    assert sum(parse_packet(c, COMPACT).timestamp_ms is not None for c in chunks) == 1
    frames = decode_stream(header.to_bytes() + b"".join(chunks)).frames
    assert max(abs(f.timestamp_ms - round(n * header.frame_ms)) for n, f in enumerate(frames)) <= 1
    assert implied_timestamp((10, 2**32 - 5), 13, 25, 1) == 115


def test_losing_an_anchor_after_a_gap_costs_timestamps_until_the_next_intra_only(motions, encode_frames):
    header = StreamHeader()
    times = [40 * n for n in range(10)] + [40 * n + 400 for n in range(10, 60)]
    chunks = _encode(header, motions[:60], times=times)
    decoder = Decoder(header)
    frames = [f for n, c in enumerate(chunks) if n != 10 for f in decoder.push(c)] + decoder.flush()
    assert [f.seq for f in frames] == list(range(60))
    assert [f.timestamp_ms for f in frames][25:] == times[25:]  # the intra anchor at 25 restores them


def test_joining_a_compact_stream_starts_at_an_anchor(motions, encode_frames):
    header = StreamHeader()
    chunks, expected = encode_frames(header, motions[:60])
    decoder = Decoder(header, first_seq=None)
    frames = [f for c in chunks[30:] for f in decoder.push(c)] + decoder.flush()
    assert frames[0].seq == 50 and not any(f.concealed for f in frames)
    np.testing.assert_array_equal(_vectors(frames), expected[50:])
    assert decoder.drops[DropReason.UNSYNCED] == 20


def test_short_seqs_wrap_and_unwrap_across_a_long_call(encode_frames):
    header = StreamHeader(intra_interval=400)  # 3 wraps of the 8-bit seq between intra anchors
    motions = random_walk_motion(1000, 15, seed=4)
    chunks, expected = encode_frames(header, motions)
    decoder = Decoder(header, reorder_window=3)
    order = list(range(1000))
    for n in range(5, 995, 50):  # swaps within the reorder window
        order[n], order[n + 2] = order[n + 2], order[n]
    frames = [f for n in order for f in decoder.push(chunks[n])] + decoder.flush()
    assert [f.seq for f in frames] == list(range(1000)) and not decoder.drops
    np.testing.assert_array_equal(_vectors(frames), expected)


def test_tags_replace_the_crc(motions, smooth_image):
    key = new_key()
    keyed, plain = StreamHeader(authenticated=True), StreamHeader()
    tagged = _encode(keyed, motions[:60], key=key, image=smooth_image)
    clean = _encode(plain, motions[:60], image=smooth_image)
    assert sum(map(len, tagged)) - sum(map(len, clean)) == (TAG_BYTES - 2) * 60 + (TAG_BYTES - 4)
    a = decode_stream(keyed.to_bytes() + b"".join(tagged), key=key)
    b = decode_stream(plain.to_bytes() + b"".join(clean))
    assert not a.drops
    np.testing.assert_array_equal(_vectors(a.frames), _vectors(b.frames))
    with pytest.raises(ValueError, match="packet key"):
        decode_stream(keyed.to_bytes() + b"".join(tagged))


def test_forged_altered_and_replayed_compact_packets_are_dropped(motions):
    key, header = new_key(), StreamHeader(authenticated=True)
    chunks = _encode(header, motions[:80], key=key)
    stranger = _encode(header, random_walk_motion(80, 15, seed=3), key=new_key())
    mixed = [stranger[i] if i % 3 == 1 else c for i, c in enumerate(chunks)]
    decoder = Decoder(header, key=key)
    frames = [f for c in mixed for f in decoder.push(c)] + decoder.flush(end_seq=80)
    assert decoder.drops[DropReason.FORGED] == len(chunks[1::3]) and [f.seq for f in frames] == list(range(80))
    altered = bytearray(chunks[5])
    altered[4] ^= 0x40
    decoder = Decoder(header, key=key)
    for c in chunks[:5] + [bytes(altered)]:
        decoder.push(c)
    assert decoder.drops[DropReason.FORGED] == 1
    replayed = Decoder(header, key=key, first_seq=256)  # frame 0's 8-bit seq again, 256 frames on
    replayed.push(chunks[1])
    assert replayed.drops[DropReason.FORGED] == 1
    late = Decoder(header, key=key, first_seq=65536)  # an anchor from the start of the call
    late.push(chunks[0])
    assert late.drops[DropReason.STALE] == 1 and not late.drops[DropReason.FORGED]
    assert isinstance(next(scan_packets(bytes(altered), Framing(True, lambda *a: False))), ForgedError)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_five_percent_loss_with_damage_resynchronises_at_the_next_intra(motions, encode_frames, seed):
    header = StreamHeader()
    chunks, expected = encode_frames(header, motions)
    rng = np.random.default_rng(seed)
    lost = rng.random(len(chunks)) < 0.05
    pushes = [c if rng.random() > 0.05 else b"\x00" * 3 + c for c, gone in zip(chunks, lost) if not gone]
    decoder = Decoder(header)
    frames = [f for data in pushes for f in decoder.push(data)] + decoder.flush(end_seq=len(chunks))
    assert [f.seq for f in frames] == list(range(500))
    synced, should_conceal = False, []
    for n, gone in enumerate(lost):
        synced = not gone and (n % header.intra_interval == 0 or synced)
        should_conceal.append(not synced)
    assert [f.concealed for f in frames] == should_conceal
    good = ~np.array(should_conceal)
    np.testing.assert_array_equal(_vectors(frames)[good], expected[good])


def test_versions_1_2_and_3_decode_the_same_call(smooth_image):
    motions = random_walk_motion(50, 15, seed=9, num_face=16)
    plain = random_walk_motion(50, 15, seed=9)
    v1, v3 = StreamHeader(compact=False), StreamHeader()
    v2, v3e = StreamHeader(face_basis=5, num_face=16, compact=False), StreamHeader(face_basis=5, num_face=16)
    assert [h.version for h in (v1, v2, v3, v3e)] == [1, 2, 3, 3]
    for old, new, m in ((v1, v3, plain), (v2, v3e, motions)):
        a = decode_stream(old.to_bytes() + b"".join(_encode(old, m, image=smooth_image)))
        b = decode_stream(new.to_bytes() + b"".join(_encode(new, m, image=smooth_image)))
        assert a.header.version == old.version and b.header == new
        np.testing.assert_array_equal(_vectors(a.frames), _vectors(b.frames))


def test_the_qscale_rides_on_intra_packets_and_changes_only(motions):
    header = StreamHeader()
    chunks = _encode(header, motions[:60])
    packets = [parse_packet(c, COMPACT) for c in chunks]
    carried = [n for n, p in enumerate(packets) if Flags.QSCALE in p.flags]
    assert carried == [0, 25, 50]  # the intra packets; the qscale never changed
    stripped = dataclasses.replace(packets[25], flags=Flags.INTRA, body=packets[25].body[1:])
    decoder = Decoder(header)
    for data in chunks[:25] + [stripped.to_compact_bytes()]:
        decoder.push(data)
    assert decoder.drops[DropReason.INVALID] == 1  # an intra packet must say its qscale


def test_staged_contexts_round_trip_exactly():
    from facecodec.bitstream.entropy import Staged, class_of, decode_levels, encode_levels

    rng = np.random.default_rng(3)
    for _ in range(200):
        levels = np.rint(rng.laplace(size=30) * rng.uniform(0.1, 6)).astype(np.int64)
        staged = Staged(class_of(np.full(6, 1.0)), lambda b: class_of(np.full(24, 0.5 + b.sum())))
        data = encode_levels(levels, staged, trim=True)
        np.testing.assert_array_equal(decode_levels(data, staged, padded=True), levels)


@pytest.mark.parametrize("dead_zone", [0.2, 0.35])
def test_a_dead_zone_saves_bits_and_the_decoder_follows_the_encoder(motions, encode_frames, dead_zone):
    header = StreamHeader()
    plain, _ = encode_frames(header, motions[:200])
    chunks, expected = encode_frames(header, motions[:200], dead_zone=dead_zone)
    assert sum(map(len, chunks)) < 0.97 * sum(map(len, plain))
    frames = decode_stream(header.to_bytes() + b"".join(chunks)).frames
    np.testing.assert_array_equal(_vectors(frames), expected)
    error = np.abs(np.stack([m.to_vector() for m in motions[:200]]).astype(np.float64) - _vectors(frames))
    assert (error <= (0.5 + dead_zone) * header.steps.expand(15) * (1 + 1e-6) + 1e-6).all()
    with pytest.raises(ValueError, match="dead zone"):
        Encoder(header, dead_zone=0.5)
