"""Carry the training frame cache to a GPU machine that cannot see the data (phase 4 of the model card).

The decoded cache (`~/.cache/facecodec/frames`, 1.6 GB of uint8 .npy) does not fit a 64 MiB
transfer; as x264 (yuv444, CRF 14: ≈ 43 dB against the cache) with the cached face labels it
takes ≈ 36 MB, and unpacking restores the exact file names `facecodec train --cache` reads.

    python3 scripts/frame_pack.py pack   ~/.cache/facecodec/frames PACK   # here (ffmpeg)
    python3 scripts/frame_pack.py unpack PACK /tmp/cache                  # there (OpenCV decodes)

Only every third of the 478 landmarks travels (`LANDMARKS`): the landmark losses average over
points, so fewer points change their noise, not their meaning.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np

LANDMARKS = np.arange(0, 478, 3)
LABELS = ("_lmk3.npy", "_pose.npy")


def pack(cache: Path, out: Path, crf: int = 14) -> None:
    from facecodec.media import ffmpeg_exe

    out.mkdir(parents=True, exist_ok=True)
    for frames_path in sorted(cache.glob("*_every*.npy")):
        if frames_path.name.endswith(LABELS):
            continue
        frames = np.load(frames_path, mmap_mode="r")
        t, h, w, _ = frames.shape
        stem = frames_path.stem
        subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                        "-r", "25", "-i", "-", "-c:v", "libx264", "-preset", "slow", "-crf", str(crf),
                        "-pix_fmt", "yuv444p", str(out / f"{stem}.mp4")],
                       input=np.ascontiguousarray(frames).tobytes(), check=True)
        landmarks, poses = (np.load(cache / f"{stem}{suffix}") for suffix in LABELS)
        if not len(landmarks) == len(poses) == t:
            raise ValueError(f"{stem}: {t} frames but {len(landmarks)} landmark and {len(poses)} pose rows")
        np.save(out / f"{stem}_lmk3.npy", np.ascontiguousarray(landmarks[:, LANDMARKS]))
        np.save(out / f"{stem}_pose.npy", poses)


def unpack(pack_dir: Path, cache: Path) -> int:
    import cv2  # the GPU image has OpenCV (with its own FFmpeg) but no ffmpeg binary

    cache.mkdir(parents=True, exist_ok=True)
    total = 0
    for video in sorted(pack_dir.glob("*.mp4")):
        capture, frames = cv2.VideoCapture(str(video)), []
        while (read := capture.read())[0]:
            frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
        labels = {suffix: np.load(pack_dir / f"{video.stem}{suffix}") for suffix in LABELS}
        if any(len(v) != len(frames) for v in labels.values()):
            raise ValueError(f"{video.name}: decoded {len(frames)} frames, labels disagree")
        np.save(cache / f"{video.stem}.npy", np.stack(frames))
        for suffix, value in labels.items():
            np.save(cache / f"{video.stem}{suffix}", value)
        total += len(frames)
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["pack", "unpack"])
    p.add_argument("source", type=Path)
    p.add_argument("dest", type=Path)
    args = p.parse_args()
    if args.action == "pack":
        pack(args.source, args.dest)
    else:
        print(f"unpacked {unpack(args.source, args.dest)} frames")


if __name__ == "__main__":
    main()
