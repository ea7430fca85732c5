import numpy as np
import pytest

from facecodec.bitstream import ImageCodec, InvalidFieldError, decode_keyframe, encode_keyframe


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("codec", [ImageCodec.WEBP, ImageCodec.JPEG])
def test_default_quality_keeps_a_smooth_image_above_30_db(smooth_image, codec):
    body = encode_keyframe(smooth_image, codec=codec)
    assert body[0] == codec and len(body) < 20_000
    decoded = decode_keyframe(body, 256, 256)
    assert decoded.shape == (256, 256, 3) and decoded.dtype == np.uint8
    assert _psnr(decoded, smooth_image) > 30.0


def test_webp_is_the_default(smooth_image):
    assert encode_keyframe(smooth_image)[0] == ImageCodec.WEBP


def test_lower_quality_gives_fewer_bytes(smooth_image):
    assert len(encode_keyframe(smooth_image, quality=30)) < len(encode_keyframe(smooth_image, quality=95))


def test_unusable_bodies_are_invalid_field_errors(smooth_image):
    body = encode_keyframe(smooth_image)
    with pytest.raises(InvalidFieldError, match="header says 128x256"):
        decode_keyframe(body, 256, 128)
    with pytest.raises(InvalidFieldError, match="does not decode"):
        decode_keyframe(body[:1] + b"garbage" * 10, 256, 256)
    with pytest.raises(InvalidFieldError, match="codec byte"):
        decode_keyframe(b"\x09" + body[1:], 256, 256)
    with pytest.raises(ValueError, match="uint8"):
        encode_keyframe(smooth_image.astype(np.float32))
