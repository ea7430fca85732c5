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
