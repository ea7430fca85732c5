"""Running the codec for evaluation: self-reenactment through the real bitstream, free-view renders
and motion transfer, all through the in-process pipeline (`facecodec.pipeline`).

Self-reenactment is what a call does: the sender estimates every frame's motion, the bitstream
`Encoder` codes the source keyframe (WebP) and the motion packets, the `Decoder` parses them, and
the receiver renders each frame from the DECODED keyframe and the DECODED (quantised) motion. The
stream rate is therefore the real rate of the packets.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..bitstream import (PacketType, RefreshPolicy, StreamHeader, decode_stream, encode_stream, scan_packets,
                         split_batch, stack_batch)
from ..media import to_frames
from ..pipeline import MotionBatch, Networks, Receiver, ViewEdit, encode_frames, images_to_batch
from ..refine import RefineConfig, refine_call


@dataclass(frozen=True)
class CodecRun:
    """One clip sent through the codec: the receiver's frames and what the stream cost."""

    frames: np.ndarray  # (T, H, W, 3) uint8, decoded
    keyframe: np.ndarray  # (H, W, 3) uint8, the first source image as the receiver decoded it
    kbps: float  # whole stream (keyframes + motion packets), kbit/s over the clip's duration
    motion_kbps: float  # motion packets only
    keyframe_bytes: int  # the first keyframe (what the repeat-source baseline costs)
    keyframes: int = 1  # the first + refreshes (their bytes are in `kbps`)


def _motion_batch(motions) -> MotionBatch:
    yaw, pitch, roll, t, exp = stack_batch(motions)
    return MotionBatch(np.stack([yaw, pitch, roll], axis=1), t, exp)


def render(receiver: Receiver, motion: MotionBatch, *, view: ViewEdit | None = None, relative: bool = False,
           batch: int = 8) -> np.ndarray:
    """Receiver frames for `motion` (T frames) → (T, H, W, 3) uint8."""
    parts = []
    for i in range(0, len(motion), batch):
        kp = receiver.driving_keypoints(motion[i : i + batch], view=view, relative=relative)
        parts.append(to_frames(receiver.render(kp)))
    return np.concatenate(parts)


def render_stream(networks: Networks, motion: MotionBatch, sources: dict[int, np.ndarray], *,
                  batch: int = 8) -> np.ndarray:
    """Receiver frames for T frames of decoded `motion`; `sources` maps a frame index to the keyframe
    image ((H, W, 3) uint8) that applies from that frame on (0 must be one), and that frame's own
    motion is the source's, as in a call (`serving.codec.frame_request`) → (T, H, W, 3) uint8."""
    if 0 not in sources:
        raise ValueError("frame 0 needs a source keyframe")
    starts = sorted(sources) + [len(motion)]
    receiver, parts = Receiver(networks), []
    for start, end in zip(starts, starts[1:]):
        receiver.set_source(images_to_batch(sources[start][None]), motion[start])
        parts.append(render(receiver, motion[start:end], batch=batch))
    return np.concatenate(parts)


def self_reenact(networks: Networks, frames: np.ndarray, *, preset: str, num_kp: int, fps: float = 25.0,
                 batch: int = 8, refresh: RefreshPolicy | None = None, refine: RefineConfig | None = None) -> CodecRun:
    """Send `frames` (T, H, W, 3) uint8 through sender → bitstream → receiver; source = frame 0, and
    with `refresh` later frames too, whenever the policy sends one as a new keyframe. With `refine`
    the sender searches each frame's motion against the keyframe as the receiver decodes it
    (`facecodec.refine`; needs `TorchNetworks`)."""
    t, h, w, _ = frames.shape
    rate = Fraction(fps).limit_denominator(1001)
    header = StreamHeader(preset=preset, num_kp=num_kp, height=h, width=w, fps_num=rate.numerator,
                          fps_den=rate.denominator)
    sent = encode_frames(networks, images_to_batch(frames), batch)
    if refine is not None:
        sent = _refined(networks, frames, sent, refine, refresh, batch)
    motions = split_batch(sent.rotation[:, 0], sent.rotation[:, 1], sent.rotation[:, 2], sent.translation,
                          sent.expression)
    data = encode_stream(header, motions, source_image=frames[0], images=frames, refresh=refresh)
    stream = decode_stream(data)
    if len(stream.frames) != t or stream.frames[0].keyframe is None:
        raise RuntimeError(f"bitstream round trip returned {len(stream.frames)} of {t} frames")
    sources = {i: f.keyframe for i, f in enumerate(stream.frames) if f.keyframe is not None}
    received = _motion_batch([f.motion for f in stream.frames])
    return CodecRun(
        frames=render_stream(networks, received, sources, batch=batch),
        keyframe=sources[0],
        kbps=stream.stats.kbps(),
        motion_kbps=stream.stats.kbps(keyframes=False),
        keyframe_bytes=next(len(p.to_bytes()) for p in scan_packets(data[len(header.to_bytes()):])
                            if p.type == PacketType.KEYFRAME),
        keyframes=len(sources),
    )


def _refined(networks: Networks, frames: np.ndarray, sent: MotionBatch, refine: RefineConfig,
             refresh: RefreshPolicy | None, batch: int) -> MotionBatch:
    if refresh is not None:
        raise ValueError("motion refinement searches against the first keyframe: it does not combine with refresh")
    model = getattr(networks, "model", None)
    if model is None:
        raise ValueError("motion refinement needs the PyTorch networks (TorchNetworks), not ONNX Runtime")
    return refine_call(model, frames, sent, refine, batch)


def render_views(networks: Networks, image: np.ndarray, edits: list[ViewEdit]) -> tuple[np.ndarray, np.ndarray]:
    """One image (H, W, 3) uint8 re-rendered under each view edit → (frames (E, H, W, 3) uint8,
    the model's own pose estimate of the image (3,) degrees (yaw, pitch, roll))."""
    source = images_to_batch(image[None])
    motion = encode_frames(networks, source)
    receiver = Receiver(networks)
    receiver.set_source(source, motion)
    frames = [render(receiver, motion, view=edit)[0] for edit in edits]
    return np.stack(frames), motion.rotation[0]


def transfer_motion(networks: Networks, portrait: np.ndarray, driver: np.ndarray, *, batch: int = 8) -> np.ndarray:
    """Animate `portrait` (H, W, 3) with the motion of `driver` (T, H, W, 3), relative to the driver's
    first frame (face-vid2vid's cross-identity mode) → (T, H, W, 3) uint8."""
    source = images_to_batch(portrait[None])
    receiver = Receiver(networks)
    receiver.set_source(source, encode_frames(networks, source))
    motion = encode_frames(networks, images_to_batch(driver), batch)
    return render(receiver, motion, relative=True, batch=batch)
