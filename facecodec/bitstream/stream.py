"""Stream files: the header followed by packets, exactly as an `Encoder` produced them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence

import numpy as np

from .decoder import DecodedFrame, Decoder
from .encoder import Encoder
from .errors import DropReason
from .header import StreamHeader
from .motion import Motion
from .refresh import RefreshPolicy
from .stats import StreamStats

FILE_REORDER_WINDOW = 8  # frames a file reader waits for a late packet


@dataclasses.dataclass(frozen=True, eq=False)
class DecodedStream:
    """What `read_stream` found: frames (one per frame number), received stats, drop counts."""

    header: StreamHeader
    frames: list[DecodedFrame]
    stats: StreamStats
    drops: dict[DropReason, int]


def encode_stream(header: StreamHeader, motions: Sequence[Motion], *, source_image: np.ndarray | None = None,
                  timestamps_ms: Sequence[int] | None = None, target_kbps: float | None = None,
                  images: Sequence[np.ndarray] | None = None, refresh: RefreshPolicy | None = None) -> bytes:
    """Header + packets of a whole sequence; timestamps default to the nominal frame rate. With
    `refresh`, `images` (one per motion) are the frames it may send as new keyframes."""
    if refresh is not None and (images is None or len(images) != len(motions)):
        raise ValueError("a refresh policy needs the frame images, one per motion")
    encoder = Encoder(header, target_kbps=target_kbps, refresh=refresh)
    if source_image is not None:
        encoder.request_keyframe(source_image)
    if timestamps_ms is None:
        timestamps_ms = [round(n * header.frame_ms) for n in range(len(motions))]
    frames = images if images is not None else [None] * len(motions)
    chunks = [encoder.encode(motion, ts, image)
              for motion, ts, image in zip(motions, timestamps_ms, frames, strict=True)]
    return header.to_bytes() + b"".join(chunks)


def decode_stream(data: bytes, *, reorder_window: int = FILE_REORDER_WINDOW) -> DecodedStream:
    """Decode header + packets; only a damaged header raises (a BitstreamError)."""
    header, offset = StreamHeader.parse(data)
    decoder = Decoder(header, reorder_window=reorder_window)
    frames = decoder.push(data[offset:]) + decoder.flush()
    return DecodedStream(header, frames, decoder.stats, dict(decoder.drops))


def write_stream(path: str | os.PathLike, header: StreamHeader, chunks: Iterable[bytes]) -> int:
    """Write the header and the `Encoder.encode` outputs to `path`; returns bytes written."""
    with open(path, "wb") as file:
        written = file.write(header.to_bytes())
        for chunk in chunks:
            written += file.write(chunk)
    return written


def read_stream(path: str | os.PathLike, *, reorder_window: int = FILE_REORDER_WINDOW) -> DecodedStream:
    """`decode_stream` of a file."""
    with open(path, "rb") as file:
        return decode_stream(file.read(), reorder_window=reorder_window)
