"""Running the codec for evaluation: self-reenactment through the real bitstream, free-view renders
and motion transfer, all through the codec's in-process sender and receiver (`facecodec.codec`).

Self-reenactment is what a call does: the sender (`codec.Sender`) estimates every frame's motion and
codes the source keyframe (WebP) and the motion packets, the `Decoder` parses them, and the receiver
(`codec.receive`) renders each frame from the DECODED keyframe and the DECODED (quantised) motion. The
stream rate is therefore the real rate of the packets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bitstream import PacketType, RefreshPolicy, decode_stream, scan_packets, stream_bytes
from ..bitstream.keyframe import DEFAULT_QUALITY
from ..codec.pipeline import MotionBatch, Networks, Receiver, ViewEdit, encode_frames, images_to_batch
from ..codec.receiver import receive
from ..codec.sender import MotionSearch, Sender, stream_header
from ..expression import ExpressionSender
from ..media import to_frames


@dataclass(frozen=True)
class CodecRun:
    """One clip sent through the codec: the receiver's frames and what the stream cost."""

    frames: np.ndarray  # (T, H, W, 3) uint8, decoded
    keyframe: np.ndarray  # (H, W, 3) uint8, the first source image as the receiver decoded it
    kbps: float  # whole stream (keyframes + motion packets), kbit/s over the clip's duration
    motion_kbps: float  # motion packets only
    keyframe_bytes: int  # the first keyframe (what the repeat-source baseline costs)
    keyframes: int = 1  # the first + refreshes (their bytes are in `kbps`)
    stream: bytes = b""  # the whole bitstream (header, keyframes, motion), as `facecodec decode` reads it


def render(receiver: Receiver, motion: MotionBatch, *, view: ViewEdit | None = None, relative: bool = False,
           batch: int = 8) -> np.ndarray:
    """Receiver frames for `motion` (T frames) → (T, H, W, 3) uint8."""
    parts = []
    for i in range(0, len(motion), batch):
        part = motion[i : i + batch]
        kp = receiver.driving_keypoints(part, view=view, relative=relative)
        parts.append(to_frames(receiver.render(kp, receiver.expression_flow(part, relative))))
    return np.concatenate(parts)


def self_reenact(networks: Networks, frames: np.ndarray, *, preset: str, num_kp: int, fps: float = 25.0,
                 batch: int = 8, refresh: RefreshPolicy | None = None, search: MotionSearch | None = None,
                 keyframe_quality: int = DEFAULT_QUALITY, expression: ExpressionSender | None = None) -> CodecRun:
    """Send `frames` (T, H, W, 3) uint8 through the sender of `facecodec encode` (`codec.Sender`)
    → bitstream → the receiver of `facecodec decode` (`codec.receive`); source = frame 0, and with
    `refresh` later frames too, whenever the policy sends one as a new keyframe. `search`: the sender's
    motion search (`facecodec.codec.refine.motion_search`); `keyframe_quality`: the keyframe's WebP quality;
    `expression`: the expression channel's sender (None: a stream without it)."""
    t, h, w, _ = frames.shape
    if h != w:
        raise ValueError(f"expected square frames, got {h}×{w}")
    header = stream_header(preset, num_kp, h, fps, expression=expression)
    sender = Sender(networks, header, refresh=refresh, search=search, keyframe_quality=keyframe_quality, batch=batch,
                    expression=expression)
    data = stream_bytes(header, sender.send(frames))
    stream = decode_stream(data)
    if len(stream.frames) != t or stream.frames[0].keyframe is None:
        raise RuntimeError(f"bitstream round trip returned {len(stream.frames)} of {t} frames")
    sources = [f.keyframe for f in stream.frames if f.keyframe is not None]
    return CodecRun(
        frames=to_frames(receive(networks, stream.frames, batch=batch)),
        keyframe=sources[0],
        kbps=stream.stats.kbps(),
        motion_kbps=stream.stats.kbps(keyframes=False),
        keyframe_bytes=next(p.framed_size for p in scan_packets(data[len(header.to_bytes()):], header.framing)
                            if p.type == PacketType.KEYFRAME),
        keyframes=len(sources),
        stream=data,
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


def transfer_motion(networks: Networks, portrait: np.ndarray, driver: np.ndarray, *, batch: int = 8,
                    expression: ExpressionSender | None = None) -> np.ndarray:
    """Animate `portrait` (H, W, 3) with the motion of `driver` (T, H, W, 3), relative to the driver's
    first frame (face-vid2vid's cross-identity mode), and its expression (mouth, eyes) relative to
    that frame's when `expression` is given → (T, H, W, 3) uint8."""
    source = images_to_batch(portrait[None])
    receiver = Receiver(networks)
    face = None if expression is None else expression.source_face(portrait)
    receiver.set_source(source, encode_frames(networks, source), face)
    motion = encode_frames(networks, images_to_batch(driver), batch)
    if expression is not None:
        motion = motion.with_face(expression.encode(driver))
    return render(receiver, motion, relative=True, batch=batch)
