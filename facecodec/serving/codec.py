"""The codec around the networks: frames → motion → packets on the sender, packets → decoder
requests → frames on the receiver.

Shared by the in-process commands (`facecodec encode/decode`, ONNX Runtime) and the gRPC clients
(`facecodec.client`): the networks are any `Networks` callable, and the receiver turns decoded
packets into the very `FrameRequest`s the Triton `decoder` gets, so both paths decode alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..bitstream import (DecodedFrame, Encoder, Motion, RefreshPolicy, StreamHeader, decode_keyframe, read_stream,
                         split_batch, write_stream)
from ..bitstream.keyframe import DEFAULT_QUALITY
from ..media import probe_fps, read_video, to_frames, write_video
from ..pipeline import MotionBatch, Networks, OrtNetworks, ViewEdit, encode_frames, images_to_batch
from ..presets import get_preset
from .session import FrameRequest, SessionStore

# (frames (T, S, S, 3) uint8, their motion, the keyframe (S, S, 3) uint8 as the receiver decodes it) → motion
MotionSearch = Callable[[np.ndarray, MotionBatch, np.ndarray], MotionBatch]
DEFAULT_ONNX_ROOT = Path("artifacts/onnx")  # the Makefile's `export` target writes <root>/<preset>


def to_motions(batch: MotionBatch) -> list[Motion]:
    rot = batch.rotation
    return split_batch(rot[:, 0], rot[:, 1], rot[:, 2], batch.translation, batch.expression)


def to_batch(motions: list[Motion]) -> MotionBatch:
    return MotionBatch(
        np.array([[m.yaw, m.pitch, m.roll] for m in motions], np.float32),
        np.stack([m.t for m in motions]).astype(np.float32),
        np.stack([m.exp for m in motions]).astype(np.float32),
    )


def stream_header(preset: str, num_kp: int, size: int, fps: float, **options) -> StreamHeader:
    rate = Fraction(fps).limit_denominator(1001)
    return StreamHeader(
        preset=preset,
        num_kp=num_kp,
        height=size,
        width=size,
        fps_num=rate.numerator,
        fps_den=rate.denominator,
        **options,
    )


def encode_video(
    networks: Networks, frames: np.ndarray, header: StreamHeader, *, target_kbps: float | None = None,
    refresh: RefreshPolicy | None = None, search: MotionSearch | None = None, keyframe_quality: int = DEFAULT_QUALITY,
) -> tuple[list[bytes], Encoder]:
    """Sender: (T, S, S, 3) uint8 frames → the packets of each frame (frame 0 is the keyframe; with
    `refresh`, later frames too when the head has gone far from the current source). `search`
    (`MotionSearch`, e.g. `facecodec.refine.motion_search`): a sender-side motion search; it gets the
    keyframe exactly as the receiver will decode it. `keyframe_quality`: the source picture's WebP
    quality, 1…100 (a one-off cost: 90 ≈ 6–8 kB at 256², 100 about twice that)."""
    if search is not None and refresh is not None:
        raise ValueError("the motion search works against the first keyframe: it does not combine with refresh")
    encoder = Encoder(header, target_kbps=target_kbps, refresh=refresh, keyframe_quality=keyframe_quality)
    keyframe = encoder.request_keyframe(frames[0])
    motion = encode_frames(networks, images_to_batch(frames))
    if search is not None:
        motion = search(frames, motion, decode_keyframe(keyframe, header.height, header.width))
    motions = to_motions(motion)
    chunks = [encoder.encode(m, round(n * header.frame_ms), frame) for n, (m, frame) in enumerate(zip(motions, frames))]
    return chunks, encoder


def frame_request(
    frame: DecodedFrame, session_id: int, *, start: bool, end: bool, view: ViewEdit | None = None
) -> FrameRequest:
    """Receiver: the decoder request of one decoded packet. A keyframe (the call's first, or a
    refresh) carries the source image, and the frame's own motion is the source's motion."""
    source = None if frame.keyframe is None else images_to_batch(frame.keyframe[None])
    return FrameRequest(
        session_id, start=start, end=end, source_image=source, motion=to_batch([frame.motion]), view=view
    )


def frame_requests(
    frames: Iterable[DecodedFrame],
    session_id: int,
    *,
    view: ViewEdit | None = None,
) -> Iterator[FrameRequest]:
    """Requests of a whole decoded stream; frames before the first keyframe have no source and
    are skipped (nothing can be rendered without one)."""
    frames = list(frames)
    first = next((i for i, f in enumerate(frames) if f.keyframe is not None), None)
    if first is None:
        raise ValueError("the stream has no keyframe: no source image to decode from")
    for i, frame in enumerate(frames[first:], start=first):
        yield frame_request(frame, session_id, start=i == first, end=i == len(frames) - 1, view=view)


def decode_local(
    networks: Networks, frames: Iterable[DecodedFrame], *, view: ViewEdit | None = None, batch: int = 8
) -> np.ndarray:
    """In-process receiver: decoded packets → (T, 3, S, S) float frames, through the same session
    logic as the Triton decoder (`batch` frames per warp run)."""
    store = SessionStore(networks, max_sessions=1, idle_s=float("inf"))
    requests = list(frame_requests(frames, session_id=1, view=view))
    out = []
    for i in range(0, len(requests), batch):
        for result in store.decode(requests[i : i + batch]):
            if isinstance(result, Exception):
                raise result
            out.append(result)
    return np.concatenate(out)


def local_networks(
    preset: str,
    onnx_dir: Path | None = None,
    *,
    weights: Path | None = None,
    checkpoint: Path | None = None,
    threads: int = 2,
) -> OrtNetworks:
    """ONNX Runtime networks of `preset`, exported first when missing or made from other weights."""
    from .repository import ensure_export

    onnx_dir = ensure_export(onnx_dir or DEFAULT_ONNX_ROOT / preset, preset, weights=weights, checkpoint=checkpoint)
    return OrtNetworks(onnx_dir, threads=threads)


def encode_file(
    networks: Networks,
    video: Path,
    out: Path,
    *,
    preset: str,
    max_frames: int | None = None,
    target_kbps: float | None = None,
    refresh: RefreshPolicy | None = None,
    search: MotionSearch | None = None,
    keyframe_quality: int = DEFAULT_QUALITY,
) -> Encoder:
    """Video file → stream file; returns the encoder (its `stats` hold the bit rate)."""
    cfg = get_preset(preset)
    frames = read_video(video, size=cfg.image_size, max_frames=max_frames)
    header = stream_header(preset, cfg.num_kp, cfg.image_size, probe_fps(video))
    chunks, encoder = encode_video(networks, frames, header, target_kbps=target_kbps, refresh=refresh, search=search,
                                   keyframe_quality=keyframe_quality)
    write_stream(out, header, chunks)
    return encoder


def decode_file(
    networks: Networks, stream: Path, out: Path | None = None, *, view: ViewEdit | None = None
) -> np.ndarray:
    """Stream file → (T, S, S, 3) uint8 frames in-process (and an MP4 when `out` is given)."""
    decoded = read_stream(stream)
    frames = to_frames(decode_local(networks, decoded.frames, view=view))
    if out is not None:
        write_video(out, frames, fps=float(decoded.header.fps))
    return frames


def stream_preset(stream: Path) -> str:
    """The preset a stream file was encoded with (from its header)."""
    with open(stream, "rb") as f:
        return StreamHeader.parse(f.read(4096))[0].preset
