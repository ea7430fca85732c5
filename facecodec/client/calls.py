"""What the clients do, as functions: encode, decode, call, reenact, freeview over gRPC.

The sender side is the codec's `Sender` on `RemoteNetworks` (motion_encoder); the receiver side is
the bitstream `Decoder` plus a `DecoderSession`, fed the codec's `frame_request`s. The packets between
them are what a real link would carry, so their size is the call's bit rate.
"""

from __future__ import annotations

import collections
import logging
import queue
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..bitstream import DecodedFrame, Decoder, RefreshPolicy, read_stream, stream_bytes
from ..codec.pipeline import ViewEdit, check_stream, encode_frames, images_to_batch
from ..codec.receiver import frame_request, frame_requests
from ..codec.sender import Sender, encode_file, stream_header
from ..bitstream.auth import new_key
from ..expression import ExpressionSender
from ..codec.session import FrameRequest
from ..media import probe_fps, read_image, read_video, to_frames, write_video
from ..quality import psnr
from .link import Link, LinkModel
from .live import RateAdapter, ReceiverReport, RenderQueue
from .reconnect import Backoff, ReconnectingSession, SessionLost, gaps
from .remote import DEFAULT_URL, ClientError, RemoteNetworks, ServerBusy
from .tls import ClientTls

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass(frozen=True)
class Connection:
    url: str = DEFAULT_URL
    timeout: float | None = 60.0
    verbose: bool = False
    decoders: tuple[str, ...] = ()  # servers of the call's decoder session, in order (default: url)
    tls: ClientTls | None = None  # gRPC over TLS (every server of the call)
    backoff: Backoff = Backoff()  # re-opening the call's session when its server goes away

    def networks(self) -> RemoteNetworks:
        return RemoteNetworks(self.url, timeout=self.timeout, verbose=self.verbose, tls=self.tls)

    def session(self, **kw) -> ReconnectingSession:
        """The call's decoder session; it re-opens on the next of `decoders` (or on the same address,
        e.g. a Kubernetes Service, which reaches another pod) when its server goes away mid-call."""
        urls = self.decoders or (self.url,)
        return ReconnectingSession(urls, timeout=self.timeout, verbose=self.verbose, tls=self.tls,
                                   backoff=self.backoff, **kw)


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
    """What a call measured. Latency: from a frame's capture to its decoded frame at the receiver,
    over the frames delivered. `frames` were captured, `frames_sent` of them sent (the sender lowers
    its rate when the receiver is behind), `frames_delivered` rendered and shown, `frames_dropped`
    skipped by the receiver because newer motion had arrived, `frames_lost` lost on the link."""

    frames: int
    fps_target: float
    fps_decoded: float
    latency_ms_p50: float
    latency_ms_p95: float
    kbps: float  # packets on the link, source keyframe included, over the call's duration
    kbps_motion: float  # without the keyframe
    keyframe_bytes: int  # all keyframes: the first and any refreshes
    psnr_db: float  # the frames shown (a dropped frame shows the one before) vs the sender's frames
    keyframes: int = 1  # the first + refreshes
    frames_sent: int = 0
    frames_delivered: int = 0
    frames_dropped: int = 0
    frames_lost: int = 0
    latency_ms_p99: float = 0.0
    live: bool = True  # False: --no-drop, every frame decoded
    outputs: dict[str, str] = field(default_factory=dict)
    lost_frames: list[int] = field(default_factory=list)  # lost with a server that went away (shown: the last frame)
    gaps: list[dict] = field(default_factory=list)  # each run of lost frames: first, frames, ms
    reconnects: list[dict] = field(default_factory=list)  # each move of the call to another server
    # packets the receiver's bitstream decoder discarded, by reason (`DropReason`: `forged` = failed
    # authentication: injected, altered or replayed; `bad_framing`, `stale`, ...)
    packets_rejected: dict[str, int] = field(default_factory=dict)
    frames_shed: int = 0  # not sent: the server's motion encoder was busy (queue full) and refused them

    def as_dict(self) -> dict:
        return asdict(self)


class _Receiver:
    """Receiver side of a live call, on its own thread: packets from the link → bitstream decoder →
    `RenderQueue` → decoder session, at most `depth` requests in flight. Live, a frame that waited
    while newer motion arrived is dropped (the count travels with the next request, for the server's
    metrics), so the latency stays bounded; `live=False` decodes every frame. Records when each frame
    arrived, was depacketised, requested, answered and shown (`times`, by sequence number), and sends
    a `ReceiverReport` every `report_s` to `reports` (the link back to the sender)."""

    def __init__(self, session: ReconnectingSession, header, *, live: bool = True, depth: int | None = None,
                 reports: Callable[[ReceiverReport], None] | None = None, report_s: float = 0.5,
                 key: bytes | None = None):
        self.session, self.live = session, live
        self.depth = depth or (1 if live else 8)
        self.decoder = Decoder(header, key=key)
        self.queue = RenderQueue(live)
        self.events: queue.Queue[tuple] = queue.Queue()
        self.frames: dict[int, np.ndarray] = {}  # shown frames (uint8) by sequence number
        self.times: dict[int, dict[str, float]] = collections.defaultdict(dict)
        self.failed: dict[int, BaseException] = {}
        self.dropped: list[int] = []
        self.request_ids: dict[int, str] = {}  # the decoder request of each rendered frame (Triton's trace)
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.reports, self.report_s = reports, report_s
        self._in_flight = 0
        self._unreported_drops = 0
        self._counts = collections.Counter()  # since the last report: received, delivered, dropped
        self._total: int | None = None
        self.thread = threading.Thread(target=self._run, name="call-receiver", daemon=True)
        self.thread.start()

    def deliver(self, packet: bytes, sent_at: float) -> None:
        """The link's delivery callback."""
        self.events.put(("packet", packet, time.monotonic()))

    def expect(self, frames_sent: int) -> None:
        """The call's length, told before its last packet: that frame's request ENDs the session."""
        self.events.put(("total", frames_sent))

    def finish(self, frames_sent: int, timeout: float | None) -> None:
        """End of the call's packets (`frames_sent` of them); waits until every frame is answered."""
        self.events.put(("end", frames_sent))
        self.thread.join(timeout)
        if self.errors:
            raise self.errors[0]

    def _run(self) -> None:
        try:
            last_report, ended = time.monotonic(), False
            while True:
                try:
                    event = self.events.get(timeout=self.report_s)
                except queue.Empty:
                    event = ("tick",)
                if event[0] == "packet":
                    self._received(self.decoder.push(event[1]), event[2])
                elif event[0] == "total":
                    self._total = event[1]
                elif event[0] == "end":
                    self._total, ended = event[1], True
                    self._received(self.decoder.flush(end_seq=self._total), time.monotonic())
                elif event[0] == "done":
                    self._in_flight -= 1
                self._pump()
                now = time.monotonic()
                if self.reports is not None and now - last_report >= self.report_s:
                    self._report(now - last_report)
                    last_report = now
                if ended and not self.queue and self._in_flight == 0:
                    return
        except BaseException as err:  # noqa: BLE001 - handed to the caller by finish()
            self.errors.append(err)

    def _received(self, frames: list[DecodedFrame], arrived: float) -> None:
        now = time.monotonic()
        for frame in frames:
            self.times[frame.seq].update(arrived=arrived, depacketised=now)
            self._counts["received"] += 1
            for stale in self.queue.add(frame):
                self.dropped.append(stale.seq)
                self._unreported_drops += 1
                self._counts["dropped"] += 1

    def _pump(self) -> None:
        while self.queue and self._in_flight < self.depth:
            frame = self.queue.pop()
            start = frame.keyframe is not None and not self.session.started
            end = self._total is not None and frame.seq == self._total - 1
            request = frame_request(frame, self.session.session_id, start=start, end=end)
            params = {"dropped": self._unreported_drops} if self._unreported_drops else None
            self.times[frame.seq]["requested"] = time.monotonic()
            self._in_flight += 1
            future = self.session.send(request, parameters=params)
            self.request_ids[frame.seq] = self.session.last_request_id
            future.add_done_callback(lambda fut, seq=frame.seq: self._done(seq, fut))
            self._unreported_drops = 0

    def _done(self, seq: int, future) -> None:
        answered = time.monotonic()
        error = future.exception()
        shown = None if error is not None else to_frames(future.result())[0]  # "display": float → uint8
        with self.lock:
            self.times[seq]["answered"] = answered
            if error is None:
                self.frames[seq] = shown
                self.times[seq]["shown"] = time.monotonic()
            else:
                self.failed[seq] = error
        self._counts["delivered" if error is None else "failed"] += 1
        self.events.put(("done",))

    def _report(self, interval: float) -> None:
        counts, self._counts = self._counts, collections.Counter()
        self.reports(ReceiverReport(interval, counts["received"], counts["delivered"], counts["dropped"]))

    @property
    def answered(self) -> int:
        with self.lock:
            return len(self.frames) + len(self.failed)


@dataclass
class CallResult:
    report: CallReport
    frames: np.ndarray  # what the receiver showed at each captured frame's slot (T, S, S, 3) uint8
    stream: bytes  # header + every packet the sender sent
    delivered: dict[int, np.ndarray] = field(default_factory=dict)  # rendered frames by sequence number
    # per captured frame: monotonic seconds at each stage (`captured`, `encoded`, `landmarks`, `packetised`,
    # `arrived`, `depacketised`, `requested`, `answered`, `shown`), its `seq` and decoder `request_id`
    timeline: list[dict] = field(default_factory=list)
    key: bytes | None = None  # the call's packet key (authenticated calls): `stream` reads with it


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
    live: bool = True,
    adapt_rate: bool = True,
    link: LinkModel | None = None,
    networks: RemoteNetworks | None = None,
    frames: np.ndarray | None = None,
    tap: Callable[[int, bytes], list[bytes]] | None = None,
) -> CallResult:
    """Sender and receiver of one call in one process, the sender paced at the clip's frame rate.
    `out_dir` receives decoded.mp4, side_by_side.mp4 and stream.fcdc. `expression`: the expression
    channel's sender (MediaPipe in this process), None for head motion only. `authenticate`: a fresh
    per-call key tags every packet, and the receiver drops any that does not verify.

    `live` (the default): the receiver renders only the newest motion when it is behind, and with
    `adapt_rate` the sender lowers its frame rate on the receiver's reports; `live=False` (`--no-drop`)
    decodes every frame, however late. `link`: the simulated path between them (default: ideal).
    `networks` / `frames`: a motion_encoder connection and the clip's frames already at hand. `tap`: what
    a party on the path does, (frame number, packet) → the datagrams that go on the link instead (a
    test's intruder: altered, replayed or injected packets)."""
    own_networks = networks is None
    networks = networks or conn.networks()
    served = networks.served_model()
    if frames is None:
        frames = read_video(video, size=served.image_size, max_frames=max_frames)
    fps = probe_fps(video)
    key = new_key() if authenticate else None
    header = stream_header(served.preset, served.num_kp, served.image_size, fps, expression=expression,
                           authenticated=authenticate)
    sender = Sender(networks, header, target_kbps=target_kbps, refresh=refresh, expression=expression, key=key)
    adapter = RateAdapter(fps) if live and adapt_rate else None
    link = link or LinkModel()
    timeline: list[dict] = [{} for _ in frames]
    seq_of: dict[int, int] = {}
    packets: list[bytes] = []
    shed = 0  # frames the sender's motion encoder refused (its queue full) and the call skipped
    with conn.session() as session:
        back = Link(link, lambda report, sent_at: adapter.report(report), name="call-reports") if adapter else None
        rx = _Receiver(session, header, live=live, reports=back.send if back else None, key=key)
        uplink = Link(link, rx.deliver, name="call-link")
        t0 = next_report = time.monotonic()
        for n in range(len(frames)):
            if realtime:
                time.sleep(max(0.0, t0 + n / fps - time.monotonic()))
            stamps = timeline[n]
            stamps["captured"] = time.monotonic()
            last = n == len(frames) - 1  # always sent: it ENDs the session
            if adapter is not None and not adapter.take() and not last:
                continue
            keyframes = sender.stats.keyframes
            try:
                packet = _send_frame(sender, networks, expression, frames[n : n + 1], round(n * 1000 / fps), stamps,
                                     retries=0 if 0 < n and not last else 5)
            except ServerBusy as err:  # the motion encoder shed this frame: the call skips it, as a drop
                if n == 0 or last:
                    raise
                shed += 1
                log.debug("frame %d not sent: %s", n, err)
                continue
            seq_of[n] = sender.frames_sent - 1
            packets.append(packet)
            if last:
                rx.expect(sender.frames_sent)
            reliable = sender.stats.keyframes > keyframes  # a keyframe is retransmitted
            for datagram in tap(n, packet) if tap is not None else [packet]:
                uplink.send(datagram, reliable=reliable)
            if progress and time.monotonic() >= next_report:
                next_report += 1.0
                progress(_live_line(rx, timeline, seq_of, t0))
        uplink.close()
        rx.finish(len(packets), conn.timeout)
        if back is not None:
            back.close()
    if own_networks:
        networks.close()
    lost = sorted(seq for seq, err in rx.failed.items() if isinstance(err, SessionLost))
    if len(rx.failed) > len(lost) or not rx.frames:
        first = next((e for e in rx.failed.values() if not isinstance(e, SessionLost)), "no response")
        raise ClientError(f"{len(rx.failed) - len(lost)} of {len(packets)} frames failed to decode; first: {first}")
    for n, seq in seq_of.items():
        timeline[n].update(rx.times.get(seq, {}), seq=seq)
        if seq in rx.request_ids:
            timeline[n]["request_id"] = rx.request_ids[seq]
    shown = _shown(rx.frames, seq_of, len(frames))
    latency = [1e3 * (t["shown"] - t["captured"]) for t in timeline if "shown" in t]
    duration = len(frames) / fps
    stats = sender.stats
    report = CallReport(
        frames=len(frames),
        fps_target=fps,
        fps_decoded=len(rx.frames) / (max(t["shown"] for t in timeline if "shown" in t) - t0),
        latency_ms_p50=statistics.median(latency),
        latency_ms_p95=float(np.percentile(latency, 95)),
        latency_ms_p99=float(np.percentile(latency, 99)),
        kbps=8e-3 * (stats.keyframe_bytes + stats.intra_bytes + stats.predicted_bytes) / duration,
        kbps_motion=8e-3 * (stats.intra_bytes + stats.predicted_bytes) / duration,
        keyframe_bytes=stats.keyframe_bytes,
        psnr_db=psnr(shown, frames, per_frame=False),
        keyframes=stats.keyframes,
        frames_sent=len(packets),
        frames_delivered=len(rx.frames),
        frames_dropped=len(rx.dropped),
        frames_lost=uplink.lost,
        live=live,
        lost_frames=lost,
        gaps=[asdict(g) for g in gaps({seq: rx.times[seq]["shown"] for seq in rx.frames}, lost)],
        reconnects=[asdict(r) for r in session.reconnects],
        packets_rejected={reason.value: count for reason, count in sorted(rx.decoder.drops.items()) if count},
        frames_shed=shed,
    )
    stream = stream_bytes(header, packets)
    if out_dir is not None:
        report.outputs = _write_call(Path(out_dir), frames, shown, fps, stream)
    return CallResult(report, shown, stream, dict(rx.frames), timeline, key)


def _send_frame(sender: Sender, networks, expression, frame: np.ndarray, timestamp_ms: int,
                stamps: dict[str, float], retries: int = 0) -> bytes:
    """One captured frame through the sender's stages, each timed: motion_encoder, the expression
    channel's landmarks, packetise (bitstream, and the keyframe's WebP on the first)."""
    for attempt in range(retries + 1):
        try:
            motion = encode_frames(networks, images_to_batch(frame))
            break
        except ServerBusy:
            if attempt == retries:
                raise
            time.sleep(0.05 * 2**attempt)  # a full queue drains in tens of ms
    stamps["encoded"] = time.monotonic()
    if expression is not None:
        motion = motion.with_face(expression.encode(frame))
    stamps["landmarks"] = time.monotonic()
    (packet,) = sender.send(frame, motion=motion, timestamps_ms=[timestamp_ms])
    stamps["packetised"] = time.monotonic()
    return packet


def _shown(delivered: dict[int, np.ndarray], seq_of: dict[int, int], count: int) -> np.ndarray:
    """What the display showed in each captured frame's slot: the newest delivered frame sent at or
    before it (a dropped or unsent frame keeps the one before on screen)."""
    out, current = [], None
    for n in range(count):
        seq = seq_of.get(n)
        if seq is not None and seq in delivered:
            current = delivered[seq]
        out.append(current if current is not None else delivered[min(delivered)])
    return np.stack(out)


def _live_line(rx: _Receiver, timeline: list[dict[str, float]], seq_of: dict[int, int], t0: float) -> str:
    now = time.monotonic()
    with rx.lock:
        shown = {seq: dict(rx.times[seq]) for seq in rx.frames}
    recent = sum(1 for t in shown.values() if t["shown"] > now - 1.0)
    capture = {seq: timeline[n]["captured"] for n, seq in seq_of.items()}
    lat = [1e3 * (t["shown"] - capture[seq]) for seq, t in sorted(shown.items()) if seq in capture][-25:]
    p50 = f"{statistics.median(lat):.0f} ms" if lat else "-"
    return (f"t={now - t0:5.1f}s  sent {len(seq_of):4d}  shown {len(shown):4d}  dropped {len(rx.dropped):4d}  "
            f"{recent:3d} fps  latency p50 {p50}")


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
