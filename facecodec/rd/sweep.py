"""The measurement: every clip through every facecodec setting and every anchor encode → `RdPoint`s."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..codec.pipeline import Networks
from ..codec.sender import stream_header
from ..media import probe_fps, read_video
from .anchors import encode_anchor, get_anchor
from .neural import (DEFAULT_SETTING, NeuralEncode, NeuralSetting, QuantisationEffect, run_setting, sender_motion,
                     unquantised_gap)
from .quality import LpipsPlan, QualityMeter

log = logging.getLogger(__name__)
FACECODEC = "facecodec"
KEYFRAME_ONLY = "keyframe-only"  # the default keyframe shown for every frame: the baseline a codec must beat


@dataclass(frozen=True, eq=False)
class Clip:
    name: str
    path: str
    frames: np.ndarray  # (T, 256, 256, 3) uint8, the reference every decode is compared with
    fps: float

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps


@dataclass(frozen=True)
class RdPoint:
    """One codec setting on one clip (clip "mean": averaged over clips).

    kbps: the rate of this clip with everything counted — facecodec: header + keyframe + motion
    packets; anchors: coded video packets (no container). steady_kbps: a long call's rate —
    facecodec: motion packets only; anchors: packets after the opening intra frame. file_kbps:
    anchors' whole MP4 file (container included); facecodec's stream file (= kbps).
    """

    clip: str
    codec: str
    setting: str
    kbps: float
    steady_kbps: float
    file_kbps: float
    quality: dict[str, float]
    sizes: dict[str, int] = field(default_factory=dict)
    default: bool = False

    def call_kbps(self, seconds: float) -> float:
        """A call of `seconds`: the long-call rate plus the one-off bytes (facecodec: header and keyframe;
        anchors: their opening intra frame) amortised over it."""
        one_off = self.sizes.get("header", 0) + self.sizes.get("keyframe", 0) + self.sizes.get("first_packet", 0)
        return self.steady_kbps + 8.0 * one_off / seconds / 1000.0

    @property
    def call12_kbps(self) -> float:
        return self.call_kbps(12.0)

    @property
    def call60_kbps(self) -> float:
        return self.call_kbps(60.0)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> RdPoint:
        return cls(**data)


def find_videos(items: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their *.mp4 (sorted)."""
    paths: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            paths += sorted(item.glob("*.mp4"))
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"no such video or folder: {item}")
    if not paths:
        raise ValueError(f"no .mp4 videos found in {', '.join(map(str, items))}")
    return paths


def validation_videos(manifest: str | Path, count: int, min_frames: int) -> list[Path]:
    """The first clip (by name) of each of the first `count` validation identities (sorted) that
    has at least `min_frames` frames — never trained on (`facecodec.identity_split`)."""
    from ..identity_split import read_clips, split_identities

    manifest = Path(manifest)
    _, val = split_identities(manifest)
    chosen = []
    for identity in val:
        clips = sorted(c.file for c in read_clips(manifest) if c.identity == identity and c.frames >= min_frames)
        if clips:
            chosen.append(manifest.parent / clips[0])
        if len(chosen) == count:
            break
    return chosen


def load_clip(path: Path, max_frames: int | None) -> Clip:
    return Clip(path.stem, str(path), read_video(path, size=256, max_frames=max_frames), probe_fps(path))


@dataclass
class Sweep:
    """What to run on each clip. `networks`: the preset's networks (eager or ORT)."""

    networks: Networks
    preset: str
    num_kp: int
    codecs: Sequence[str]
    settings: Sequence[NeuralSetting]
    anchor_crfs: dict[str, Sequence[int]] = field(default_factory=dict)  # overrides of the default sweeps
    lpips: LpipsPlan = field(default_factory=LpipsPlan)
    threads: int = 1  # per anchor encode
    expression: object = None  # the expression channel's sender (`facecodec.expression.ExpressionSender`), or None
    progress: Callable[[str], None] = log.info

    def run(self, clip: Clip, cached: Sequence[RdPoint] = ()) -> tuple[list[RdPoint], QuantisationEffect | None]:
        """All points of one clip, and the quantisation check at the default setting (if swept).

        cached: anchor points of an earlier run on the same clip and metric plan (they do not depend
        on facecodec's weights); an anchor whose every CRF is among them is not encoded again."""
        meter = QualityMeter(clip.frames, self.lpips)
        points, gap = self.facecodec_points(clip, meter)
        for codec in self.codecs:
            crfs = self.anchor_crfs.get(codec, get_anchor(codec).crfs)
            reuse = {p.setting: p for p in cached if (p.clip, p.codec) == (clip.name, codec)}
            if all(f"crf {crf}" in reuse for crf in crfs):
                points += [reuse[f"crf {crf}"] for crf in crfs]
                self.progress(f"{clip.name}: {codec}: reusing {len(crfs)} measured points")
            else:
                points += self.anchor_points(clip, codec, meter)
        return points, gap

    def facecodec_points(self, clip: Clip, meter: QualityMeter) -> tuple[list[RdPoint], QuantisationEffect | None]:
        if not self.settings:
            return [], None
        header = stream_header(self.preset, self.num_kp, clip.frames.shape[1], clip.fps, expression=self.expression)
        motion = sender_motion(self.networks, clip.frames)
        if self.expression is not None:
            motion = motion.with_face(self.expression.encode(clip.frames))
        points, gap = [], None
        for setting in self.settings:
            start = time.perf_counter()
            enc = run_setting(self.networks, clip.frames, clip.fps, motion, header, setting, expression=self.expression)
            quality = meter.summary(enc.frames)
            sizes = {"stream": enc.stream_bytes, "header": enc.header_bytes, "keyframe": enc.keyframe_bytes,
                     "motion": enc.motion_bytes}
            points.append(RdPoint(clip.name, FACECODEC, setting.label, enc.kbps, enc.motion_kbps, enc.kbps, quality,
                                  sizes, default=setting == DEFAULT_SETTING))
            self._log(clip, points[-1], time.perf_counter() - start)
            if setting == DEFAULT_SETTING:
                gap = unquantised_gap(self.networks, enc, motion, self.lpips, lpips=meter.lpips)
                points.append(keyframe_only_point(clip, enc, meter))
                self._log(clip, points[-1], time.perf_counter() - start)
        return points, gap

    def anchor_points(self, clip: Clip, codec: str, meter: QualityMeter) -> list[RdPoint]:
        points = []
        for crf in self.anchor_crfs.get(codec, get_anchor(codec).crfs):
            start = time.perf_counter()
            enc = encode_anchor(clip.frames, clip.fps, codec, crf, threads=self.threads)
            sizes = {"file": enc.file_bytes, "payload": enc.payload_bytes, "first_packet": enc.first_packet_bytes}
            points.append(RdPoint(clip.name, codec, f"crf {crf}", enc.kbps, enc.steady_kbps, enc.file_kbps,
                                  meter.summary(enc.frames), sizes))
            self._log(clip, points[-1], time.perf_counter() - start)
        return points

    def _log(self, clip: Clip, point: RdPoint, seconds: float) -> None:
        quality = " ".join(f"{k} {v:.4g}" for k, v in point.quality.items())
        self.progress(f"{clip.name}: {point.codec} {point.setting}: {point.kbps:.1f} kbps, {quality} ({seconds:.1f} s)")


def keyframe_only_point(clip: Clip, encoded: NeuralEncode, meter: QualityMeter) -> RdPoint:
    """The decoded keyframe repeated for every frame: one image and no motion (rate 0 in a long call)."""
    frozen = np.repeat(encoded.keyframe[None], len(clip.frames), axis=0)
    kept = encoded.header_bytes + encoded.keyframe_bytes
    kbps = 8.0 * kept / encoded.seconds / 1000.0
    return RdPoint(clip.name, KEYFRAME_ONLY, encoded.setting.label.split(", ")[1], kbps, 0.0, kbps,
                   meter.summary(frozen), {"stream": kept, "header": encoded.header_bytes,
                                           "keyframe": encoded.keyframe_bytes, "motion": 0})


def mean_points(points: Sequence[RdPoint]) -> list[RdPoint]:
    """Per (codec, setting): rates and qualities averaged over the clips (settings present in every clip)."""
    clips = sorted({p.clip for p in points})
    groups: dict[tuple[str, str], list[RdPoint]] = {}
    for p in points:
        groups.setdefault((p.codec, p.setting), []).append(p)
    out = []
    for (codec, setting), group in groups.items():
        if len(group) != len(clips):
            continue
        quality = {k: float(np.mean([g.quality[k] for g in group])) for k in group[0].quality}
        sizes = {k: int(round(np.mean([g.sizes[k] for g in group]))) for k in group[0].sizes}
        out.append(RdPoint("mean", codec, setting, *(float(np.mean([getattr(g, a) for g in group]))
                                                    for a in ("kbps", "steady_kbps", "file_kbps")),
                           quality, sizes, group[0].default))
    return out
