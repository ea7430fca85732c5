"""Packet framing: length prefix, fixed fields, body, CRC32; and a resynchronising scanner.

The byte layout is the "Packet" table in the `facecodec.bitstream` docstring.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import zlib
from collections.abc import Iterator

from .errors import BitstreamError, ChecksumError, FramingError, InvalidFieldError, TruncatedError

SEQ_MODULUS = 1 << 16
TIMESTAMP_MODULUS = 1 << 32
MAX_PACKET_LENGTH = (1 << 28) - 1  # what a 4-byte varint holds
# The largest packet a reader believes, by type, checked before any checksum: a MOTION packet holds
# a few hundred numbers; a KEYFRAME one picture (and a face). Longer claims are damage, not packets,
# and checking their CRC would cost the resynchronising scanner O(claim) per byte it steps.
MAX_LENGTH = {1: 4 << 20, 2: 16 << 10}  # by PacketType value
SCAN_WORK_FACTOR = 16  # a scan checksums at most this × its input + 1 MiB before giving up the rest
_FIELDS = struct.Struct(">BHI")  # type_flags, seq, timestamp_ms
_CRC = struct.Struct(">I")
MIN_LENGTH = _FIELDS.size + _CRC.size


class PacketType(enum.IntEnum):
    KEYFRAME = 1  # source image (first, or a refresh mid-call)
    MOTION = 2  # one frame's motion, intra or predicted


class Flags(enum.IntFlag):
    NONE = 0
    INTRA = 0x04  # MOTION: absolute values, decodable without history
    REFRESH = 0x08  # KEYFRAME: replaces an earlier source image


@dataclasses.dataclass(frozen=True)
class Packet:
    """One parsed packet; `seq` and `timestamp_ms` are the wrapped wire values."""

    type: PacketType
    seq: int
    timestamp_ms: int
    flags: Flags
    body: bytes

    @property
    def framed_size(self) -> int:
        """Size in bytes of `to_bytes()` (what the packet costs on the link)."""
        length = _FIELDS.size + len(self.body) + _CRC.size
        return len(_varint(length)) + length

    def to_bytes(self) -> bytes:
        """Framed packet: varint length, fields, body, CRC32."""
        if _FIELDS.size + len(self.body) + _CRC.size > MAX_PACKET_LENGTH:
            raise ValueError(f"packet body of {len(self.body)} bytes exceeds the {MAX_PACKET_LENGTH}-byte limit")
        fields = _FIELDS.pack(int(self.type) | int(self.flags), self.seq % SEQ_MODULUS,
                              self.timestamp_ms % TIMESTAMP_MODULUS)
        framed = _varint(len(fields) + len(self.body) + _CRC.size) + fields + self.body
        return framed + _CRC.pack(zlib.crc32(framed))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the LEB128 varint at `pos` (at most 4 bytes)."""
    value = 0
    for i in range(4):
        if pos + i >= len(data):
            raise TruncatedError(f"packet length: varint runs past the end ({len(data)} bytes)")
        value |= (data[pos + i] & 0x7F) << (7 * i)
        if not data[pos + i] & 0x80:
            return value, pos + i + 1
    raise InvalidFieldError("packet length: varint longer than 4 bytes")


def _frame_end(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(start of fields, end of packet) of a packet at `pos` whose length and CRC check out."""
    length, start = _read_varint(data, pos)
    if length < MIN_LENGTH:
        raise InvalidFieldError(f"packet length {length} < minimum {MIN_LENGTH}")
    kind = data[start] & 0x03 if start < len(data) else 0
    if length > MAX_LENGTH.get(kind, MIN_LENGTH - 1):
        raise InvalidFieldError(f"packet length {length} is more than a packet of type {kind} may hold")
    end = start + length
    if end > len(data):
        raise TruncatedError(f"packet length {length} runs past the end of the data ({len(data) - start} bytes left)")
    (crc,) = _CRC.unpack_from(data, end - _CRC.size)
    if zlib.crc32(memoryview(data)[pos:end - _CRC.size]) != crc:
        raise ChecksumError(f"packet crc32 mismatch (packet of {end - pos} bytes)", checked=end - pos)
    return start, end


def _decode_fields(data: bytes, start: int, end: int) -> Packet:
    type_flags, seq, timestamp_ms = _FIELDS.unpack_from(data, start)
    if type_flags & 0xF0 or (type_flags & 0x03) not in tuple(PacketType):
        raise InvalidFieldError(f"packet type_flags 0x{type_flags:02x}: unknown type or reserved bits set")
    body = bytes(data[start + _FIELDS.size:end - _CRC.size])
    return Packet(PacketType(type_flags & 0x03), seq, timestamp_ms, Flags(type_flags & 0x0C), body)


def parse_packet(data: bytes) -> Packet:
    """Parse exactly one framed packet; raises a BitstreamError saying what is wrong."""
    start, end = _frame_end(data, 0)
    if end != len(data):
        raise InvalidFieldError(f"packet: {len(data) - end} trailing bytes after the packet")
    return _decode_fields(data, start, end)


def scan_packets(data: bytes) -> Iterator[Packet | BitstreamError]:
    """Packets in `data` in order. Bytes that do not frame a valid packet are skipped one at
    a time until the next valid length+CRC (resynchronisation); each skipped run yields one
    FramingError (byte count and first cause), each well-framed but invalid packet one
    InvalidFieldError. The checksum work of a scan is bounded (`SCAN_WORK_FACTOR`): crafted
    bytes that would make it check long claims at every offset end the scan with a FramingError."""
    data = memoryview(data)
    pos, skipped, first_error = 0, 0, None
    budget = SCAN_WORK_FACTOR * len(data) + (1 << 20)
    while pos < len(data):
        if budget <= 0:
            yield FramingError(f"skipped the last {len(data) - pos} bytes: resynchronisation work limit reached")
            return
        try:
            start, end = _frame_end(data, pos)
        except BitstreamError as exc:
            if isinstance(exc, ChecksumError):
                budget -= exc.checked
            first_error = first_error or exc
            pos, skipped = pos + 1, skipped + 1
            continue
        budget -= end - pos
        if skipped:
            yield FramingError(f"skipped {skipped} bytes: {first_error}")
            skipped, first_error = 0, None
        try:
            yield _decode_fields(data, start, end)
        except InvalidFieldError as exc:
            yield exc
        pos = end
    if skipped:
        yield FramingError(f"skipped {skipped} bytes: {first_error}")
