"""Crafted streams from the security review (issue 22): each once cost the receiver seconds, gigabytes
or thousands of frames; each must now cost a bounded amount and be reported."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from facecodec.bitstream import (Decoder, DropReason, Encoder, Flags, Motion, Packet, PacketType, StreamHeader,
                                 decode_stream, scan_packets)
from facecodec.bitstream.errors import FramingError, InvalidFieldError
from facecodec.bitstream.header import MAX_SIDE
from facecodec.bitstream.quant import LIMITS, PerField


def _motion_packets(header: StreamHeader, seqs: list[int], intra: bool) -> list[bytes]:
    """Real MOTION packets re-labelled with the given sequence numbers (valid CRCs: a forger's)."""
    encoder = Encoder(header)
    chunk = encoder.encode(Motion.neutral(header.num_kp), 0)
    (packet,) = list(scan_packets(chunk, header.framing))
    flags = Flags.INTRA if intra else Flags.NONE
    return [Packet(PacketType.MOTION, s % 65536, 40 * i, flags, packet.body).to_bytes() for i, s in enumerate(seqs)]


@pytest.mark.parametrize("intra", [False, True])
def test_sequence_jumps_cannot_make_the_decoder_conceal_thousands_of_frames(intra):
    header = StreamHeader(compact=False)  # crafted 16-bit seqs (compact anchors: test_compact.py)
    seqs = [(32767 * i) % 65536 for i in range(1, 21)]  # each packet claims a frame 32,767 ahead
    decoder = Decoder(header, reorder_window=8)
    frames = [f for data in _motion_packets(header, seqs, intra) for f in decoder.push(data)] + decoder.flush()
    assert len(frames) <= 20 * (decoder.reorder_window + 1)  # was 655,341
    if intra:  # an intra packet re-joins the stream; the skipped frame numbers are reported, not drawn
        assert sum(f.skipped for f in frames) > 50_000
    else:  # half of the jumps land ahead (dropped: too far), half behind (stale)
        assert decoder.drops[DropReason.TOO_FAR] >= 10
        assert decoder.drops[DropReason.TOO_FAR] + decoder.drops[DropReason.STALE] == 20


def test_a_tiny_stream_file_decodes_to_few_frames():
    header = StreamHeader(compact=False)
    data = header.to_bytes() + b"".join(_motion_packets(header, [5, 40_000], intra=False))
    assert len(data) < 160
    assert len(decode_stream(data).frames) <= 8 + 1 + 6  # the file reader's window, not 32,768 frames


def _tiny_keyframe(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 100, 50)).save(buffer, format="WEBP", quality=50)
    return bytes([1]) + buffer.getvalue()


def test_thousands_of_keyframes_are_not_all_held():
    header = StreamHeader(height=64, width=64, compact=False)
    body = _tiny_keyframe(64)
    keyframes = [Packet(PacketType.KEYFRAME, s, 0, Flags.REFRESH, body).to_bytes() for s in range(1, 5001)]
    decoder = Decoder(header)
    tracemalloc.start()
    for data in keyframes:
        decoder.push(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20 << 20, peak  # was ≈ 1 GB: now at most two decoded pictures wait
    assert decoder.drops[DropReason.STALE] + decoder.drops[DropReason.TOO_FAR] >= 4990


def test_huge_pictures_are_refused_before_decoding():
    with pytest.raises(InvalidFieldError, match="height"):
        StreamHeader(height=16383, width=10000)
    assert StreamHeader(height=MAX_SIDE, width=MAX_SIDE).height == MAX_SIDE


def test_resynchronisation_work_is_bounded():
    # every 3 bytes claim a 16,383-byte MOTION packet: checking each claim's CRC would cost ≈ 6 GB of summing
    crafted = b"\xff\x7f\x02" * (1 << 18)
    items = list(scan_packets(crafted))
    assert all(isinstance(i, FramingError) for i in items)
    assert "work limit" in str(items[-1])
    huge = b"\xff\xff\xff\x7f\x01" + bytes(64)  # a 2^28-byte claim: refused by length, before any CRC
    assert all(isinstance(i, FramingError) for i in scan_packets(huge))


def test_quantiser_steps_beyond_the_limits_are_refused():
    with pytest.raises(InvalidFieldError, match="step for angle"):
        StreamHeader(steps=PerField(angle=1e308, t=0.004, exp=0.004))
    good = StreamHeader().to_bytes()
    forged = bytearray(good)
    forged[-28:-20] = np.array([1e308], ">f8").tobytes()  # step_angle, CRC left stale
    with pytest.raises(Exception):
        decode_stream(bytes(forged))


def test_forged_motion_payloads_decode_within_the_limits_or_are_dropped():
    header = StreamHeader()
    rng = np.random.default_rng(5)
    chunk = Encoder(header).encode(Motion.neutral(15), 0)
    (packet,) = list(scan_packets(chunk, header.framing))
    for _ in range(300):
        body = bytes([int(rng.integers(0, 48))]) + rng.bytes(int(rng.integers(1, 400)))
        forged = header.framing.frame(Packet(PacketType.MOTION, 0, 0, Flags.INTRA, body))
        decoder = Decoder(header)
        for frame in decoder.push(forged) + decoder.flush():
            vector = frame.motion.to_vector()
            assert np.isfinite(vector).all()
            assert (np.abs(vector) <= LIMITS.expand(15) * 9).all()  # a step (≤ 7.5 × base) past the limits at most
    assert packet.type == PacketType.MOTION
