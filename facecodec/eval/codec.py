"""Running the codec for evaluation: self-reenactment through the real bitstream, free-view renders
and motion transfer, all through the in-process pipeline (`facecodec.pipeline`).

Self-reenactment is what a call does: the sender estimates every frame's motion, the bitstream
`Encoder` codes the source keyframe (WebP) and the motion packets, the `Decoder` parses them, and
the receiver renders each frame from the DECODED keyframe and the DECODED (quantised) motion. The
stream rate is therefore the real rate of the packets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bitstream import PacketType, RefreshPolicy, decode_stream, scan_packets
from ..bitstream.keyframe import DEFAULT_QUALITY
from ..media import to_frames
from ..pipeline import MotionBatch, Networks, Receiver, ViewEdit, encode_frames, images_to_batch
from ..serving.codec import MotionSearch, encode_video, stream_header, to_batch


@dataclass(frozen=True)
class CodecRun:
    """One clip sent through the codec: the receiver's frames and what the stream cost."""

    frames: np.ndarray  # (T, H, W, 3) uint8, decoded
    keyframe: np.ndarray  # (H, W, 3) uint8, the first source image as the receiver decoded it
    kbps: float  # whole stream (keyframes + motion packets), kbit/s over the clip's duration
    motion_kbps: float  # motion packets only
    keyframe_bytes: int  # the first keyframe (what the repeat-source baseline costs)
    keyframes: int = 1  # the first + refreshes (their bytes are in `kbps`)


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
                 batch: int = 8, refresh: RefreshPolicy | None = None, search: MotionSearch | None = None,
                 keyframe_quality: int = DEFAULT_QUALITY) -> CodecRun:
    """Send `frames` (T, H, W, 3) uint8 through the sender of `facecodec encode`
    (`serving.codec.encode_video`) → bitstream → receiver; source = frame 0, and with `refresh` later
    frames too, whenever the policy sends one as a new keyframe. `search`: the sender's motion search
    (`facecodec.refine.motion_search`); `keyframe_quality`: the keyframe's WebP quality."""
    t, h, w, _ = frames.shape
    if h != w:
        raise ValueError(f"expected square frames, got {h}×{w}")
    header = stream_header(preset, num_kp, h, fps)
    chunks, _ = encode_video(networks, frames, header, refresh=refresh, search=search,
                             keyframe_quality=keyframe_quality)
    data = header.to_bytes() + b"".join(chunks)
    stream = decode_stream(data)
    if len(stream.frames) != t or stream.frames[0].keyframe is None:
        raise RuntimeError(f"bitstream round trip returned {len(stream.frames)} of {t} frames")
    sources = {i: f.keyframe for i, f in enumerate(stream.frames) if f.keyframe is not None}
    received = to_batch([f.motion for f in stream.frames])
    return CodecRun(
        frames=render_stream(networks, received, sources, batch=batch),
        keyframe=sources[0],
        kbps=stream.stats.kbps(),
        motion_kbps=stream.stats.kbps(keyframes=False),
        keyframe_bytes=next(len(p.to_bytes()) for p in scan_packets(data[len(header.to_bytes()):])
                            if p.type == PacketType.KEYFRAME),
        keyframes=len(sources),
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
