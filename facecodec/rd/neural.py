"""facecodec operating points: a clip through sender → real bitstream → receiver, at one setting.

The sender estimates every frame's motion once per clip (`sender_motion`); each setting then codes
that motion with the codec's `Sender` (quantiser scale `qscale` or a `target_kbps`, keyframe =
frame 0 as WebP at `keyframe_quality`), the `Decoder` parses the bytes, and the codec's receiver
renders every frame from the DECODED keyframe and the DECODED motion. Rates count the bytes of that stream:

- `kbps`: everything — stream header, keyframe packet, motion packets (framing and CRC included) —
  over the clip's duration, i.e. the keyframe amortised over this clip only;
- `motion_kbps`: motion packets only (= `StreamStats.kbps(keyframes=False)`), the rate of a long
  call once the keyframe is amortised away;
- `keyframe_bytes`, `header_bytes`: the one-off costs, so any other call length can be computed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..bitstream import DecodedFrame, DecodedStream, ImageCodec, Motion, StreamHeader, decode_stream, stream_bytes
from ..bitstream.keyframe import DEFAULT_QUALITIES, DEFAULT_QUALITY
from ..bitstream.quant import QSCALE_UNITY
from ..codec.pipeline import MotionBatch, Networks, encode_frames, images_to_batch
from ..codec.receiver import receive
from ..codec.sender import Sender, stream_header
from ..media import to_frames
from .quality import LpipsPlan, QualityMeter


_KEYFRAME_TAGS = {"webp": "kf", "jpeg": "jpeg", "avif": "avif"}  # label prefixes ("kf": WebP, as before issue 21)


@dataclass(frozen=True)
class NeuralSetting:
    """One facecodec operating point: fixed quantiser scale (or a rate target), the keyframe's codec and
    quality, and the packet layout (`legacy`: versions 1/2, the stream before issue 21)."""

    qscale: int = QSCALE_UNITY
    keyframe_quality: int = DEFAULT_QUALITY
    target_kbps: float | None = None  # motion-rate target for the rate controller; overrides qscale
    keyframe_codec: str = "webp"  # webp, jpeg or avif
    legacy: bool = False

    @property
    def label(self) -> str:
        motion = f"target {self.target_kbps:g} kbps" if self.target_kbps else f"q{self.qscale}"
        return f"{motion}, {_KEYFRAME_TAGS[self.keyframe_codec]}{self.keyframe_quality}" + ", legacy" * self.legacy

    @classmethod
    def from_label(cls, label: str) -> NeuralSetting:
        """Inverse of `label` ('q24, avif50', 'q24, kf90, legacy' or 'target 6 kbps, kf90'; kf = WebP)."""
        motion, keyframe, *rest = label.split(", ")
        codec = next(c for c, tag in _KEYFRAME_TAGS.items() if keyframe.startswith(tag))
        options = {"keyframe_quality": int(keyframe[len(_KEYFRAME_TAGS[codec]):]), "keyframe_codec": codec,
                   "legacy": rest == ["legacy"]}
        if motion.startswith("target "):
            return cls(target_kbps=float(motion.split()[1]), **options)
        return cls(int(motion[1:]), **options)

    def header(self, base: StreamHeader) -> StreamHeader:
        return dataclasses.replace(base, compact=not self.legacy)


DEFAULT_SETTING = NeuralSetting()
# The stream as it was before issue 21 (legacy packets, WebP 90 keyframe), measured in the same run
LEGACY_SETTING = NeuralSetting(QSCALE_UNITY, DEFAULT_QUALITY, keyframe_codec="webp", legacy=True)
# Keyframe quality dominates a short clip's rate, qscale the long-call (motion) rate: sweep both
# around the default (qscale 24 = the base steps, WebP 90), with AVIF at its default quality beside it.
DEFAULT_SWEEP = (
    NeuralSetting(16), DEFAULT_SETTING, NeuralSetting(32), NeuralSetting(47), NeuralSetting(24, 75),
    NeuralSetting(24, DEFAULT_QUALITIES[ImageCodec.AVIF], keyframe_codec="avif"), LEGACY_SETTING,
)


@dataclass(frozen=True, eq=False)
class NeuralEncode:
    """One clip at one setting: the receiver's frames and the stream's byte counts."""

    setting: NeuralSetting
    frames: np.ndarray  # (T, H, W, 3) uint8
    keyframe: np.ndarray  # (H, W, 3) uint8, the source image as the receiver decoded it
    seconds: float
    stream_bytes: int  # header + every packet, exactly what a file of the stream holds
    header_bytes: int
    keyframe_bytes: int
    motion_bytes: int

    @property
    def kbps(self) -> float:
        return 8.0 * self.stream_bytes / self.seconds / 1000.0

    @property
    def motion_kbps(self) -> float:
        return 8.0 * self.motion_bytes / self.seconds / 1000.0

    def call_kbps(self, call_seconds: float) -> float:
        """Rate of a call of `call_seconds` with this clip's motion rate and one keyframe + header."""
        return self.motion_kbps + 8.0 * (self.keyframe_bytes + self.header_bytes) / call_seconds / 1000.0


def sender_motion(networks: Networks, frames: np.ndarray, batch: int = 8) -> MotionBatch:
    """The sender's motion of every frame (T, H, W, 3) uint8, unquantised."""
    return encode_frames(networks, images_to_batch(frames), batch)


def transmit(header: StreamHeader, frames: np.ndarray, motion: MotionBatch,
             setting: NeuralSetting, expression=None) -> tuple[bytes, DecodedStream]:
    """Code the keyframe (frame 0) + motion at `setting` and decode the bytes again: (stream bytes, decoded).
    `expression`: the expression channel's sender (the header and `motion.face` must carry its channel)."""
    sender = Sender(None, header, qscale=setting.qscale, target_kbps=setting.target_kbps,
                    keyframe_quality=setting.keyframe_quality, expression=expression,
                    keyframe_codec=ImageCodec[setting.keyframe_codec.upper()])
    data = stream_bytes(header, sender.send(frames, motion))
    decoded = decode_stream(data)
    if len(decoded.frames) != len(motion) or decoded.frames[0].keyframe is None or decoded.drops:
        raise RuntimeError(f"bitstream round trip lost data: {len(decoded.frames)} of {len(motion)} frames, "
                           f"drops {dict(decoded.drops)}")
    return data, decoded


def receive_frames(networks: Networks, keyframe: np.ndarray, motions: list[Motion], batch: int = 8) -> np.ndarray:
    """Receiver frames (T, H, W, 3) uint8 from a keyframe image and per-frame motion (frame 0 = source)."""
    frames = [DecodedFrame(n, 0, m, False, keyframe if n == 0 else None) for n, m in enumerate(motions)]
    return to_frames(receive(networks, frames, batch=batch))


def run_setting(networks: Networks, frames: np.ndarray, fps: float, motion: MotionBatch, header: StreamHeader,
                setting: NeuralSetting, batch: int = 8, expression=None) -> NeuralEncode:
    """One clip at one setting, through the real bitstream round trip and the receiver's networks."""
    header = setting.header(header)
    data, decoded = transmit(header, frames, motion, setting, expression)
    stats = decoded.stats
    keyframe = decoded.frames[0].keyframe
    out = to_frames(receive(networks, decoded.frames, batch=batch))
    header_bytes = len(header.to_bytes())
    motion_bytes = stats.intra_bytes + stats.predicted_bytes
    if header_bytes + stats.keyframe_bytes + motion_bytes != len(data):
        raise RuntimeError("stream byte accounting does not add up")  # every packet is counted once
    return NeuralEncode(setting, out, keyframe, len(frames) / fps, len(data), header_bytes, stats.keyframe_bytes,
                        motion_bytes)


@dataclass(frozen=True)
class QuantisationEffect:
    """Acceptance check 4: what keypoint quantisation alone costs at one setting.

    quality: PSNR, SSIM and stLPIPS of the receiver's frames rendered from the decoded (quantised)
    motion, measured against the frames rendered from the unquantised motion — same decoded
    keyframe, same networks, so only the quantisation differs.
    """

    setting: NeuralSetting
    quality: dict[str, float]
    motion_kbps: float  # keypoint stream without the keyframe
    kbps: float  # whole stream over the clip
    frames: int

    def to_json(self) -> dict:
        return {"setting": self.setting.label, "quality_vs_unquantised": self.quality,
                "motion_kbps": self.motion_kbps, "kbps": self.kbps, "frames": self.frames}


def unquantised_gap(networks: Networks, encoded: NeuralEncode, motion: MotionBatch, plan: LpipsPlan | None = None,
                    *, lpips=None, batch: int = 8) -> QuantisationEffect:
    """Compare a decode (`run_setting` output) with the render of the unquantised `motion`."""
    exact = receive_frames(networks, encoded.keyframe, motion.to_motions(), batch)
    quality = QualityMeter(exact, plan, lpips=lpips).summary(encoded.frames)
    return QuantisationEffect(encoded.setting, quality, encoded.motion_kbps, encoded.kbps, len(encoded.frames))


def quantisation_effect(networks: Networks, frames: np.ndarray, fps: float, *, preset: str, num_kp: int,
                        setting: NeuralSetting = DEFAULT_SETTING, plan: LpipsPlan | None = None,
                        batch: int = 8) -> QuantisationEffect:
    """LPIPS (and PSNR, SSIM) of the decode with quantised keypoints vs with unquantised keypoints,
    same source; plus the keypoint stream's rate without the keyframe (acceptance check 4)."""
    header = stream_header(preset, num_kp, frames.shape[1], fps)
    motion = sender_motion(networks, frames, batch)
    encoded = run_setting(networks, frames, fps, motion, header, setting, batch)
    return unquantised_gap(networks, encoded, motion, plan, batch=batch)
