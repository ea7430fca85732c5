import pytest

from facecodec.bitstream import (ChecksumError, Flags, FramingError, InvalidFieldError, Packet, PacketType,
                                 TruncatedError, parse_packet, scan_packets)


def _packet(seq=7, body=b"\x18abcd", flags=Flags.INTRA) -> Packet:
    return Packet(PacketType.MOTION, seq, 123456, flags, body)


def test_round_trip_and_sizes():
    packet = _packet()
    data = packet.to_bytes()
    assert len(data) == packet.framed_size == 1 + 1 + 2 + 4 + 5 + 4
    assert data[0] == len(data) - 1 and data[1] == 0x02 | 0x04
    assert parse_packet(data) == packet


def test_long_body_uses_a_multi_byte_length_and_wraps_seq_and_timestamp():
    packet = Packet(PacketType.KEYFRAME, 65536 + 5, 2**32 + 9, Flags.REFRESH, bytes(300))
    parsed = parse_packet(packet.to_bytes())
    assert packet.framed_size == 2 + 11 + 300
    assert (parsed.seq, parsed.timestamp_ms, parsed.flags) == (5, 9, Flags.REFRESH)


@pytest.mark.parametrize(("edit", "error", "message"), [
    (lambda d: d[:-1], TruncatedError, "runs past the end"),
    (lambda d: d[:3] + bytes([d[3] ^ 0x10]) + d[4:], ChecksumError, "crc32"),
    (lambda d: bytes([3]) + d[1:], InvalidFieldError, "length 3 < minimum 11"),
    (lambda d: d + b"x", InvalidFieldError, "trailing"),
    (lambda d: b"\xff\xff\xff\xff\x01", InvalidFieldError, "varint longer"),
])
def test_parse_errors_name_the_problem(edit, error, message):
    with pytest.raises(error, match=message):
        parse_packet(edit(_packet().to_bytes()))


def test_reserved_bits_are_invalid_even_with_a_good_crc():
    bad = Packet(PacketType.MOTION, 1, 2, Flags(0x40), b"")  # reserved bit 6 set
    with pytest.raises(InvalidFieldError, match="reserved"):
        parse_packet(bad.to_bytes())


def test_scanner_resynchronises_after_garbage():
    packets = [_packet(seq=n) for n in range(3)]
    data = b"junk!" + packets[0].to_bytes() + b"\x00" * 7 + packets[1].to_bytes()[:-2] + packets[2].to_bytes()
    items = list(scan_packets(data))
    assert [type(i) for i in items] == [FramingError, Packet, FramingError, Packet]
    assert [i.seq for i in items if isinstance(i, Packet)] == [0, 2]
    assert "skipped 5 bytes" in str(items[0]) and "skipped 22 bytes" in str(items[2])  # 7 zeros + 15 of 17
