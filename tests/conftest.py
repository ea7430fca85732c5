"""Shared fixtures: the shipped sample clip, the shared data set (skips when absent), RNG hygiene,
and automatic skipping of GPU tests without CUDA."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytest_plugins = ["tests.served"]  # the real tritonserver of tests/client and tests/serving
REPO = Path(__file__).resolve().parent.parent
SAMPLE_CLIP = REPO / "samples" / "talking_00086_4s.mp4"
SHARED_FACES = Path(os.environ.get("FACECODEC_SHARED_FACES", REPO.parent / "shared" / "data" / "faces"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_rng():
    """Tests may seed freely; the global RNG state is restored afterwards."""
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    yield
    torch.set_rng_state(torch_state)
    np.random.set_state(np_state)


@pytest.fixture(scope="session")
def sample_frames() -> np.ndarray:
    """The shipped CC-BY sample: (100, 256, 256, 3) uint8 RGB real face frames."""
    from facecodec.media import read_video

    return read_video(SAMPLE_CLIP)


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    """../shared/data/faces (third-party clips; present in CI, absent in a user's clone)."""
    if not (SHARED_FACES / "train").is_dir():
        pytest.skip(f"shared face data not found at {SHARED_FACES} (set FACECODEC_SHARED_FACES)")
    return SHARED_FACES


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """facecodec's wheel built from this tree (tests/packaging.py)."""
    from .packaging import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def torch_free_venv(tmp_path_factory, wheel) -> Path:
    """A venv of `facecodec[client]` without torch, made offline (tests/packaging.py)."""
    from .packaging import client_venv

    return client_venv(tmp_path_factory.mktemp("client") / "venv", wheel)


@pytest.fixture(scope="session")
def expression_sender():
    """The expression channel's sender (MediaPipe landmarks); skips without mediapipe."""
    from facecodec.expression import ExpressionSender

    try:
        sender = ExpressionSender()
    except ImportError as err:
        pytest.skip(str(err))
    yield sender
    sender.close()
