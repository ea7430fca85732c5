"""A real tritonserver for the tests that need one (tests/client, tests/serving): lite exported to a
temporary directory, served from a temporary copy of model_repository/ on free loopback ports, once
per test session. A pytest plugin (tests/conftest.py loads it): fixtures and their helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facecodec.client.calls import Connection
from facecodec.bitstream import write_stream
from facecodec.codec.pipeline import OrtNetworks
from facecodec.codec.receiver import decode_file
from facecodec.codec.sender import Sender, stream_header
from facecodec.media import read_video, to_frames
from facecodec.serving import repository
from facecodec.serving.server import TritonServer
from facecodec.serving.settings import ServingSettings

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CLIP = REPO / "samples" / "talking_00086_4s.mp4"
REPOSITORY = REPO / "model_repository"
# a session cap small enough to hit in a test; the warp in fp32, so that a served decode matches the
# in-process one to PSNR_MIN_DB (the served default, bf16, is checked against fp32 on its own)
SETTINGS = ServingSettings(max_sessions=12, session_idle_s=60.0, warp_precision="f32")
PSNR_MIN_DB = 45.0  # server decode vs in-process decode of the same stream


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory) -> Path:
    return repository.ensure_export(tmp_path_factory.mktemp("onnx"), "lite")


@pytest.fixture(scope="session")
def triton(onnx_dir, tmp_path_factory):
    repo = repository.stage(REPOSITORY, tmp_path_factory.mktemp("model_repository"), onnx_dir, SETTINGS)
    with TritonServer(
        repo, log_path=tmp_path_factory.mktemp("log") / "tritonserver.log", startup_timeout=300
    ) as server:
        yield server


@pytest.fixture(scope="session")
def conn(triton) -> Connection:
    return Connection(triton.grpc_url, timeout=240.0)


@pytest.fixture(scope="session")
def local(onnx_dir) -> OrtNetworks:
    """The in-process reference: the same ONNX files on ONNX Runtime."""
    return OrtNetworks(onnx_dir)


@pytest.fixture(scope="session")
def clip() -> Path:
    return SAMPLE_CLIP


@pytest.fixture(scope="session")
def stream_factory(local, tmp_path_factory):
    """stream(first, count) → a stream file of clip frames [first, first + count), encoded in-process."""
    frames = read_video(SAMPLE_CLIP)
    folder = tmp_path_factory.mktemp("streams")

    def make(first: int = 0, count: int = 8) -> Path:
        path = folder / f"clip_{first}_{count}.fcdc"
        if not path.exists():
            header = stream_header("lite", 15, 256, 25.0)
            write_stream(path, header, Sender(local, header).send(frames[first : first + count]))
        return path

    return make


def local_decode(local, stream: Path) -> np.ndarray:
    return decode_file(local, stream)


def assert_close_frames(got: np.ndarray, expected: np.ndarray, min_db: float = PSNR_MIN_DB) -> float:
    from facecodec.quality import psnr

    assert got.shape == expected.shape, f"{got.shape} != {expected.shape}"
    value = psnr(got, expected, per_frame=False)
    assert value >= min_db, f"PSNR {value:.1f} dB < {min_db} dB"
    return value


__all__ = ["assert_close_frames", "local_decode", "to_frames"]
