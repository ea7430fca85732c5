"""What the clients do, as functions: encode, decode, call, reenact, freeview over gRPC.

The sender side is the codec's `Sender` on `RemoteNetworks` (motion_encoder); the receiver side is
the bitstream `Decoder` plus a `DecoderSession`, fed the codec's `frame_request`s. The packets between
them are what a real link would carry, so their size is the call's bit rate.
"""

from __future__ import annotations

import logging
import queue
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..bitstream import Decoder, RefreshPolicy, read_stream, stream_bytes
from ..codec.pipeline import ViewEdit, check_stream, encode_frames, images_to_batch
from ..codec.receiver import frame_request, frame_requests
from ..codec.sender import Sender, encode_file, stream_header
from ..bitstream.auth import new_key
from ..expression import ExpressionSender
from ..codec.session import FrameRequest
from ..media import probe_fps, read_image, read_video, to_frames, write_video
from ..quality import psnr
from .reconnect import ReconnectingSession, SessionLost, gaps
from .remote import DEFAULT_URL, ClientError, RemoteNetworks

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass(frozen=True)
class Connection:
    url: str = DEFAULT_URL
    timeout: float | None = 60.0
    verbose: bool = False
    decoders: tuple[str, ...] = ()  # servers of the call's decoder session, in order (default: url)

    def networks(self) -> RemoteNetworks:
        return RemoteNetworks(self.url, timeout=self.timeout, verbose=self.verbose)

    def session(self, **kw) -> ReconnectingSession:
        """The call's decoder session; it re-opens on the next of `decoders` (or on the same address,
        e.g. a Kubernetes Service, which reaches another pod) when its server goes away mid-call."""
        urls = self.decoders or (self.url,)
        return ReconnectingSession(urls, timeout=self.timeout, verbose=self.verbose, **kw)


def encode(
    conn: Connection, video: Path, out: Path, *, max_frames: int | None = None, target_kbps: float | None = None,
    refresh: RefreshPolicy | None = None, expression: ExpressionSender | None = None, key: bytes | None = None,
) -> Sender:
    """Video → motion_encoder over gRPC (and the expression channel's landmarks here) → packets →
    stream file; returns the sender (for its stats)."""
    networks = conn.networks()
    try:
        served = networks.served_model()
        return encode_file(networks, video, out, preset=served.preset, num_kp=served.num_kp, size=served.image_size,
                           max_frames=max_frames, target_kbps=target_kbps, refresh=refresh, expression=expression,
                           key=key)
    finally:
        networks.close()


def decode(conn: Connection, stream: Path, out: Path | None = None, *, view: ViewEdit | None = None,
           key: bytes | None = None) -> np.ndarray:
    """Stream file → one decoder session over one gRPC stream → (T, S, S, 3) uint8 frames (+ MP4);
    `key`: the packet key of an authenticated stream."""
    decoded = read_stream(stream, key=key)
    networks = conn.networks()
    try:
        served = networks.served_model()
    finally:
        networks.close()
    check_stream(decoded.header, preset=served.preset, num_kp=served.num_kp, image_size=served.image_size)
    with conn.session() as session:
        futures = [session.send(r) for r in frame_requests(decoded.frames, session.session_id, view=view)]
        frames = to_frames(np.concatenate([f.result(conn.timeout) for f in futures]))
    if out is not None:
        write_video(out, frames, fps=float(decoded.header.fps))
    return frames


@dataclass
class CallReport:
    """What a call measured. Latency: from a frame's capture to its decoded frame at the receiver."""

    frames: int
    fps_target: float
    fps_decoded: float
    latency_ms_p50: float
    latency_ms_p95: float
    kbps: float  # packets on the link, source keyframe included
    kbps_motion: float  # without the keyframe
    keyframe_bytes: int  # all keyframes: the first and any refreshes
    psnr_db: float  # decoded vs the sender's frames
    keyframes: int = 1  # the first + refreshes
    outputs: dict[str, str] = field(default_factory=dict)
    lost_frames: list[int] = field(default_factory=list)  # lost with a server that went away (shown: the last frame)
    gaps: list[dict] = field(default_factory=list)  # each run of lost frames: first, frames, ms
    reconnects: list[dict] = field(default_factory=list)  # each move of the call to another server

    def as_dict(self) -> dict:
        return asdict(self)


class _Receiver:
    """Receiver side of a live call, on its own thread: packets from the link (a queue) → bitstream
    decoder → decoder session; records each frame and its arrival time. A receiver that falls behind
    never holds up the sender's capture."""

    def __init__(self, session: ReconnectingSession, header, total: int, key: bytes | None = None):
        self.session, self.total = session, total
        self.decoder = Decoder(header, key=key)
        self.link: queue.Queue[bytes | None] = queue.Queue()
        self.frames: dict[int, np.ndarray] = {}
        self.arrived: dict[int, float] = {}
        self.failed: dict[int, BaseException] = {}
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="call-receiver", daemon=True)
        self.thread.start()

    def finish(self, timeout: float | None) -> None:
        """End of the call's packets; waits until every frame is sent to the session."""
        self.link.put(None)
        self.thread.join(timeout)
        if self.errors:
            raise self.errors[0]

    def _run(self) -> None:
        try:
            while (packet := self.link.get()) is not None:
                self._send(self.decoder.push(packet))
            self._send(self.decoder.flush(end_seq=self.total))
        except BaseException as err:  # noqa: BLE001 - handed to the caller by finish()
            self.errors.append(err)

    def _send(self, frames) -> None:
        for frame in frames:
            start = frame.keyframe is not None and not self.session.started
            request = frame_request(frame, self.session.session_id, start=start, end=frame.seq == self.total - 1)
            self.session.send(request).add_done_callback(lambda fut, seq=frame.seq: self._done(seq, fut))

    def _done(self, seq: int, future) -> None:
        with self.lock:
            if future.exception() is None:
                self.frames[seq], self.arrived[seq] = future.result(), time.monotonic()
            else:
                self.failed[seq] = future.exception()

    @property
    def answered(self) -> int:
        with self.lock:
            return len(self.arrived) + len(self.failed)


@dataclass
class CallResult:
    report: CallReport
    frames: np.ndarray  # decoded (T, S, S, 3) uint8
    stream: bytes  # header + every packet the link carried


def call(
    conn: Connection,
    video: Path,
    out_dir: Path | None = None,
    *,
    max_frames: int | None = None,
    realtime: bool = True,
    target_kbps: float | None = None,
    refresh: RefreshPolicy | None = None,
    progress: Callable[[str], None] | None = None,
    expression: ExpressionSender | None = None,
    authenticate: bool = False,
) -> CallResult:
    """Sender and receiver of one call in one process, the sender paced at the clip's frame rate.
    `out_dir` receives decoded.mp4, side_by_side.mp4 and stream.fcdc. `expression`: the expression
    channel's sender (MediaPipe in this process), None for head motion only. `authenticate`: a fresh
    per-call key tags every packet, and the receiver drops any that does not verify."""
    networks = conn.networks()
    served = networks.served_model()
    frames = read_video(video, size=served.image_size, max_frames=max_frames)
    fps = probe_fps(video)
    key = new_key() if authenticate else None
    header = stream_header(served.preset, served.num_kp, served.image_size, fps, expression=expression,
                           authenticated=authenticate)
    sender = Sender(networks, header, target_kbps=target_kbps, refresh=refresh, expression=expression, key=key)
    captured: dict[int, float] = {}
    packets: list[bytes] = []
    with conn.session() as session:
        rx = _Receiver(session, header, len(frames), key)
        t0 = next_report = time.monotonic()
        for n in range(len(frames)):
            if realtime:
                time.sleep(max(0.0, t0 + n / fps - time.monotonic()))
            captured[n] = time.monotonic()
            (packet,) = sender.send(frames[n : n + 1])
            packets.append(packet)
            rx.link.put(packet)
            if progress and time.monotonic() >= next_report:
                next_report += 1.0
                progress(_live_line(rx, captured, t0))
        rx.finish(conn.timeout)
        deadline = time.monotonic() + (conn.timeout or 600.0)
        while rx.answered < len(frames) and time.monotonic() < deadline and not session.broken:
            time.sleep(0.05)  # frames still decoding: keep reporting until they are all in
            if progress and time.monotonic() >= next_report:
                next_report += 1.0
                progress(_live_line(rx, captured, t0))
    networks.close()
    lost = sorted(n for n, err in rx.failed.items() if isinstance(err, SessionLost))
    if len(rx.frames) + len(lost) != len(frames) or not rx.frames:
        first = next((e for e in rx.failed.values() if not isinstance(e, SessionLost)), "no response")
        raise ClientError(f"{len(frames) - len(rx.frames)} of {len(frames)} frames failed to decode; first: {first}")
    shown = [max((d for d in rx.frames if d <= n), default=min(rx.frames)) for n in range(len(frames))]
    decoded = to_frames(np.concatenate([rx.frames[n] for n in shown]))
    latency = [1e3 * (rx.arrived[n] - captured[n]) for n in sorted(rx.frames)]
    report = CallReport(
        frames=len(frames),
        fps_target=fps,
        fps_decoded=len(frames) / (max(rx.arrived.values()) - t0),
        latency_ms_p50=statistics.median(latency),
        latency_ms_p95=float(np.percentile(latency, 95)),
        kbps=sender.stats.kbps(),
        kbps_motion=sender.stats.kbps(keyframes=False),
        keyframe_bytes=sender.stats.keyframe_bytes,
        psnr_db=psnr(decoded, frames, per_frame=False),
        keyframes=sender.stats.keyframes,
        lost_frames=lost,
        gaps=[asdict(g) for g in gaps(rx.arrived, lost)],
        reconnects=[asdict(r) for r in session.reconnects],
    )
    stream = stream_bytes(header, packets)
    if out_dir is not None:
        report.outputs = _write_call(Path(out_dir), frames, decoded, fps, stream)
    return CallResult(report, decoded, stream)


def _live_line(rx: _Receiver, captured: dict[int, float], t0: float) -> str:
    now = time.monotonic()
    with rx.lock:
        done = dict(rx.arrived)
    recent = sum(1 for t in done.values() if t > now - 1.0)
    lat = [1e3 * (t - captured[n]) for n, t in done.items()][-25:]
    p50 = f"{statistics.median(lat):.0f} ms" if lat else "-"
    return f"t={now - t0:5.1f}s  sent {len(captured):4d}  decoded {len(done):4d}  {recent:3d} fps  latency p50 {p50}"


def _write_call(out_dir: Path, original: np.ndarray, decoded: np.ndarray, fps: float, stream: bytes) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("decoded.mp4", "side_by_side.mp4", "stream.fcdc")}
    write_video(paths["decoded.mp4"], decoded, fps=fps)
    paths["stream.fcdc"].write_bytes(stream)
    write_video(paths["side_by_side.mp4"], np.concatenate([original, decoded], axis=2), fps=fps)
    return {k: str(v) for k, v in paths.items()}


def load_portrait(path: Path, size: int) -> np.ndarray:
    """(S, S, 3) uint8 from an image file, or the first frame of a video."""
    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        return read_image(path, size=size)
    return read_video(path, size=size, max_frames=1)[0]


def reenact(
    conn: Connection, portrait: Path, driving: Path, out: Path | None = None, *, max_frames: int | None = None,
    expression: ExpressionSender | None = None,
) -> np.ndarray:
    """Motion transfer: the driver's motion since its first frame, applied to the portrait (and its
    expression since that frame, with `expression`)."""
    networks = conn.networks()
    served = networks.served_model()
    picture = load_portrait(portrait, served.image_size)
    source = images_to_batch(picture[None])
    driver = read_video(driving, served.image_size, max_frames)
    motion = encode_frames(networks, images_to_batch(driver))
    networks.close()
    face = None
    if expression is not None:
        face = expression.source_face(picture)
        motion = motion.with_face(expression.encode(driver))
    with conn.session() as session:
        sid = session.session_id
        # the server estimates the portrait's motion
        start = session.send(FrameRequest(sid, start=True, source_image=source, source_face=face))
        futures = [
            session.send(FrameRequest(sid, end=i == len(motion) - 1, motion=motion[i], relative=True))
            for i in range(len(motion))
        ]
        start.result(conn.timeout)  # its error, if any, explains the frames' errors
        frames = to_frames(np.concatenate([f.result(conn.timeout) for f in futures]))
    if out is not None:
        write_video(out, frames, fps=probe_fps(driving))
    return frames


def freeview(
    conn: Connection,
    portrait: Path,
    out: Path | None = None,
    *,
    axes: tuple[str, ...] = ("yaw",),
    amplitude: float = 30.0,
    frames_per_axis: int = 50,
    frontalise: bool = False,
) -> np.ndarray:
    """Receiver-side view change of a portrait: each axis swept 0 → +a → −a → 0 degrees (the others
    kept as the portrait's, or zero with `frontalise`); with no axes, one frontalised frame."""
    networks = conn.networks()
    served = networks.served_model()
    source = images_to_batch(load_portrait(portrait, served.image_size)[None])
    motion = encode_frames(networks, source)
    networks.close()
    views = [ViewEdit(frontalise=frontalise)] if not axes else []
    angles = amplitude * np.sin(np.linspace(0, 2 * np.pi, frames_per_axis))
    for axis in axes:
        index = ("yaw", "pitch", "roll").index(axis)
        for angle in angles:
            override = tuple(float(angle) if i == index else None for i in range(3))
            views.append(ViewEdit(override=override, frontalise=frontalise))
    with conn.session() as session:
        sid = session.session_id
        futures = [
            session.send(
                FrameRequest(
                    sid,
                    start=i == 0,
                    end=i == len(views) - 1,
                    view=view,
                    motion=motion,
                    source_image=source if i == 0 else None,
                )
            )
            for i, view in enumerate(views)
        ]
        frames = to_frames(np.concatenate([f.result(conn.timeout) for f in futures]))
    if out is not None:
        write_video(out, frames, fps=25.0)
    return frames
