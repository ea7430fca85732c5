import dataclasses
import struct
import zlib

import pytest

from facecodec.bitstream import (BadMagicError, BitstreamError, ChecksumError, InvalidFieldError, PerField,
                                 StreamHeader, TruncatedError, UnsupportedVersionError)


def _resealed(data: bytes) -> bytes:
    """Header bytes with the CRC recomputed after an edit."""
    return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4]))


def test_round_trip_with_trailing_packets():
    header = StreamHeader("vox256", 15, 512, 384, 30000, 1001, 60, PerField(0.25, 0.003, 0.002))
    data = header.to_bytes()
    assert len(data) == (4 + 1 + 2) + (1 + 6) + 1 + 4 + 4 + 2 + 24 + 1 + 4  # version 3: + features
    parsed, consumed = StreamHeader.parse(data + b"packets follow")
    assert parsed == header and consumed == len(data)
    assert float(parsed.fps) == pytest.approx(29.97, abs=1e-3) and parsed.frame_ms == pytest.approx(33.367, abs=1e-3)


def test_every_truncation_is_a_truncated_error():
    data = StreamHeader().to_bytes()
    for size in range(len(data)):
        with pytest.raises(TruncatedError, match="header"):
            StreamHeader.parse(data[:size])


@pytest.mark.parametrize(("edit", "error", "message"), [
    (lambda d: b"RIFF" + d[4:], BadMagicError, "magic"),
    (lambda d: d[:4] + b"\x07" + d[5:], UnsupportedVersionError, "version 7"),
    (lambda d: d[:-5] + bytes([d[-5] ^ 1]) + d[-4:], ChecksumError, "crc32"),
])
def test_damaged_header_names_what_is_wrong(edit, error, message):
    with pytest.raises(error, match=message):
        StreamHeader.parse(edit(StreamHeader().to_bytes()))


def test_every_single_bit_flip_is_detected():
    data = StreamHeader().to_bytes()
    for bit in range(8 * len(data)):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BitstreamError):
            StreamHeader.parse(bytes(damaged))


def test_out_of_range_field_with_valid_crc_is_an_invalid_field_error():
    data = bytearray(StreamHeader(preset="lite").to_bytes())
    data[7 + 1 + 4] = 0  # num_kp, after body_length and the 4-char preset
    with pytest.raises(InvalidFieldError, match="num_kp"):
        StreamHeader.parse(_resealed(bytes(data)))


@pytest.mark.parametrize(("field", "value"), [("num_kp", 0), ("num_kp", 256), ("preset", ""), ("preset", "x" * 33),
                                              ("fps_den", 0), ("intra_interval", 0), ("height", 70000)])
def test_constructor_rejects_out_of_range_fields(field, value):
    with pytest.raises(InvalidFieldError, match=field):
        dataclasses.replace(StreamHeader(), **{field: value})


def test_bad_steps_are_rejected():
    with pytest.raises(InvalidFieldError, match="steps"):
        StreamHeader(steps=PerField(angle=0.0, t=0.004, exp=0.004))
