"""Stream files: the header followed by packets, exactly as an `Encoder` produced them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

from .decoder import DecodedFrame, Decoder
from .errors import DropReason
from .header import StreamHeader
from .stats import StreamStats

FILE_REORDER_WINDOW = 8  # frames a file reader waits for a late packet


@dataclasses.dataclass(frozen=True, eq=False)
class DecodedStream:
    """What `read_stream` found: frames (one per frame number), received stats, drop counts."""

    header: StreamHeader
    frames: list[DecodedFrame]
    stats: StreamStats
    drops: dict[DropReason, int]


def stream_bytes(header: StreamHeader, chunks: Iterable[bytes]) -> bytes:
    """A whole stream: the header, then the `Encoder.encode` outputs (what a stream file holds)."""
    return header.to_bytes() + b"".join(chunks)


def decode_stream(data: bytes, *, reorder_window: int = FILE_REORDER_WINDOW, key: bytes | None = None) -> DecodedStream:
    """Decode header + packets; only a damaged header raises (a BitstreamError). `key`: the packet
    key of an authenticated stream (`bitstream.auth`)."""
    header, offset = StreamHeader.parse(data)
    decoder = Decoder(header, reorder_window=reorder_window, key=key)
    frames = decoder.push(data[offset:]) + decoder.flush()
    return DecodedStream(header, frames, decoder.stats, dict(decoder.drops))


def write_stream(path: str | os.PathLike, header: StreamHeader, chunks: Iterable[bytes]) -> int:
    """Write the header and the `Encoder.encode` outputs to `path`; returns bytes written."""
    data = stream_bytes(header, chunks)
    with open(path, "wb") as file:
        return file.write(data)


def read_stream(path: str | os.PathLike, *, reorder_window: int = FILE_REORDER_WINDOW,
                key: bytes | None = None) -> DecodedStream:
    """`decode_stream` of a file."""
    with open(path, "rb") as file:
        return decode_stream(file.read(), reorder_window=reorder_window, key=key)
