"""Video and image I/O through ffmpeg pipes: RGB uint8 frames (T, H, W, 3) in and out.

Uses the system `ffmpeg` when present (Debian's build has x264, x265 and AV1 encoders), else the
binary shipped in the `imageio-ffmpeg` wheel.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np


def ffmpeg_exe() -> str:
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def file_arg(path: str | Path) -> str:
    """A path as ffmpeg must read it: always a local file ("file:" and absolute), so that a name
    starting with "-" is not an option and one like "concat:a|b" or "http://…" is not a protocol."""
    return "file:" + str(Path(path).absolute())


def probe_fps(path: str | Path) -> float:
    """Frame rate of a video file (frames per second), read from ffmpeg's stream info."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", file_arg(path)], capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        if "Video:" in line and " fps" in line:
            return float(line.split(" fps")[0].rsplit(",", 1)[-1])
    raise ValueError(f"{path}: no video stream found")


def read_video(path: str | Path, size: int | None = 256, max_frames: int | None = None) -> np.ndarray:
    """Decode a video to (T, size, size, 3) uint8 RGB; frames are centre-cropped square, then scaled."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    vf = "crop='min(iw,ih)':'min(iw,ih)'"
    if size:
        vf += f",scale={size}:{size}:flags=area"
    cmd = [ffmpeg_exe(), "-v", "error", "-i", file_arg(path), "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24"]
    if max_frames:
        cmd += ["-frames:v", str(max_frames)]
    proc = subprocess.run(cmd + ["-"], capture_output=True)
    if proc.returncode != 0:
        raise ValueError(f"ffmpeg could not decode {path}: {proc.stderr.decode(errors='replace').strip()}")
    side = size or _probe_side(path)
    frames = np.frombuffer(proc.stdout, np.uint8)
    if frames.size == 0:
        raise ValueError(f"{path}: no frames decoded")
    return frames.reshape(-1, side, side, 3)


def _probe_side(path: Path) -> int:
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", file_arg(path)], capture_output=True, text=True)
    for token in proc.stderr.replace(",", " ").split():
        if "x" in token and token.split("x")[0].isdigit() and token.split("x")[1].isdigit():
            w, h = (int(v) for v in token.split("x"))
            return min(w, h)
    raise ValueError(f"{path}: cannot read frame size")


def write_video(path: str | Path, frames: np.ndarray, fps: float = 25.0, crf: int = 12) -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames to H.264 MP4 (near-lossless by default)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t, h, w, _ = frames.shape
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", f"{fps}", "-i", "-", "-c:v", "libx264", "-crf", str(crf), "-pix_fmt", "yuv420p", file_arg(path)]
    proc = subprocess.run(cmd, input=np.ascontiguousarray(frames, np.uint8).tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write {path}: {proc.stderr.decode(errors='replace').strip()}")
    return path


def read_image(path: str | Path, size: int = 256) -> np.ndarray:
    """An image file → (size, size, 3) uint8 RGB, centre-cropped square and scaled."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img)


VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm"})


def read_still(path: str | Path, size: int = 256) -> np.ndarray:
    """An image, or a video's first frame → (size, size, 3) uint8 RGB (a clip stands for its face)."""
    if Path(path).suffix.lower() in VIDEO_SUFFIXES:
        return read_video(path, size=size, max_frames=1)[0]
    return read_image(path, size=size)


def to_tensor_batch(frames: np.ndarray):
    """(T, H, W, 3) uint8 → float32 torch (T, 3, H, W) in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)


def to_frames(images) -> np.ndarray:
    """float (T, 3, H, W) in [0, 1] (torch or numpy) → (T, H, W, 3) uint8."""
    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    return (np.clip(arr, 0, 1).transpose(0, 2, 3, 1) * 255 + 0.5).astype(np.uint8)
