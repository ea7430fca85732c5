"""Source keyframe body: the source image coded with a real image codec (Pillow), and in
streams with the expression channel, the source's face (`facecodec.expression.SourceFace`).

KEYFRAME body = [face section, streams with the expression channel only] + codec (1 byte: 1 WebP, 2 JPEG,
3 AVIF) + the coded image. The codec byte is the field that names the image codec: a decoder reads every
value, whatever the stream's version. The default stays WebP at quality 90, chosen by rate–distortion on the
decoded call (issue 21, docs/benchmarks.md "Keyframe and motion settings against the picture"): the decoded
call's LPIPS keeps improving up to AVIF 80 / WebP 90, and there AVIF (6.8 kB) is no smaller than WebP (6.7 kB);
below it every kB saved costs LPIPS-vgg. AVIF is there for senders that ask (`Encoder(keyframe_codec=...)`),
at its own default quality 80 (where its LPIPS stops improving); JPEG is the fallback where Pillow lacks WebP.
The decoder checks the coded image's size against the stream header before decoding any pixel.

Face section (big-endian): has_face (1 byte, 0 or 1), then when 1: the N = len(SOURCE_POINTS)
landmark points (x, y) as int16 in 1/16 pixel (4N bytes), the (2, 3) canonical-to-image map as
float32 (24 bytes) and the source's expression code, P float32 (4P bytes, P = the header's
num_face). has_face 0: the sender found no face in the source; the receiver renders the source's
expression.
"""

from __future__ import annotations

import enum
import io
import warnings

import numpy as np
from PIL import Image, features

from ..expression import SOURCE_POINTS, SourceFace
from .errors import InvalidFieldError

DEFAULT_QUALITY = 90
POINT_UNIT = 16  # face points are sent in 1/16 pixel
_FIXED_FACE_BYTES = 4 * len(SOURCE_POINTS) + 24  # points and map; the code's 4P follow
MAX_CODE = 64.0  # |code| of any real face is below ≈ 2 (canonical units)


class ImageCodec(enum.IntEnum):
    WEBP = 1
    JPEG = 2
    AVIF = 3


_PIL_FORMAT = {ImageCodec.WEBP: "WEBP", ImageCodec.JPEG: "JPEG", ImageCodec.AVIF: "AVIF"}
# Each codec's default quality (Pillow's 1…100 scale of that codec): WebP's and JPEG's as before issue 21;
# AVIF's where the decoded call's LPIPS stops improving (60 → 70 → 80 improves, docs/benchmarks.md).
DEFAULT_QUALITIES = {ImageCodec.WEBP: DEFAULT_QUALITY, ImageCodec.JPEG: DEFAULT_QUALITY, ImageCodec.AVIF: 80}


def default_codec(compact: bool = False) -> ImageCodec:
    """The keyframe codec a stream uses unless told: WebP when this Pillow writes it, else JPEG, in legacy and
    compact streams alike (AVIF measured no smaller at equal LPIPS; module docstring)."""
    return ImageCodec.WEBP if features.check("webp") else ImageCodec.JPEG


def check_quality(quality: int) -> int:
    """`quality` if it is an integer in 1…100 (Pillow's JPEG/WebP scale), else ValueError."""
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"keyframe quality must be an integer in 1…100, got {quality!r}")
    return int(quality)


def add_keyframe_quality_argument(parser) -> None:
    """`--keyframe-quality Q` on a command that encodes."""
    parser.add_argument("--keyframe-quality", type=_quality_argument, default=DEFAULT_QUALITY, metavar="Q",
                        help="quality 1…100 of the source picture on its codec's scale (WebP), sent once (default "
                        f"{DEFAULT_QUALITY}, chosen by rate–distortion on the decoded call; 100 costs about twice the "
                        "bytes and keeps identity a little closer, docs/benchmarks.md)")


def _quality_argument(text: str) -> int:
    import argparse

    try:
        return check_quality(int(text))
    except ValueError:  # not a number, or out of range: one message for both
        raise argparse.ArgumentTypeError(f"keyframe quality must be an integer in 1…100, got {text!r}") from None


def encode_keyframe(image: np.ndarray, *, quality: int | None = None, codec: ImageCodec | None = None) -> bytes:
    """KEYFRAME body for an (H, W, 3) uint8 RGB image; `quality` 1…100 on the codec's scale (Pillow's),
    None: the codec's default (`DEFAULT_QUALITIES`); `codec` None: `default_codec()` (WebP)."""
    codec = codec or default_codec()
    quality = DEFAULT_QUALITIES[codec] if quality is None else check_quality(quality)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"keyframe image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format=_PIL_FORMAT[codec], quality=quality)
    return bytes([codec]) + buffer.getvalue()


def decode_keyframe(body: bytes, height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB image of a KEYFRAME body; InvalidFieldError if unusable."""
    if not body or body[0] not in tuple(ImageCodec):
        raise InvalidFieldError(f"keyframe codec byte {body[:1]!r} is not one of {[int(c) for c in ImageCodec]}")
    expected = _PIL_FORMAT[ImageCodec(body[0])]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # an error here, not a warning
            return _decode_image(body, expected, height, width)
    except InvalidFieldError:
        raise
    except Exception as exc:  # Pillow's decoders raise many types (OSError, SyntaxError, ...)
        raise InvalidFieldError(f"keyframe {expected} image does not decode: {exc}") from exc


def _decode_image(body: bytes, expected: str, height: int, width: int) -> np.ndarray:
    """The image of a keyframe body, its size checked against the header before any pixel is decoded."""
    with Image.open(io.BytesIO(body[1:]), formats=[expected]) as coded:
        if coded.size != (width, height):
            raise InvalidFieldError(f"keyframe is {coded.size[0]}x{coded.size[1]}, header says {width}x{height}")
        return np.asarray(coded.convert("RGB"), dtype=np.uint8)


def encode_face(face: SourceFace | None) -> bytes:
    """The face section of a version-2 KEYFRAME body (module docstring); None: no face."""
    if face is None:
        return b"\x00"
    points = np.rint(face.points.astype(np.float64) * POINT_UNIT)
    if np.abs(points).max() > np.iinfo(np.int16).max:
        raise ValueError("face points must lie within ±2047 pixels")
    code = face.code.astype(">f4").tobytes()
    return b"\x01" + points.astype(">i2").tobytes() + face.to_image.astype(">f4").tobytes() + code


def decode_face(body: bytes, height: int, width: int, num_face: int) -> tuple[SourceFace | None, bytes]:
    """(the face of a version-2 KEYFRAME body, the rest of the body: codec byte + image)."""
    if not body or body[0] not in (0, 1):
        raise InvalidFieldError(f"keyframe has_face byte {body[:1]!r} is not 0 or 1")
    if body[0] == 0:
        return None, body[1:]
    size = _FIXED_FACE_BYTES + 4 * num_face
    if len(body) < 1 + size:
        raise InvalidFieldError(f"keyframe face section needs {size} bytes, body has {len(body) - 1}")
    n = 2 * len(SOURCE_POINTS)
    points = np.frombuffer(body, ">i2", n, 1).astype(np.float32).reshape(-1, 2) / POINT_UNIT
    to_image = np.frombuffer(body, ">f4", 6, 1 + 2 * n).astype(np.float32).reshape(2, 3)
    code = np.frombuffer(body, ">f4", num_face, 1 + _FIXED_FACE_BYTES).astype(np.float32)
    side = max(height, width)
    values = np.concatenate([to_image.ravel(), code])
    if not np.isfinite(values).all() or np.abs(to_image).max() > 1e4 or np.abs(code).max(initial=0) > MAX_CODE \
            or np.abs(points).max() > 2 * side:
        raise InvalidFieldError("keyframe face section holds values outside their range")
    return SourceFace(points, to_image, code), body[1 + size:]
