"""Stream header: what a decoder must know before the first packet.

The byte layout is the "Stream header" table in the `facecodec.bitstream` docstring.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from fractions import Fraction

from .errors import BadMagicError, ChecksumError, InvalidFieldError, TruncatedError, UnsupportedVersionError
from .packet import Framing
from .quant import DEFAULT_STEPS, PerField, check_steps

MAGIC = b"FCDC"
VERSION = 3  # newest written: compact packets; 1 and 2 (legacy packets) are still written (`compact=False`) and read
VERSIONS = (1, 2, 3)
_PREFIX = struct.Struct(">4sBH")  # magic, version, body_length
_FIXED = struct.Struct(">BHHHHHddd")  # num_kp ... step_exp
_FEATURES = struct.Struct(">B")  # versions 2, 3: bit 0 the expression channel, bit 1 authenticated packets
_FACE = struct.Struct(">IBd")  # version 2 with the expression channel: face_basis, num_face, step_face
EXPRESSION, AUTHENTICATED = 0x01, 0x02
_CRC = struct.Struct(">I")
MAX_PRESET_LENGTH = 32
MAX_SIDE = 4096  # pixels: far above any preset (256²), far below what a keyframe decode can afford


@dataclasses.dataclass(frozen=True)
class StreamHeader:
    """Stream-wide parameters; `to_bytes`/`parse` (de)serialise them with a CRC."""

    preset: str = "lite"
    num_kp: int = 15
    height: int = 256
    width: int = 256
    fps_num: int = 25
    fps_den: int = 1
    intra_interval: int = 25
    steps: PerField = DEFAULT_STEPS
    face_basis: int = 0  # `ExpressionBasis.id` the `face` coefficients refer to (0: no expression channel)
    num_face: int = 0  # P, expression-channel coefficients per frame
    authenticated: bool = False  # every packet carries a tag (`bitstream.auth`)
    compact: bool = True  # compact packets (version 3); False: the legacy packets of versions 1 and 2

    def __post_init__(self) -> None:
        _check_header(self)

    @property
    def fps(self) -> Fraction:
        """Frames per second, exact."""
        return Fraction(self.fps_num, self.fps_den)

    @property
    def frame_ms(self) -> float:
        """Frame duration in milliseconds."""
        return 1000.0 * self.fps_den / self.fps_num

    @property
    def version(self) -> int:
        """The layout `to_bytes` writes: 3 with compact packets; legacy packets: 2 with the expression channel
        or tags, else 1 (older readers read these)."""
        if self.compact:
            return 3
        return 2 if self.num_face or self.authenticated else 1

    @property
    def framing(self) -> Framing:
        """How this stream's packets are framed (without a key: an authenticated compact stream's
        packets are read by a `Decoder` given the key)."""
        return Framing(self.compact)

    def to_bytes(self) -> bytes:
        """Serialised header, CRC included."""
        preset = self.preset.encode("ascii")
        steps = (self.steps.angle, self.steps.t, self.steps.exp)
        body = bytes([len(preset)]) + preset + _FIXED.pack(
            self.num_kp, self.height, self.width, self.fps_num, self.fps_den, self.intra_interval, *steps)
        if self.version >= 2:
            features = (EXPRESSION if self.num_face else 0) | (AUTHENTICATED if self.authenticated else 0)
            body += _FEATURES.pack(features)
            if self.num_face:
                body += _FACE.pack(self.face_basis, self.num_face, self.steps.face)
        head = _PREFIX.pack(MAGIC, self.version, len(body)) + body
        return head + _CRC.pack(zlib.crc32(head))

    @classmethod
    def parse(cls, data: bytes) -> tuple[StreamHeader, int]:
        """Parse a header at the start of `data`; returns (header, bytes consumed)."""
        magic, version, body_length = _PREFIX.unpack(_take(data, 0, _PREFIX.size, "header prefix"))
        if magic != MAGIC:
            raise BadMagicError(f"stream magic: expected {MAGIC!r}, got {magic!r}")
        if version not in VERSIONS:
            raise UnsupportedVersionError(f"stream version {version} is not supported (this decoder reads "
                                          f"{', '.join(map(str, VERSIONS))})")
        end = _PREFIX.size + body_length
        (crc,) = _CRC.unpack(_take(data, end, _CRC.size, "header crc32"))
        body = _take(data, _PREFIX.size, body_length, "header body")
        if zlib.crc32(data[:end]) != crc:
            raise ChecksumError("header crc32 does not match its content")
        return _parse_body(body, version), end + _CRC.size


def _take(data: bytes, start: int, size: int, field: str) -> bytes:
    if len(data) < start + size:
        raise TruncatedError(f"{field}: needs bytes {start}…{start + size}, stream has {len(data)}")
    return bytes(data[start:start + size])


def _parse_body(body: bytes, version: int) -> StreamHeader:
    preset_length = _take(body, 0, 1, "header preset_length")[0]
    preset = _take(body, 1, preset_length, "header preset")
    fields = _FIXED.unpack(_take(body, 1 + preset_length, _FIXED.size, "header fields"))
    num_kp, height, width, fps_num, fps_den, intra_interval, *steps = fields
    face_basis, num_face, features = 0, 0, 0
    if version >= 2:
        at = 1 + preset_length + _FIXED.size
        (features,) = _FEATURES.unpack(_take(body, at, _FEATURES.size, "header features"))
        if features & ~(EXPRESSION | AUTHENTICATED) or not (features or version == 3):
            raise InvalidFieldError(f"header features 0x{features:02x}: unknown bits, or none in a version-2 stream")
        if features & EXPRESSION:
            face_basis, num_face, step_face = _FACE.unpack(
                _take(body, at + _FEATURES.size, _FACE.size, "header expression fields"))
            steps.append(step_face)
            if num_face == 0:
                raise InvalidFieldError("header num_face out of range: the expression channel needs coefficients")
    if not preset.isascii():
        raise InvalidFieldError(f"header preset is not ASCII: {preset!r}")
    return StreamHeader(preset.decode("ascii"), num_kp, height, width, fps_num, fps_den,
                        intra_interval, PerField(*steps), face_basis, num_face, bool(features & AUTHENTICATED),
                        version == 3)


def _check_header(header: StreamHeader) -> None:
    """Raise InvalidFieldError naming the first field outside its range."""
    preset = header.preset
    checks = {
        "preset": preset.isascii() and preset.isprintable() and 1 <= len(preset) <= MAX_PRESET_LENGTH,
        "num_kp": 1 <= header.num_kp <= 255,
        "height": 1 <= header.height <= MAX_SIDE,
        "width": 1 <= header.width <= MAX_SIDE,
        "fps_num": 1 <= header.fps_num <= 65535,
        "fps_den": 1 <= header.fps_den <= 65535,
        "intra_interval": 1 <= header.intra_interval <= 65535,
        "face_basis": 0 <= header.face_basis < 2**32 and (header.face_basis == 0) == (header.num_face == 0),
        "num_face": 0 <= header.num_face <= 255,
    }
    for field, ok in checks.items():
        if not ok:
            raise InvalidFieldError(f"header {field} out of range: {getattr(header, field)!r}")
    try:
        check_steps(header.steps)
    except ValueError as exc:
        raise InvalidFieldError(f"header steps: {exc}") from exc
