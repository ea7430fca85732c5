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

from ..bitstream import StreamHeader, decode_stream, encode_stream, split_batch, stack_batch
from ..media import to_frames
from ..pipeline import MotionBatch, Networks, Receiver, ViewEdit, encode_frames, images_to_batch


@dataclass(frozen=True)
class CodecRun:
    """One clip sent through the codec: the receiver's frames and what the stream cost."""

    frames: np.ndarray  # (T, H, W, 3) uint8, decoded
    keyframe: np.ndarray  # (H, W, 3) uint8, the source image as the receiver decoded it
    kbps: float  # whole stream (keyframe + motion packets), kbit/s over the clip's duration
    motion_kbps: float  # motion packets only
    keyframe_bytes: int


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


def self_reenact(networks: Networks, frames: np.ndarray, *, preset: str, num_kp: int, fps: float = 25.0,
                 batch: int = 8) -> CodecRun:
    """Send `frames` (T, H, W, 3) uint8 through sender → bitstream → receiver; source = frame 0."""
    t, h, w, _ = frames.shape
    rate = Fraction(fps).limit_denominator(1001)
    header = StreamHeader(preset=preset, num_kp=num_kp, height=h, width=w, fps_num=rate.numerator,
                          fps_den=rate.denominator)
    sent = encode_frames(networks, images_to_batch(frames), batch)
    motions = split_batch(sent.rotation[:, 0], sent.rotation[:, 1], sent.rotation[:, 2], sent.translation,
                          sent.expression)
    stream = decode_stream(encode_stream(header, motions, source_image=frames[0]))
    if len(stream.frames) != t or stream.frames[0].keyframe is None:
        raise RuntimeError(f"bitstream round trip returned {len(stream.frames)} of {t} frames")
    keyframe = stream.frames[0].keyframe
    received = _motion_batch([f.motion for f in stream.frames])
    receiver = Receiver(networks)
    receiver.set_source(images_to_batch(keyframe[None]), received[0])
    return CodecRun(
        frames=render(receiver, received, batch=batch),
        keyframe=keyframe,
        kbps=stream.stats.kbps(),
        motion_kbps=stream.stats.kbps(keyframes=False),
        keyframe_bytes=stream.stats.keyframe_bytes,
    )


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
