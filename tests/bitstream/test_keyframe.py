import numpy as np
import pytest

from facecodec.bitstream import ImageCodec, InvalidFieldError, decode_keyframe, encode_keyframe


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("codec", [ImageCodec.WEBP, ImageCodec.JPEG, ImageCodec.AVIF])
def test_default_quality_keeps_a_smooth_image_above_30_db(smooth_image, codec):
    body = encode_keyframe(smooth_image, codec=codec)
    assert body[0] == codec and len(body) < 20_000
    decoded = decode_keyframe(body, 256, 256)
    assert decoded.shape == (256, 256, 3) and decoded.dtype == np.uint8
    assert _psnr(decoded, smooth_image) > 30.0


def test_webp_is_the_default_and_avif_is_sent_on_request_in_any_stream(smooth_image, motions):
    from facecodec.bitstream import Encoder, StreamHeader, decode_stream

    assert encode_keyframe(smooth_image)[0] == ImageCodec.WEBP
    for header, codec in ((StreamHeader(), None), (StreamHeader(), ImageCodec.AVIF),
                          (StreamHeader(compact=False), ImageCodec.AVIF)):
        encoder = Encoder(header, keyframe_codec=codec)
        body = encoder.request_keyframe(smooth_image)
        assert body[0] == (codec or ImageCodec.WEBP)
        stream = decode_stream(header.to_bytes() + encoder.encode(motions[0], 0))
        assert _psnr(stream.frames[0].keyframe, smooth_image) > 30.0


def test_each_codec_has_its_default_quality(smooth_image):
    from facecodec.bitstream.keyframe import DEFAULT_QUALITIES

    for codec in ImageCodec:
        assert encode_keyframe(smooth_image, codec=codec) == encode_keyframe(
            smooth_image, codec=codec, quality=DEFAULT_QUALITIES[codec])


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


@pytest.mark.parametrize("quality", [0, 101, 2.5, True, "90"])
def test_quality_outside_1_to_100_is_refused_before_the_call_starts(smooth_image, header, quality):
    from facecodec.bitstream import Encoder

    with pytest.raises(ValueError, match="quality must be an integer in 1…100"):
        encode_keyframe(smooth_image, quality=quality)
    with pytest.raises(ValueError, match="quality must be an integer in 1…100"):
        Encoder(header, keyframe_quality=quality)


def test_encoder_sends_the_keyframe_at_its_quality(header):
    from facecodec.bitstream import Encoder

    rng = np.random.default_rng(0)  # texture, so that the quality shows in the bytes
    image = rng.integers(0, 256, (header.height, header.width, 3), dtype=np.uint8)
    sizes = {q: len(Encoder(header, keyframe_quality=q).request_keyframe(image)) for q in (50, 100)}
    assert sizes[100] > 1.5 * sizes[50]
    best = decode_keyframe(Encoder(header, keyframe_quality=100).request_keyframe(image), header.height, header.width)
    default = decode_keyframe(Encoder(header).request_keyframe(image), header.height, header.width)
    assert _psnr(best, image) > _psnr(default, image)


@pytest.mark.parametrize("text", ["0", "101", "abc"])
def test_cli_refuses_a_bad_keyframe_quality(capsys, text):
    from facecodec.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["encode", "in.mp4", "-o", "out.fcs", "--keyframe-quality", text])
    assert f"keyframe quality must be an integer in 1…100, got '{text}'" in capsys.readouterr().err
    args = build_parser().parse_args(["eval", "--videos", ".", "--report", "r", "--keyframe-quality", "100"])
    assert args.keyframe_quality == 100
