"""A still for free view and transfer: an image file, or the first frame of a clip."""

from __future__ import annotations

import numpy as np
from PIL import Image

from facecodec.media import read_still
from tests.conftest import SAMPLE_CLIP


def test_read_still_takes_a_videos_first_frame_or_an_image(sample_frames, tmp_path):
    first = read_still(SAMPLE_CLIP)
    assert first.shape == (256, 256, 3) and first.dtype == np.uint8
    assert np.array_equal(first, sample_frames[0])
    png = tmp_path / "face.png"
    Image.fromarray(sample_frames[10]).save(png)
    assert np.array_equal(read_still(png), sample_frames[10])  # lossless, already 256²


def test_ffmpeg_reads_odd_names_as_plain_files(tmp_path, sample_frames, monkeypatch):
    """A name that starts with "-" is not an option; "concat:…" is not a protocol (issue 22)."""
    from facecodec.media import read_video, write_video

    monkeypatch.chdir(tmp_path)
    for name in ("-y.mp4", "concat:a.mp4"):
        write_video(name, sample_frames[:3], fps=25)
        assert (tmp_path / name).is_file()
        assert read_video(name).shape == (3, 256, 256, 3)
