"""Training data: clips decoded once to a uint8 frame cache, and (source, driving) pair batches.

Decoding H.264 at every step would cost as much CPU as the model, so each clip is decoded once to
`<cache>/<stem>.npy` ((T, S, S, 3) uint8, every `frame_stride`-th frame: neighbouring frames at
25 fps are near-duplicates) and memory-mapped afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..media import read_video
from ..identity_split import Clip, read_clips

log = logging.getLogger(__name__)


def cache_clip(data_root: Path, clip: Clip, cache_dir: Path, size: int, frame_stride: int) -> Path:
    """Decode one clip into the cache unless it is there already; returns the .npy path."""
    out = cache_dir / f"{Path(clip.file).stem}_s{size}_every{frame_stride}.npy"
    if not out.is_file():
        frames = read_video(data_root / clip.file, size=size)[::frame_stride]
        tmp = out.with_suffix(".tmp.npy")
        np.save(tmp, np.ascontiguousarray(frames))
        tmp.rename(out)  # atomic: an interrupted decode never leaves a truncated cache file
    return out


@dataclass
class ClipFrames:
    identity: str
    name: str
    frames: np.ndarray  # (T, S, S, 3) uint8, memory-mapped
    path: Path  # the cache file (pose labels are stored beside it)


def load_clips(data_root: Path, manifest: Path, identities: list[str], cache_dir: Path,
               size: int = 256, frame_stride: int = 2) -> list[ClipFrames]:
    """Every clip of the given identities, decoded (once) and memory-mapped."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wanted = set(identities)
    clips = [c for c in read_clips(manifest) if c.identity in wanted]
    out = []
    for clip in clips:
        path = cache_clip(data_root, clip, cache_dir, size, frame_stride)
        out.append(ClipFrames(clip.identity, Path(clip.file).stem, np.load(path, mmap_mode="r"), path))
    log.info("%d clips, %d frames of %d identities", len(out), sum(len(c.frames) for c in out), len(wanted))
    return out


@dataclass(frozen=True)
class PairBatch:
    """`sources` (B, 3, S, S) and `drivings` (B, N, 3, S, S) in [0, 1]: N driving frames per source, all
    from the source's clip; `clip_ids` (B,) and frame indices (B, 1 + N) say where they came from."""

    sources: torch.Tensor
    drivings: torch.Tensor
    clip_ids: np.ndarray
    frame_ids: np.ndarray
    pose_labels: torch.Tensor | None = None  # (B + B·N, 3) degrees: sources, then drivings; NaN = no face
    landmarks: torch.Tensor | None = None  # (B, 1 + N, L, 2 or 3) `normalise_landmarks`; NaN = no face
    flipped: np.ndarray | None = None  # (B,) bool: the group was mirrored (augmentation)


class PairSampler:
    """Random (source, N drivings) groups from the same clip, clips weighted by their length.

    Several drivings share one source because the source side (f_s, x_c) is the dearest part of
    the model: its cost is then paid once per N pairs.
    """

    def __init__(self, clips: list[ClipFrames], drivings_per_source: int, rng: np.random.Generator,
                 augment: bool = True, poses: list[np.ndarray] | None = None,
                 landmarks: list[np.ndarray] | None = None, pose_balance: float = 0.0):
        self.clips = clips
        self.poses = poses
        self.landmarks = landmarks  # per clip (T, L, 2 or 3) pixels
        self.frame_weights = [np.full(len(c.frames), 1.0) for c in clips]
        if pose_balance > 0:
            if poses is None:
                raise ValueError("pose balancing needs pose labels")
            self.frame_weights = yaw_balance_weights(poses, pose_balance)
        totals = np.array([w.sum() for w in self.frame_weights])
        self.weights = totals / totals.sum()
        self.n = drivings_per_source
        self.rng = rng
        self.augment = augment

    def sample(self, batch: int) -> PairBatch:
        clip_ids = self.rng.choice(len(self.clips), size=batch, p=self.weights)
        groups, index, poses, points, mirrored = [], [], [], [], []
        for cid in clip_ids:
            frames = self.clips[cid].frames
            w = self.frame_weights[cid]
            idx = self.rng.choice(len(frames), size=1 + self.n, replace=len(frames) < 1 + self.n, p=w / w.sum())
            group = torch.from_numpy(np.stack([frames[i] for i in idx])).permute(0, 3, 1, 2).float().div_(255)
            flipped = self.augment and self.rng.random() < 0.5
            if flipped:
                group = group.flip(-1)
            mirrored.append(flipped)
            groups.append(jitter_colours(group, self.rng) if self.augment else group)
            index.append(idx)
            if self.poses is not None:
                pose = self.poses[cid][idx].copy()  # (1 + N, 3) yaw, pitch, roll
                if flipped:  # a mirror negates yaw and roll, keeps pitch
                    pose[:, [0, 2]] *= -1
                poses.append(pose)
            if self.landmarks is not None:
                points.append(normalise_landmarks(self.landmarks[cid][idx], group.shape[-1], flipped))
        stacked = torch.stack(groups)  # (B, 1 + N, 3, S, S)
        labels = None
        if poses:
            p = np.stack(poses)  # (B, 1 + N, 3) → sources first, then drivings source-major
            labels = torch.from_numpy(np.concatenate([p[:, 0], p[:, 1:].reshape(-1, 3)])).float()
        landmarks = torch.from_numpy(np.stack(points)).float() if points else None
        return PairBatch(stacked[:, 0].contiguous(), stacked[:, 1:].contiguous(), clip_ids, np.array(index), labels,
                         landmarks, np.array(mirrored, bool))


def yaw_balance_weights(poses: list[np.ndarray], balance: float, bin_deg: float = 10.0) -> list[np.ndarray]:
    """Per-frame sampling weights that flatten the |yaw| histogram: count(bin)^−balance (0 = every
    frame alike, 1 = every 10° bin alike). Large turns are rare in talking heads (≈ 1 % beyond
    30°), and the motion encoder misreads them on unseen faces. Unlabelled frames get the mean."""
    bins = [np.floor(np.abs(p[:, 0]) / bin_deg) for p in poses]
    labelled = np.concatenate([b[np.isfinite(b)] for b in bins]).astype(int)
    counts = np.bincount(labelled)
    weights = []
    for b in bins:
        w = np.full(len(b), np.nan)
        ok = np.isfinite(b)
        w[ok] = counts[b[ok].astype(int)].astype(np.float64) ** -balance
        weights.append(w)
    mean = np.nanmean(np.concatenate(weights))
    return [np.where(np.isnan(w), mean, w) for w in weights]


def sample_pose_frames(sampler: "PairSampler", count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` single frames from clips drawn independently, with their pose labels: the pose
    estimator sees many heads per step (a pair batch holds only a couple of clips).
    → images (count, 3, S, S) in [0, 1], labels (count, 3) degrees (NaN = no face)."""
    if sampler.poses is None:
        raise ValueError("pose frames need pose labels")
    images, labels = [], []
    for cid in sampler.rng.choice(len(sampler.clips), size=count, p=sampler.weights):
        i = int(sampler.rng.integers(len(sampler.clips[cid].frames)))
        image = torch.from_numpy(np.array(sampler.clips[cid].frames[i])).permute(2, 0, 1).float().div_(255)
        pose = sampler.poses[cid][i].copy()
        if sampler.augment and sampler.rng.random() < 0.5:
            image, pose = image.flip(-1), pose * np.array([-1, 1, -1], np.float32)
        images.append(jitter_colours(image[None], sampler.rng)[0] if sampler.augment else image)
        labels.append(pose)
    return torch.stack(images), torch.from_numpy(np.stack(labels)).float()


def normalise_landmarks(points: np.ndarray, size: int, flipped: bool) -> np.ndarray:
    """(…, L, 2 or 3) pixels of size² frames → x, y in [-1, 1] (the flow's units) and z on the same
    scale (2/size per pixel); a mirrored frame negates x (depth is unchanged)."""
    out = points.astype(np.float32) * (2 / size)
    out[..., :2] -= 1
    if flipped:
        out[..., 0] *= -1
    return out


def jitter_colours(group: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """The same colour jitter on all frames of a group (T, 3, S, S) (the flip, too, is shared): the
    motion between them must stay what it was, only the look changes."""
    brightness = 1 + rng.uniform(-0.15, 0.15)
    contrast = 1 + rng.uniform(-0.15, 0.15)
    saturation = 1 + rng.uniform(-0.15, 0.15)
    gain = torch.from_numpy(1 + rng.uniform(-0.05, 0.05, size=(1, 3, 1, 1))).float()  # white balance
    grey = group.mean(dim=1, keepdim=True)
    group = grey + (group - grey) * saturation
    mean = group.mean(dim=(1, 2, 3), keepdim=True)
    group = (group - mean) * contrast + mean
    return (group * brightness * gain).clamp_(0, 1)
