"""Conventional codec anchors through ffmpeg: encode the clip's own 256² RGB frames at its frame rate,
measure what the file costs, decode it back.

Each anchor is a constant-quality (CRF) sweep; CRF 51 (H.264/HEVC) and 63 (AV1) are the encoders'
coarsest settings, which at 256², 25 fps and a few seconds land near 5–15 kbit/s — the floor of
these codecs at this resolution and frame rate. Frames go in as rgb24, are converted to yuv420p by
ffmpeg (as any camera pipeline would) and come back as rgb24 with the same matrix. Encoders run
single-threaded by default: a 256² call needs no more, and x264's sliced threads (zerolatency) would
otherwise cost it compression and make sizes depend on the machine.

Sizes: `payload_bytes` is the sum of the coded video packets (the elementary stream, read with
ffmpeg's framemd5 muxer), `file_bytes` the whole MP4 (container overhead: moov/mdat headers and
per-sample tables, ≈ 1–2 kB here). `first_packet_bytes` is the opening intra frame, reported so a
long-call rate (intra frame amortised away) can be stated beside the clip rate.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..media import ffmpeg_exe, file_arg


@dataclass(frozen=True)
class AnchorCodec:
    """An ffmpeg encoder configuration swept over one quality parameter (`-crf`)."""

    name: str
    encoder: str
    options: tuple[str, ...]
    crfs: tuple[int, ...]  # default sweep, finest first
    description: str

    def command(self, crf: int, width: int, height: int, fps: float, out: Path, threads: int) -> list[str]:
        return [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                "-r", f"{fps}", "-i", "-", "-pix_fmt", "yuv420p", "-c:v", self.encoder, *self.options,
                "-crf", str(crf), "-threads", str(threads), "-an", file_arg(out)]


ANCHORS: dict[str, AnchorCodec] = {
    c.name: c
    for c in (
        AnchorCodec("x264-veryslow", "libx264", ("-preset", "veryslow"), (27, 33, 39, 45, 51),
                    "H.264 (x264) preset veryslow, default GOP with B-frames and lookahead: the best x264 can do"),
        AnchorCodec("x264-zerolatency", "libx264", ("-preset", "veryslow", "-tune", "zerolatency"),
                    (27, 33, 39, 45, 51),
                    "H.264 (x264) preset veryslow + tune zerolatency: same search effort, low-delay structure "
                    "(no B-frames, no lookahead or mb-tree) as a real-time call would use"),
        AnchorCodec("x265", "libx265", ("-preset", "medium", "-x265-params", "log-level=error"), (27, 33, 39, 45, 51),
                    "HEVC (x265) preset medium, default GOP"),
        AnchorCodec("av1", "libaom-av1", ("-cpu-used", "6", "-row-mt", "1", "-b:v", "0"), (40, 48, 54, 59, 63),
                    "AV1 (libaom) cpu-used 6, constant quality (-b:v 0)"),
        AnchorCodec("av1-svt", "libsvtav1", ("-preset", "8", "-svtav1-params", "verbosity=0"), (40, 48, 54, 59, 63),
                    "AV1 (SVT-AV1) preset 8, constant quality"),
    )
}
DEFAULT_ANCHORS = ("x264-veryslow", "x264-zerolatency", "x265", "av1")


@dataclass(frozen=True, eq=False)
class AnchorEncode:
    """One anchor encode of one clip: its sizes and the decoded frames."""

    codec: str
    crf: int
    frames: np.ndarray  # (T, H, W, 3) uint8, decoded
    seconds: float  # clip duration, T / fps
    file_bytes: int
    payload_bytes: int
    first_packet_bytes: int
    encode_seconds: float

    @property
    def kbps(self) -> float:
        """Coded video packets (elementary stream, no container) over the clip."""
        return 8.0 * self.payload_bytes / self.seconds / 1000.0

    @property
    def file_kbps(self) -> float:
        """The whole MP4 file over the clip (container overhead included)."""
        return 8.0 * self.file_bytes / self.seconds / 1000.0

    @property
    def steady_kbps(self) -> float:
        """Packets after the opening intra frame: the rate of a long call, the intra frame amortised away."""
        return 8.0 * (self.payload_bytes - self.first_packet_bytes) / self.seconds / 1000.0


def get_anchor(name: str) -> AnchorCodec:
    try:
        return ANCHORS[name]
    except KeyError:
        raise ValueError(f"unknown anchor codec {name!r}; choose from {sorted(ANCHORS)}") from None


def encode_anchor(frames: np.ndarray, fps: float, codec: AnchorCodec | str, crf: int, *,
                  workdir: str | Path | None = None, threads: int = 1) -> AnchorEncode:
    """Encode (T, H, W, 3) uint8 RGB at `crf`, measure the sizes, decode back to (T, H, W, 3)."""
    codec = get_anchor(codec) if isinstance(codec, str) else codec
    t, h, w, _ = frames.shape
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        out = Path(tmp) / f"{codec.name}_crf{crf}.mp4"
        start = time.perf_counter()
        _run(codec.command(crf, w, h, fps, out, threads), np.ascontiguousarray(frames, np.uint8).tobytes(), out)
        encode_seconds = time.perf_counter() - start
        sizes = packet_sizes(out)
        decoded = decode_rgb(out, w, h)
        file_bytes = out.stat().st_size
    if decoded.shape[0] != t:
        raise RuntimeError(f"{codec.name} crf {crf}: {decoded.shape[0]} frames decoded, {t} encoded")
    return AnchorEncode(codec.name, crf, decoded, t / fps, file_bytes, int(sum(sizes)), int(sizes[0]), encode_seconds)


def packet_sizes(path: Path) -> list[int]:
    """Sizes of the video packets of a file in decode order (ffmpeg's framemd5 muxer, no ffprobe needed)."""
    proc = _run([ffmpeg_exe(), "-v", "error", "-i", file_arg(path), "-map", "0:v:0", "-c", "copy", "-f", "framemd5",
                 "-"], None, path)
    sizes = [int(line.split(",")[4]) for line in proc.stdout.decode().splitlines() if line and not line.startswith("#")]
    if not sizes:
        raise RuntimeError(f"{path}: no video packets found")
    return sizes


def decode_rgb(path: Path, width: int, height: int) -> np.ndarray:
    """All frames of a file as (T, height, width, 3) uint8 RGB."""
    proc = _run([ffmpeg_exe(), "-v", "error", "-i", file_arg(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                None, path)
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, height, width, 3)


def _run(cmd: list[str], data: bytes | None, path: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, input=data, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed on {path.name}: {proc.stderr.decode(errors='replace').strip()}")
    return proc
