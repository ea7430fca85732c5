"""Errors raised while parsing a facecodec bitstream.

Every parse failure is a `BitstreamError` (a `ValueError`) whose subclass says what is
wrong and whose message names the field. The live `Decoder` never lets these escape:
it drops the packet and records the reason (see `DropReason`).
"""

from __future__ import annotations

import enum


class BitstreamError(ValueError):
    """Base class: the bytes are not a valid facecodec stream, header or packet."""


class TruncatedError(BitstreamError):
    """Fewer bytes than the format requires (names the field being read)."""


class BadMagicError(BitstreamError):
    """The stream does not start with the facecodec magic bytes."""


class UnsupportedVersionError(BitstreamError):
    """The header's format version is not one this decoder implements."""


class ChecksumError(BitstreamError):
    """A CRC32 over a header or packet does not match its content; `checked` bytes were summed."""

    def __init__(self, message: str, checked: int = 0):
        super().__init__(message)
        self.checked = checked


class FramingError(BitstreamError):
    """Bytes skipped while looking for the next packet whose length prefix and CRC check out."""


class InvalidFieldError(BitstreamError):
    """A field parsed cleanly but holds a value outside its allowed range."""


class DropReason(str, enum.Enum):
    """Why the decoder discarded a packet (counted in `Decoder.drops`)."""

    BAD_FRAMING = "bad_framing"  # length prefix or CRC wrong: bytes skipped to the next valid packet
    INVALID = "invalid"  # CRC fine but a field is out of range (type, qscale, image size...)
    STALE = "stale"  # sequence number already emitted (late, reordered too far, duplicate)
    DUPLICATE = "duplicate"  # a packet with this sequence number is already buffered
    UNSYNCED = "unsynced"  # predicted packet after a loss: undecodable until the next intra
    FORGED = "forged"  # an authenticated stream's packet whose tag does not verify (injected, altered, replayed)
    TOO_FAR = "too_far"  # a predicted packet further ahead than the decoder conceals; an intra one re-joins
