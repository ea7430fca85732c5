"""Bit-rate accounting per packet kind (keyframe, intra motion, predicted motion)."""

from __future__ import annotations

import dataclasses

from .packet import Flags, Packet, PacketType


@dataclasses.dataclass
class StreamStats:
    """Bytes and packet counts of a stream; rates over its duration (motion frames / fps).

    Byte counts are whole framed packets (length prefix and CRC included); the stream
    header, sent once, is not counted.
    """

    fps: float
    keyframe_bytes: int = 0
    intra_bytes: int = 0
    predicted_bytes: int = 0
    keyframes: int = 0
    intra_frames: int = 0
    predicted_frames: int = 0

    def add(self, packet: Packet) -> None:
        """Count one packet (its framed size)."""
        size = packet.framed_size
        if packet.type == PacketType.KEYFRAME:
            self.keyframe_bytes += size
            self.keyframes += 1
        elif Flags.INTRA in packet.flags:
            self.intra_bytes += size
            self.intra_frames += 1
        else:
            self.predicted_bytes += size
            self.predicted_frames += 1

    @property
    def frames(self) -> int:
        """Number of MOTION packets counted (one per frame)."""
        return self.intra_frames + self.predicted_frames

    @property
    def seconds(self) -> float:
        """Duration the counted frames cover."""
        return self.frames / self.fps

    def kbps(self, *, keyframes: bool = True) -> float:
        """Mean rate in kbit/s (1000 bit/s), with or without keyframe bytes; 0 for no frames."""
        total = self.intra_bytes + self.predicted_bytes + (self.keyframe_bytes if keyframes else 0)
        return 8.0 * total / self.seconds / 1000.0 if self.frames else 0.0
