"""Packet framing, in two layouts, and a resynchronising scanner.

LEGACY (stream versions 1 and 2): varint length, type_flags, 16-bit seq, 32-bit timestamp, body, CRC32.
COMPACT (stream version 3): varint length, head, an 8-bit seq (or, on an ANCHOR packet, the whole frame number
and the timestamp as varints), body, and a check sized to the packet (CRC-16 up to 127 bytes, CRC32 above), or
the call's authentication tag in its place. Both byte layouts are the "Packet" tables in the
`facecodec.bitstream` docstring; sizes are bytes, frame numbers count frames, timestamps are milliseconds.
"""

from __future__ import annotations

import binascii
import dataclasses
import enum
import struct
import zlib
from collections.abc import Callable, Iterator

from .errors import BitstreamError, ChecksumError, FramingError, InvalidFieldError, TruncatedError

SEQ_MODULUS = 1 << 16  # legacy wire seq
TIMESTAMP_MODULUS = 1 << 32
SHORT_SEQ_MODULUS = 1 << 8  # compact: seq of a packet without ANCHOR
ANCHOR_SEQ_MODULUS = 1 << 28  # compact: frame number of an ANCHOR packet (a 4-byte varint; 124 days at 25 fps)
MAX_PACKET_LENGTH = (1 << 28) - 1  # what a 4-byte varint holds
# The largest packet a reader believes, by type, checked before any checksum: a MOTION packet holds
# a few hundred numbers; a KEYFRAME one picture (and a face). Longer claims are damage, not packets,
# and checking their CRC would cost the resynchronising scanner O(claim) per byte it steps.
MAX_LENGTH = {1: 4 << 20, 2: 16 << 10}  # by PacketType value
SCAN_WORK_FACTOR = 16  # a scan checksums at most this × its input + 1 MiB before giving up the rest
_FIELDS = struct.Struct(">BHI")  # legacy: type_flags, seq, timestamp_ms
_CRC = struct.Struct(">I")
MIN_LENGTH = _FIELDS.size + _CRC.size  # legacy
TAG_BYTES = 8  # authentication tag (`bitstream.auth`); in compact packets it replaces the CRC
SHORT_CHECK_MAX_LENGTH = 127  # compact: a packet whose length field is ≤ this (1 varint byte) has a CRC-16
_CRC16 = struct.Struct(">H")
COMPACT_MIN_LENGTH = 1 + 1 + _CRC16.size  # head, seq, CRC-16
_RESERVED = 0xF0  # legacy type_flags bits that must be zero
_COMPACT_RESERVED = 0xC0  # compact head bits that must be zero


class PacketType(enum.IntEnum):
    KEYFRAME = 1  # source image (first, or a refresh mid-call)
    MOTION = 2  # one frame's motion, intra or predicted


class Flags(enum.IntFlag):
    NONE = 0
    INTRA = 0x04  # MOTION: absolute values, decodable without history
    REFRESH = 0x08  # KEYFRAME: replaces an earlier source image
    QSCALE = 0x20  # compact MOTION: the body starts with a qscale byte (else the previous packet's qscale holds)


ANCHOR = 0x10  # compact head bit: the whole frame number and an explicit timestamp follow


@dataclasses.dataclass(frozen=True)
class Packet:
    """One parsed packet. `seq` is the wire value: the frame number mod `seq_modulus` (65536 in legacy
    packets; 256, or 2²⁸ on an anchor, in compact ones). `timestamp_ms` is the wire timestamp, or None in
    a compact packet that implies it (the decoder derives it from the last anchor at the stream's frame
    rate). `wire_size` is the packet's size on the link when it was parsed."""

    type: PacketType
    seq: int
    timestamp_ms: int | None
    flags: Flags
    body: bytes
    seq_modulus: int = SEQ_MODULUS
    wire_size: int | None = dataclasses.field(default=None, compare=False)

    @property
    def framed_size(self) -> int:
        """Size in bytes on the link: as parsed, else that of the legacy `to_bytes()`."""
        if self.wire_size is not None:
            return self.wire_size
        length = _FIELDS.size + len(self.body) + _CRC.size
        return len(_varint(length)) + length

    def to_bytes(self) -> bytes:
        """Legacy framed packet (stream versions 1 and 2): varint length, fields, body, CRC32."""
        if _FIELDS.size + len(self.body) + _CRC.size > MAX_PACKET_LENGTH:
            raise ValueError(f"packet body of {len(self.body)} bytes exceeds the {MAX_PACKET_LENGTH}-byte limit")
        fields = _FIELDS.pack(int(self.type) | int(self.flags), self.seq % SEQ_MODULUS,
                              (self.timestamp_ms or 0) % TIMESTAMP_MODULUS)
        framed = _varint(len(fields) + len(self.body) + _CRC.size) + fields + self.body
        return framed + _CRC.pack(zlib.crc32(framed))

    def to_compact_bytes(self, sign: Callable[[bytes], bytes] | None = None) -> bytes:
        """Compact framed packet (stream version 3). With `timestamp_ms` None: an 8-bit seq and no
        timestamp; otherwise an ANCHOR packet (varint frame number mod 2²⁸, varint timestamp). `sign`
        (authenticated streams) maps the bytes before the check to the `TAG_BYTES` tag that replaces it."""
        anchor = self.timestamp_ms is not None
        head = bytes([int(self.type) | int(self.flags) | (ANCHOR if anchor else 0)])
        if anchor:
            fields = head + _varint(self.seq % ANCHOR_SEQ_MODULUS) + _varint(self.timestamp_ms % TIMESTAMP_MODULUS)
        else:
            fields = head + bytes([self.seq % SHORT_SEQ_MODULUS])
        content = len(fields) + len(self.body)
        if sign is not None:
            check = TAG_BYTES
        else:
            check = _CRC16.size if content + _CRC16.size <= SHORT_CHECK_MAX_LENGTH else _CRC.size
        if content + check > MAX_PACKET_LENGTH:
            raise ValueError(f"packet body of {len(self.body)} bytes exceeds the {MAX_PACKET_LENGTH}-byte limit")
        framed = _varint(content + check) + fields + self.body
        if sign is not None:
            return framed + sign(framed)
        return framed + (_CRC16.pack(_crc16(framed)) if check == _CRC16.size else _CRC.pack(zlib.crc32(framed)))


def implied_timestamp(anchor: tuple[int, int], seq: int, fps_num: int, fps_den: int) -> int:
    """Timestamp (ms mod 2³²) of frame `seq` on the nominal grid of `fps_num/fps_den` frames/s that runs
    through `anchor` = (frame number, timestamp_ms); integer arithmetic, rounded half up, so the sender
    and the receiver derive the same milliseconds on every platform."""
    anchor_seq, anchor_ms = anchor
    offset = (2 * (seq - anchor_seq) * 1000 * fps_den + fps_num) // (2 * fps_num)
    return (anchor_ms + offset) % TIMESTAMP_MODULUS


def off_grid(timestamp_ms: int, implied_ms: int, fps_num: int, fps_den: int) -> bool:
    """Whether a sender's timestamp is more than half a frame from the one its receiver would imply
    (mod 2³²): the packet then carries it explicitly (an ANCHOR)."""
    delta = (timestamp_ms - implied_ms) % TIMESTAMP_MODULUS
    delta = min(delta, TIMESTAMP_MODULUS - delta)
    return 2 * delta * fps_num > 1000 * fps_den


def _crc16(data) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF), C speed via binascii."""
    return binascii.crc_hqx(data, 0xFFFF)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data, pos: int, field: str = "packet length", max_bytes: int = 4) -> tuple[int, int]:
    """(value, position after it) of the LEB128 varint at `pos` (at most `max_bytes` bytes)."""
    value = 0
    for i in range(max_bytes):
        if pos + i >= len(data):
            raise TruncatedError(f"{field}: varint runs past the end ({len(data)} bytes)")
        value |= (data[pos + i] & 0x7F) << (7 * i)
        if not data[pos + i] & 0x80:
            return value, pos + i + 1
    raise InvalidFieldError(f"{field}: varint longer than {max_bytes} bytes")


class TagError(ChecksumError):
    """A compact packet of an authenticated stream whose tag does not verify (damage or forgery)."""


class ForgedError(BitstreamError):
    """A whole well-framed packet whose authentication tag does not verify: forged, altered or replayed."""


# verify(packet without its check, the bytes the tag covers, the tag) → whether the tag is the call's
Verifier = Callable[[Packet, bytes, bytes], bool]


@dataclasses.dataclass(frozen=True)
class Framing:
    """How a stream frames its packets: `compact` (version 3) or legacy, and in a compact authenticated
    stream the `verify` callback that replaces the CRC."""

    compact: bool = False
    verify: Verifier | None = None

    def frame(self, packet: Packet, sign: Callable[[bytes], bytes] | None = None) -> bytes:
        """`packet` framed in this layout (a compact one is an ANCHOR iff it has a timestamp)."""
        return packet.to_compact_bytes(sign) if self.compact else packet.to_bytes()

    def frame_at(self, data, pos: int) -> tuple[Packet, int]:
        """(packet, end) of a packet at `pos` whose length and check verify; raises a BitstreamError."""
        return _compact_at(data, pos, self.verify) if self.compact else _legacy_at(data, pos)


LEGACY = Framing()


def _check_length(data, start: int, length: int, minimum: int) -> int:
    if length < minimum:
        raise InvalidFieldError(f"packet length {length} < minimum {minimum}")
    kind = data[start] & 0x03 if start < len(data) else 0
    if length > MAX_LENGTH.get(kind, minimum - 1):
        raise InvalidFieldError(f"packet length {length} is more than a packet of type {kind} may hold")
    end = start + length
    if end > len(data):
        raise TruncatedError(f"packet length {length} runs past the end of the data ({len(data) - start} bytes left)")
    return end


def _legacy_at(data, pos: int) -> tuple[Packet, int]:
    length, start = _read_varint(data, pos)
    end = _check_length(data, start, length, MIN_LENGTH)
    (crc,) = _CRC.unpack_from(data, end - _CRC.size)
    if zlib.crc32(memoryview(data)[pos:end - _CRC.size]) != crc:
        raise ChecksumError(f"packet crc32 mismatch (packet of {end - pos} bytes)", checked=end - pos)
    type_flags, seq, timestamp_ms = _FIELDS.unpack_from(data, start)
    if type_flags & _RESERVED or (type_flags & 0x03) not in tuple(PacketType):
        raise _Invalid(f"packet type_flags 0x{type_flags:02x}: unknown type or reserved bits set", end)
    body = bytes(data[start + _FIELDS.size:end - _CRC.size])
    return Packet(PacketType(type_flags & 0x03), seq, timestamp_ms, Flags(type_flags & 0x0C), body,
                  wire_size=end - pos), end


def _compact_at(data, pos: int, verify: Verifier | None) -> tuple[Packet, int]:
    length, start = _read_varint(data, pos)
    end = _check_length(data, start, length, COMPACT_MIN_LENGTH)
    check = TAG_BYTES if verify is not None else _CRC16.size if length <= SHORT_CHECK_MAX_LENGTH else _CRC.size
    if length < 2 + check:
        raise InvalidFieldError(f"packet length {length} < minimum {2 + check}")
    covered = memoryview(data)[pos:end - check]
    if verify is None:
        expected = _crc16(covered) if check == _CRC16.size else zlib.crc32(covered)
        if int.from_bytes(data[end - check:end], "big") != expected:
            raise ChecksumError(f"packet crc{8 * check} mismatch (packet of {end - pos} bytes)", checked=end - pos)
    head = data[start]
    anchor = bool(head & ANCHOR)
    try:
        if anchor:
            seq, at = _read_varint(covered, start - pos + 1, "packet seq")
            timestamp, at = _read_varint(covered, at, "packet timestamp", 5)
            seq, modulus = seq % ANCHOR_SEQ_MODULUS, ANCHOR_SEQ_MODULUS
            timestamp %= TIMESTAMP_MODULUS
        else:
            seq, timestamp, at, modulus = covered[start - pos + 1], None, start - pos + 2, SHORT_SEQ_MODULUS
    except TruncatedError as exc:  # an anchor's varints run into the check: malformed, not cut short
        raise (InvalidFieldError(str(exc)) if verify is None else TagError(str(exc), checked=end - pos)) from exc
    packet = Packet(PacketType(head & 0x03) if head & 0x03 in (1, 2) else PacketType.MOTION, seq, timestamp,
                    Flags(head & 0x2C), bytes(covered[at:]), modulus, end - pos)
    if verify is not None and not verify(packet, bytes(covered), bytes(data[end - check:end])):
        raise TagError(f"packet tag does not verify (packet of {end - pos} bytes)", checked=end - pos)
    if head & _COMPACT_RESERVED or (head & 0x03) not in tuple(PacketType):
        raise _Invalid(f"packet head 0x{head:02x}: unknown type or reserved bits set", end)
    return packet, end


class _Invalid(InvalidFieldError):
    """A packet that frames (its check verifies) but holds an invalid field: skipped whole."""

    def __init__(self, message: str, end: int):
        super().__init__(message)
        self.end = end


def parse_packet(data: bytes, framing: Framing = LEGACY) -> Packet:
    """Parse exactly one framed packet; raises a BitstreamError saying what is wrong."""
    try:
        packet, end = framing.frame_at(data, 0)
    except _Invalid as exc:
        raise InvalidFieldError(str(exc)) from None
    if end != len(data):
        raise InvalidFieldError(f"packet: {len(data) - end} trailing bytes after the packet")
    return packet


def scan_packets(data: bytes, framing: Framing = LEGACY) -> Iterator[Packet | BitstreamError]:
    """Packets in `data` in order. Bytes that do not frame a valid packet are skipped one at
    a time until the next valid length+check (resynchronisation); each skipped run yields one
    FramingError (byte count and first cause), each well-framed but invalid packet one
    InvalidFieldError. In a compact authenticated stream, a skipped run that is exactly one packet
    whose tag failed yields a ForgedError instead. The checksum work of a scan is bounded
    (`SCAN_WORK_FACTOR`): crafted bytes that would make it check long claims at every offset end
    the scan with a FramingError."""
    data = memoryview(data)
    pos, skipped, first_error = 0, 0, None
    budget = SCAN_WORK_FACTOR * len(data) + (1 << 20)

    def skipped_run() -> BitstreamError:
        if isinstance(first_error, TagError) and skipped == first_error.checked:
            return ForgedError(str(first_error))
        return FramingError(f"skipped {skipped} bytes: {first_error}")

    while pos < len(data):
        if budget <= 0:
            yield FramingError(f"skipped the last {len(data) - pos} bytes: resynchronisation work limit reached")
            return
        try:
            packet, end = framing.frame_at(data, pos)
        except _Invalid as exc:
            packet, end = InvalidFieldError(str(exc)), exc.end
        except BitstreamError as exc:
            if isinstance(exc, ChecksumError):
                budget -= exc.checked
            first_error = first_error or exc
            pos, skipped = pos + 1, skipped + 1
            continue
        budget -= end - pos
        if skipped:
            yield skipped_run()
            skipped, first_error = 0, None
        yield packet
        pos = end
    if skipped:
        yield skipped_run()
