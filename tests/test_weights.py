"""The weights: the one lookup (`facecodec.weights.weights_path`), the shipped lite weights as package
data, and a loud error where a file is missing (never random weights)."""

from __future__ import annotations

import numpy as np
import pytest

from facecodec.codec.pipeline import Receiver, TorchNetworks, encode_frames, images_to_batch
from facecodec.weights import WEIGHTS_ENV, build_model, load_weights, read_config, shipped_path, weights_path

from .conftest import REPO


def test_the_shipped_weights_are_package_data_and_small_fp16_lite():
    path = shipped_path("lite")
    assert path == REPO / "facecodec" / "weights" / "lite.safetensors" and path.is_file()
    assert weights_path("lite") == path
    assert path.stat().st_size <= 30 * 2**20
    assert read_config(path).name == "lite"


def test_shipped_weights_decode_a_real_frame(sample_frames):
    networks = TorchNetworks(load_weights(shipped_path("lite")))
    images = images_to_batch(sample_frames[[0, 40]])  # (2, 3, 256, 256)
    motion = encode_frames(networks, images)
    receiver = Receiver(networks)
    receiver.set_source(images[:1], motion[0])
    frame = receiver.render(receiver.driving_keypoints(motion[1]))
    assert frame.shape == (1, 3, 256, 256) and np.isfinite(frame).all()
    assert frame.std() > 0.05  # a picture, not a flat field
    assert np.abs(frame - images[1:]).mean() < 0.15  # and a picture of this face


def test_the_lookup_order_and_loud_errors(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    named = tmp_path / "mine.safetensors"
    assert weights_path("lite", weights=named) == named
    with pytest.raises(FileNotFoundError, match="no weights for preset 'vox256'"):
        build_model("vox256")  # vox256 ships no weights: no silent random init
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_model("lite", weights=named)
    monkeypatch.setenv(WEIGHTS_ENV, str(named))
    assert weights_path("vox256") == named
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_model("lite")
    with pytest.raises(ValueError, match="not both"):
        weights_path("vox256", weights=named, checkpoint=named)


def test_random_weights_only_when_asked_for():
    a, b = build_model("lite", random_init=True), build_model("lite", random_init=True)
    assert all((x == y).all() for x, y in zip(a.state_dict().values(), b.state_dict().values()))  # seeded
