"""The receiver: decoded packets → decoder requests → frames, ONE path for every caller.

A decoded packet becomes the very `FrameRequest` the Triton `decoder` model gets (`frame_request`),
and `SessionStore` (`codec.session`) renders it: in the server's session model, and in-process here
(`receive`: `facecodec decode`, the evaluation, the rate–distortion sweep). So there is one refresh
rule — a keyframe carries a new source image, rendered from its own frame on — and both paths
decode alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..bitstream import DecodedFrame, DecodedStream, read_stream
from ..media import to_frames, write_video
from .pipeline import MotionBatch, Networks, ViewEdit, check_expression_basis, images_to_batch
from .session import FrameRequest, SessionStore


def frame_request(
    frame: DecodedFrame, session_id: int, *, start: bool, end: bool, view: ViewEdit | None = None
) -> FrameRequest:
    """The decoder request of one decoded packet. A keyframe (the call's first, or a refresh)
    carries the source image (and its face), and the frame's own motion is the source's motion."""
    source = None if frame.keyframe is None else images_to_batch(frame.keyframe[None])
    return FrameRequest(
        session_id, start=start, end=end, source_image=source, motion=MotionBatch.from_motions([frame.motion]),
        view=view, source_face=frame.face if source is not None else None,
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


def receive(
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


def decode_file(
    networks: Networks, stream: Path | DecodedStream, out: Path | None = None, *, view: ViewEdit | None = None
) -> np.ndarray:
    """Stream file (or one already read) → (T, S, S, 3) uint8 frames in-process (and an MP4 when
    `out` is given)."""
    decoded = stream if isinstance(stream, DecodedStream) else read_stream(stream)
    check_expression_basis(decoded.header.face_basis)
    frames = to_frames(receive(networks, decoded.frames, view=view))
    if out is not None:
        write_video(out, frames, fps=float(decoded.header.fps))
    return frames
