"""Shared fixtures for the bitstream tests: synthetic motion, a smooth image, an encode helper."""

from __future__ import annotations

import numpy as np
import pytest

from facecodec.bitstream import Encoder, StreamHeader
from facecodec.bitstream.synthetic import random_walk_motion


@pytest.fixture(scope="session")
def header() -> StreamHeader:
    return StreamHeader()


@pytest.fixture(scope="session")
def motions():
    """500 frames (20 s at 25 fps) of K = 15 synthetic talking-head motion."""
    return random_walk_motion(500, 15, seed=0)


@pytest.fixture(scope="session")
def smooth_image() -> np.ndarray:
    """(256, 256, 3) uint8: colour gradients plus two soft blobs (a face-like smooth image)."""
    y, x = np.mgrid[0:256, 0:256] / 255.0

    def blob(cy: float, cx: float, r: float) -> np.ndarray:
        return np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))

    image = np.stack([0.3 + 0.5 * x, 0.2 + 0.4 * y + 0.3 * blob(0.45, 0.5, 0.18), 0.6 - 0.3 * blob(0.6, 0.4, 0.1)], -1)
    return np.clip(image * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def encode_frames():
    """encode(header, motions, **encoder_kwargs) -> (per-frame byte chunks, (N, 6+3K) float32
    reconstructions the encoder expects the decoder to produce)."""

    def encode(header, motions, *, source_image=None, **kwargs):
        encoder = Encoder(header, **kwargs)
        if source_image is not None:
            encoder.request_keyframe(source_image)
        chunks, recon = [], []
        for n, motion in enumerate(motions):
            chunks.append(encoder.encode(motion, round(n * header.frame_ms)))
            recon.append(encoder.reconstruction.to_vector())
        return chunks, np.stack(recon)

    return encode



@pytest.fixture(scope="session")
def send_stream():
    """send(header, motions, *, images=None, **sender_kwargs) -> header + packets, through the codec's
    one sender loop (`facecodec.codec.Sender`) with the motion given; `images` (one per motion) makes
    images[0] the keyframe and lets a refresh policy send the others."""
    from facecodec.bitstream import stream_bytes
    from facecodec.codec.pipeline import MotionBatch
    from facecodec.codec.sender import Sender

    def send(header, motions, *, images=None, **kwargs):
        sender = Sender(None, header, **kwargs)
        frames = None if images is None else np.stack(images)
        return stream_bytes(header, sender.send(frames, MotionBatch.from_motions(motions)))

    return send
