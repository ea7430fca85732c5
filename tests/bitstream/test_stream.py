import numpy as np
import pytest

from facecodec.bitstream import BadMagicError, DropReason, Encoder, StreamHeader, read_stream, write_stream


def test_file_round_trip_with_a_damaged_region(tmp_path, header, motions, smooth_image, encode_frames):
    chunks, expected = encode_frames(header, motions[:100], source_image=smooth_image)
    path = tmp_path / "call.fcdc"
    written = write_stream(path, header, chunks)
    assert written == path.stat().st_size == len(header.to_bytes()) + sum(map(len, chunks))

    clean = read_stream(path)
    assert clean.header == header and not clean.drops
    np.testing.assert_array_equal(np.stack([f.motion.to_vector() for f in clean.frames]), expected)
    assert clean.frames[0].keyframe.shape == (256, 256, 3) and clean.stats.frames == 100

    data = bytearray(path.read_bytes())
    start = len(header.to_bytes()) + sum(map(len, chunks[:30]))
    data[start:start + 40] = bytes(40)  # zero a stretch inside frames 30…31
    path.write_bytes(bytes(data))
    damaged = read_stream(path)
    assert [f.seq for f in damaged.frames] == list(range(100))
    concealed = [f.seq for f in damaged.frames if f.concealed]
    assert concealed[0] == 30 and concealed[-1] == 49  # frame 50 is intra
    assert damaged.drops[DropReason.BAD_FRAMING] >= 1


def test_a_file_without_the_header_is_a_clear_error(tmp_path, header, motions):
    encoder = Encoder(header)
    path = tmp_path / "headless.fcdc"
    path.write_bytes(encoder.encode(motions[0], 0))
    with pytest.raises(BadMagicError, match="magic"):
        read_stream(path)


def test_header_parameters_reach_the_decoder(tmp_path, motions, encode_frames):
    header = StreamHeader(preset="vox256", fps_num=30000, fps_den=1001, intra_interval=10)
    path = tmp_path / "ntsc.fcdc"
    write_stream(path, header, encode_frames(header, motions[:20])[0])
    stream = read_stream(path)
    assert stream.header.preset == "vox256" and stream.stats.intra_frames == 2
    assert stream.stats.seconds == pytest.approx(20 * 1001 / 30000)
