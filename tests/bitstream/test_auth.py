"""Authenticated streams: a third party without the call's key cannot inject, alter or replay packets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facecodec.bitstream import Decoder, DropReason, Encoder, Packet, StreamHeader, decode_stream, scan_packets
from facecodec.bitstream.auth import TAG_BYTES, new_key
from facecodec.bitstream.synthetic import random_walk_motion

HEADER = StreamHeader(authenticated=True, compact=False)  # legacy tags; compact ones: test_compact.py
PLAIN = StreamHeader(compact=False)


def _encode(motions, key, image=None, header=HEADER):
    encoder = Encoder(header, key=key)
    if image is not None:
        encoder.request_keyframe(image)
    return [encoder.encode(m, round(n * header.frame_ms)) for n, m in enumerate(motions)]


def test_the_header_says_so_and_plain_streams_are_unchanged():
    parsed, _ = StreamHeader.parse(HEADER.to_bytes())
    assert parsed.authenticated and HEADER.to_bytes()[4] == 2
    assert PLAIN.to_bytes()[4] == 1 and not StreamHeader.parse(PLAIN.to_bytes())[0].authenticated
    both = StreamHeader(authenticated=True, face_basis=9, num_face=4, compact=False)
    assert StreamHeader.parse(both.to_bytes())[0] == both


def test_a_keyed_call_decodes_exactly_and_costs_eight_bytes_a_packet(smooth_image):
    key, motions = new_key(), random_walk_motion(60, 15, seed=1)
    chunks = _encode(motions, key, smooth_image)
    plain = _encode(motions, None, smooth_image, PLAIN)
    assert sum(map(len, chunks)) - sum(map(len, plain)) == TAG_BYTES * (len(motions) + 1)
    stream = decode_stream(HEADER.to_bytes() + b"".join(chunks), key=key)
    reference = decode_stream(PLAIN.to_bytes() + b"".join(plain))
    assert not stream.drops and stream.frames[0].keyframe is not None
    np.testing.assert_array_equal([f.motion.to_vector() for f in stream.frames],
                                  [f.motion.to_vector() for f in reference.frames])


def test_keys_are_required_on_both_ends():
    with pytest.raises(ValueError, match="packet key"):
        Encoder(HEADER)
    with pytest.raises(ValueError, match="packet key"):
        Decoder(HEADER)
    with pytest.raises(ValueError, match="authenticated"):
        Encoder(PLAIN, key=new_key())
    with pytest.raises(ValueError, match="16 bytes"):
        Decoder(HEADER, key=b"short")


def test_injected_altered_and_replayed_packets_are_dropped_and_counted():
    key, motions = new_key(), random_walk_motion(80, 15, seed=2)
    chunks = _encode(motions, key)
    good = decode_stream(HEADER.to_bytes() + b"".join(chunks), key=key)
    # a stranger's packets, framed and CRC'd correctly, with its own key
    stranger = _encode(random_walk_motion(80, 15, seed=3), new_key())
    mixed = [stranger[i] if i % 3 == 1 else c for i, c in enumerate(chunks)]
    decoder = Decoder(HEADER, key=key)
    frames = [f for c in mixed for f in decoder.push(c)] + decoder.flush(end_seq=len(chunks))
    assert decoder.drops[DropReason.FORGED] == len(chunks[1::3])
    assert [f.seq for f in frames] == list(range(80))
    genuine = ~np.array([f.concealed for f in frames])
    np.testing.assert_array_equal(np.stack([f.motion.to_vector() for f in frames])[genuine],
                                  np.stack([f.motion.to_vector() for f in good.frames])[genuine])
    # one altered body byte, CRC recomputed: the tag no longer verifies
    (packet,) = scan_packets(chunks[5])
    body = bytearray(packet.body)
    body[1] ^= 0x40
    decoder = Decoder(HEADER, key=key)
    for c in chunks[:5]:
        decoder.push(c)
    decoder.push(dataclasses.replace(packet, body=bytes(body)).to_bytes())
    assert decoder.drops[DropReason.FORGED] == 1
    # a replay after the 16-bit sequence number wrapped: same wire seq, another frame number
    replayed = Decoder(HEADER, key=key, first_seq=65536)
    replayed.push(chunks[0])
    assert replayed.drops[DropReason.FORGED] == 1


def test_tags_do_not_leak_into_a_plain_reader():
    """A reader without the key sees a version-2 header saying the packets are tagged, and refuses."""
    chunks = _encode(random_walk_motion(3, 15), new_key())
    with pytest.raises(ValueError, match="packet key"):
        decode_stream(HEADER.to_bytes() + b"".join(chunks))
    assert isinstance(Packet, type)


def test_keys_round_trip_through_files_and_the_cli(tmp_path, caplog):
    import logging
    import stat

    from facecodec.bitstream.auth import read_key, write_key
    from facecodec.cli import main

    path = tmp_path / "call.key"
    assert main(["keygen", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(read_key(path)) == 32
    with caplog.at_level(logging.ERROR):
        assert main(["keygen", str(path)]) == 2  # never overwritten
    assert "not overwritten" in caplog.text
    raw = tmp_path / "raw.key"
    raw.write_bytes(bytes(range(32)))
    assert read_key(raw) == bytes(range(32))
    assert write_key(tmp_path / "again.key", bytes(16)) == bytes(16) == read_key(tmp_path / "again.key")
