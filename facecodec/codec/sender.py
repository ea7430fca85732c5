"""The sender: frames → motion → packets, ONE loop for every caller.

`Sender` is what `facecodec encode`, the gRPC clients (`encode` and the paced `call`), the evaluation,
the rate–distortion sweep and the serving benchmark send with: the networks are any `Networks`
callable (eager PyTorch, ONNX Runtime, or the served `motion_encoder` over gRPC), the bitstream
`Encoder` codes the packets. A clip may be sent whole or a frame at a time (a live call); the
packets are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..bitstream import (Encoder, ImageCodec, RefreshPolicy, StreamHeader, StreamStats, decode_keyframe,
                         write_stream)
from ..bitstream.keyframe import DEFAULT_QUALITY
from ..expression import ExpressionSender, SourceFace
from ..bitstream.quant import QSCALE_UNITY
from ..media import probe_fps, read_video
from .pipeline import MotionBatch, Networks, encode_frames, images_to_batch

# (frames (T, S, S, 3) uint8, their motion, the keyframe (S, S, 3) uint8 as the receiver decodes it,
# its face or None) → motion
MotionSearch = Callable[[np.ndarray, MotionBatch, np.ndarray, SourceFace | None], MotionBatch]


def stream_header(preset: str, num_kp: int, size: int, fps: float, *, expression: ExpressionSender | None = None,
                  **options) -> StreamHeader:
    """The header of a stream of `size`² frames at `fps` (a rate such as 29.97 becomes 30000/1001);
    with `expression`, a version-2 stream carrying its basis's coefficients."""
    rate = Fraction(fps).limit_denominator(1001)
    if expression is not None:
        options = {**options, "face_basis": expression.basis.id, "num_face": expression.basis.size}
    return StreamHeader(
        preset=preset,
        num_kp=num_kp,
        height=size,
        width=size,
        fps_num=rate.numerator,
        fps_den=rate.denominator,
        **options,
    )


class Sender:
    """One stream's sender. `send(frames)` returns the packets of each frame (bytes, one entry per
    frame); the call's first frame is also sent as the source keyframe.

    networks: estimate each frame's motion (None when every `send` gets the motion). `refresh`: later
    frames too become keyframes when the head has gone far from the current source. `search`
    (`MotionSearch`, e.g. `facecodec.codec.refine.motion_search`): a sender-side motion search; it
    gets the keyframe exactly as the receiver will decode it. `keyframe_quality`: the source
    picture's quality, 1…100 on its codec's scale (WebP by default; a one-off cost: 90 ≈ 6–8 kB at 256², 100
    about twice that).
    `qscale` / `target_kbps`: the motion quantiser, fixed or rate-controlled. `expression`: the
    expression channel's sender (the header must name its basis, `stream_header(expression=...)`):
    each keyframe carries the picture's face, each frame its code. `key`: the call's packet key
    (`bitstream.auth`; the header must say `authenticated`). `keyframe_codec`: the picture's codec (None:
    the stream's default, `keyframe.default_codec`).
    """

    def __init__(
        self, networks: Networks | None, header: StreamHeader, *, target_kbps: float | None = None,
        qscale: int = QSCALE_UNITY, refresh: RefreshPolicy | None = None, search: MotionSearch | None = None,
        keyframe_quality: int = DEFAULT_QUALITY, batch: int = 8, expression: ExpressionSender | None = None,
        key: bytes | None = None, keyframe_codec: ImageCodec | None = None,
    ) -> None:
        if search is not None and refresh is not None:
            raise ValueError("the motion search works against the first keyframe: it does not combine with refresh")
        wanted = (expression.basis.id, expression.basis.size) if expression is not None else (0, 0)
        if (header.face_basis, header.num_face) != wanted:
            raise ValueError(f"the header's expression channel (basis {header.face_basis:08x}, {header.num_face} "
                             f"coefficients) does not match the sender's (basis {wanted[0]:08x}, {wanted[1]})")
        self.networks, self.header, self.search, self.batch = networks, header, search, batch
        self.expression = expression
        face_of = expression.source_face if expression is not None else None
        self.encoder = Encoder(header, target_kbps=target_kbps, qscale=qscale, refresh=refresh,
                               keyframe_quality=keyframe_quality, keyframe_codec=keyframe_codec, face_of=face_of,
                               key=key)
        self.frames_sent = 0
        self.keyframe: np.ndarray | None = None  # the first keyframe as the receiver decodes it (for `search`)
        self.source_face: SourceFace | None = None  # its face (expression channel)

    @property
    def stats(self) -> StreamStats:
        return self.encoder.stats

    def send(self, frames: np.ndarray | None, motion: MotionBatch | None = None,
             timestamps_ms: list[int] | None = None) -> list[bytes]:
        """The packets of the next T frames ((T, S, S, 3) uint8), each frame's [KEYFRAME] MOTION.

        `motion`: the frames' motion when already estimated (else the networks estimate it).
        `frames` None: a motion-only stream (no keyframe, no refresh). `timestamps_ms`: each frame's
        capture time (default: the header's frame rate, every frame sent; a live sender that lowers
        its rate passes them)."""
        if frames is None and self.encoder.refresh is not None:
            raise ValueError("a refresh policy needs the frame images")
        if frames is not None and self.frames_sent == 0:
            if self.expression is not None:
                self.source_face = self.expression.source_face(frames[0])
            body = self.encoder.request_keyframe(frames[0], self.source_face)
            if self.search is not None:
                self.keyframe = decode_keyframe(body, self.header.height, self.header.width)
        if motion is None:
            if self.networks is None or frames is None:
                raise ValueError("a sender without networks needs each frame's motion")
            motion = encode_frames(self.networks, images_to_batch(frames), self.batch)
        if self.expression is not None and motion.face is None:
            if frames is None:
                raise ValueError("a motion-only stream with the expression channel needs each frame's code")
            motion = motion.with_face(self.expression.encode(frames))
        if self.search is not None:
            motion = self.search(frames, motion, self.keyframe, self.source_face)
        images = frames if frames is not None else [None] * len(motion)
        if timestamps_ms is None:
            timestamps_ms = [round((self.frames_sent + i) * self.header.frame_ms) for i in range(len(motion))]
        chunks = []
        for m, image, stamp in zip(motion.to_motions(), images, timestamps_ms, strict=True):
            chunks.append(self.encoder.encode(m, stamp, image))
            self.frames_sent += 1
        return chunks


def encode_file(
    networks: Networks,
    video: Path,
    out: Path,
    *,
    preset: str,
    num_kp: int,
    size: int,
    max_frames: int | None = None,
    **options,
) -> Sender:
    """Video file → stream file; returns the sender (its `stats` hold the bit rate). `options`: `Sender`'s."""
    frames = read_video(video, size=size, max_frames=max_frames)
    header = stream_header(preset, num_kp, size, probe_fps(video), expression=options.get("expression"),
                           authenticated=options.get("key") is not None)
    sender = Sender(networks, header, **options)
    write_stream(out, header, sender.send(frames))
    return sender
