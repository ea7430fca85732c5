"""Live decoder: packets in (any order, any damage), exactly one frame out per sequence number.

- Damaged bytes (bad length or CRC) are skipped up to the next valid packet; packets with
  out-of-range fields, stale or duplicate sequence numbers are dropped. Each drop is
  counted in `Decoder.drops` and logged with its reason.
- A MOTION packet is held until its turn; frame n is declared lost once a packet more
  than `reorder_window` frames ahead has arrived (0: no waiting, lowest latency).
- A packet may run at most `max_gap` frames ahead (the reorder window plus a second): a
  predicted one further ahead is dropped (TOO_FAR), so a forged sequence number cannot make the
  decoder conceal thousands of frames; an intra or keyframe packet re-joins the stream there, and
  the next frame says how many frame numbers were skipped (`DecodedFrame.skipped`) instead of
  concealing them.
- A lost frame is concealed (damped extrapolation of the last two frames), and so is every
  predicted frame after it: the decoder resynchronises at the next intra packet, from which
  on its output equals the loss-free decode again. Concealed frames are marked.
- A KEYFRAME image is attached to the first emitted frame at or after its sequence number
  (to the next emitted frame if it arrives late). At most `MAX_PENDING_KEYFRAMES` wait at once
  (the newest are kept); frames are emitted as packets arrive, so a file never piles them up.
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import logging
import math

import numpy as np

from .auth import check_key, compact_tag, unseal
from .errors import BitstreamError, DropReason, FramingError, InvalidFieldError
from .framecoder import FrameCoder
from .header import StreamHeader
from ..expression import SourceFace
from .keyframe import decode_face, decode_keyframe
from .motion import Motion, vector_length
from .packet import (SEQ_MODULUS, TIMESTAMP_MODULUS, Flags, ForgedError, Framing, Packet, PacketType,
                     implied_timestamp, scan_packets)
from .quant import QSCALE_MAX
from .stats import StreamStats

logger = logging.getLogger(__name__)
_LOG_LEVEL = {DropReason.BAD_FRAMING: logging.WARNING, DropReason.INVALID: logging.WARNING}  # others: DEBUG
DEFAULT_DAMPING = 0.5  # velocity kept per concealed frame (0: hold the last frame)
MAX_PENDING_KEYFRAMES = 2  # decoded keyframes waiting for their frame (a refresh within the reorder window)


@dataclasses.dataclass(frozen=True, eq=False)
class DecodedFrame:
    """One output frame. `seq` is the unwrapped frame number; `keyframe` a new (H, W, 3)
    uint8 source image that applies from this frame on, else None; `face` that keyframe's
    source face (streams with the expression channel, when the sender found one)."""

    seq: int
    timestamp_ms: int
    motion: Motion
    concealed: bool
    keyframe: np.ndarray | None = None
    face: SourceFace | None = None
    skipped: int = 0  # frame numbers skipped just before this one (an intra packet re-joined the stream)


def unwrap_seq(wire: int, reference: int, modulus: int = SEQ_MODULUS) -> int:
    """The frame number ≡ `wire` (mod `modulus`: 65536 in legacy packets) nearest to `reference`."""
    delta = (wire - reference) % modulus
    return reference + (delta - modulus if delta >= modulus // 2 else delta)


def conceal(previous: np.ndarray | None, last: np.ndarray | None, num_kp: int,
            damping: float = DEFAULT_DAMPING, num_face: int = 0) -> np.ndarray:
    """Guess for the frame after `last`: last + damping · (last − previous); neutral if unknown."""
    if last is None:
        return np.zeros(vector_length(num_kp, num_face))
    return last if previous is None else last + damping * (last - previous)


class Decoder:
    """Decodes one stream described by `header`; feed bytes with `push`, end with `flush`.

    key: the call's packet key when the header says its packets are authenticated (`bitstream.auth`).

    first_seq: frame number the stream starts at (the Encoder starts at 0), so that
    leading losses are concealed too; None to join a running stream at its first packet.
    """

    def __init__(self, header: StreamHeader, *, first_seq: int | None = 0, reorder_window: int = 0,
                 damping: float = DEFAULT_DAMPING, key: bytes | None = None) -> None:
        if reorder_window < 0 or not 0.0 <= damping <= 1.0:
            raise ValueError(f"need reorder_window >= 0 and 0 <= damping <= 1, got {reorder_window}, {damping}")
        self.header = header
        self.reorder_window = reorder_window
        self.max_gap = reorder_window + math.ceil(header.fps)  # frames a packet may run ahead: + 1 s
        if header.authenticated and key is None:
            raise ValueError("this stream's packets are authenticated: the decoder needs the call's packet key")
        self._key = None if key is None else check_key(key)
        self.damping = damping
        self.drops: collections.Counter[DropReason] = collections.Counter()
        self.stats = StreamStats(float(header.fps))
        self._coder = FrameCoder(header.num_kp, header.steps, header.num_face, trimmed=header.compact)
        self._qscale: int | None = None  # compact: the qscale of the last decoded MOTION packet
        self._state = self._coder.initial_state()
        self._synced = False
        self._next = first_seq  # frame number of the next frame to emit
        self._buffer: dict[int, Packet] = {}  # waiting MOTION packets by frame number
        # keyframes not yet emitted, by frame number: several can wait at once (a file read whole,
        # refreshes within the reorder window); each is handed out with its own frame
        self._keyframes: dict[int, tuple[np.ndarray, SourceFace | None]] = {}
        self._keyframe_seq: int | None = None  # frame number of the newest accepted keyframe
        self._history: tuple[np.ndarray | None, np.ndarray | None] = (None, None)  # last two outputs
        self._skipped = 0  # frame numbers jumped over by a re-join, reported on the next frame
        self._last_timestamp: tuple[int, int] | None = None  # (frame number, timestamp_ms)
        self._anchor: tuple[int, int] | None = None  # compact: (frame number, timestamp_ms) of the newest anchor
        verify = self._verify if header.compact and self._key is not None else None
        self._framing = Framing(header.compact, verify)

    def _reference(self, packet: Packet) -> int:
        """The frame number a packet's wire seq is unwrapped against (its own seq before the first packet)."""
        return packet.seq if self._next is None else self._next

    def _verify(self, packet: Packet, covered: bytes, tag: bytes) -> bool:
        """A compact packet's tag, checked for the frame number its wire seq unwraps to."""
        seq = unwrap_seq(packet.seq, self._reference(packet), packet.seq_modulus)
        return hmac.compare_digest(tag, compact_tag(self._key, seq, covered))

    def push(self, data: bytes) -> list[DecodedFrame]:
        """Accept bytes holding one or more WHOLE packets (a datagram, an `Encoder.encode`
        output, a file body); damaged bytes are skipped. Returns the frames now due, in order."""
        frames = []
        for item in scan_packets(data, self._framing):
            if isinstance(item, BitstreamError):
                reason = DropReason.BAD_FRAMING if isinstance(item, FramingError) else \
                    DropReason.FORGED if isinstance(item, ForgedError) else DropReason.INVALID
                self._drop(reason, str(item))
                continue
            if self._key is not None and not self.header.compact:
                seq = unwrap_seq(item.seq, self._reference(item))
                opened = unseal(item, self._key, seq)
                if opened is None:
                    self._drop(DropReason.FORGED, f"{item.type.name} seq {item.seq}: its tag does not verify")
                    continue
                item = opened
            self.stats.add(item)
            self._accept(item)
            frames += self._drain(final=False)  # per packet: keyframes do not pile up in a long push
        return frames

    def flush(self, end_seq: int | None = None) -> list[DecodedFrame]:
        """Emit every held frame, concealing gaps; with `end_seq`, also conceal up to it (exclusive)."""
        frames = self._drain(final=True)
        while end_seq is not None and self._next is not None and self._next < end_seq:
            frames.append(self._emit(None))
        return frames

    def _drop(self, reason: DropReason, detail: str) -> None:
        self.drops[reason] += 1
        logger.log(_LOG_LEVEL.get(reason, logging.DEBUG), "dropped packet (%s): %s", reason.value, detail)

    def _accept(self, packet: Packet) -> None:
        if self._next is None:
            if packet.timestamp_ms is None:  # a compact stream is joined at an anchor (an intra packet)
                self._drop(DropReason.UNSYNCED, f"{packet.type.name} seq {packet.seq}: joining waits for an anchor")
                return
            self._next = packet.seq
        seq = unwrap_seq(packet.seq, self._next, packet.seq_modulus)
        if self.header.compact:
            packet = self._timed(packet, seq)
        if seq > self._next + self.max_gap:
            if packet.type == PacketType.KEYFRAME or Flags.INTRA in packet.flags:  # each decodes on its own
                self._rejoin(seq)
            else:
                self._drop(DropReason.TOO_FAR, f"{packet.type.name} seq {packet.seq}: {seq - self._next} frames ahead "
                           f"(at most {self.max_gap})")
                return
        if packet.type == PacketType.KEYFRAME:
            self._accept_keyframe(seq, packet)
        elif seq < self._next:
            self._drop(DropReason.STALE, f"MOTION seq {packet.seq}: frame {seq} already emitted")
        elif seq in self._buffer:
            self._drop(DropReason.DUPLICATE, f"MOTION seq {packet.seq}: frame {seq} already buffered")
        else:
            self._buffer[seq] = packet

    def _timed(self, packet: Packet, seq: int) -> Packet:
        """A compact packet with its timestamp: the anchor's own, or implied by the newest anchor."""
        if packet.timestamp_ms is not None:
            if self._anchor is None or seq >= self._anchor[0]:
                self._anchor = (seq, packet.timestamp_ms)
            return packet
        timestamp = implied_timestamp(self._anchor or (0, 0), seq, self.header.fps_num, self.header.fps_den)
        return dataclasses.replace(packet, timestamp_ms=timestamp)

    def _accept_keyframe(self, seq: int, packet: Packet) -> None:
        if self._keyframe_seq is not None and seq <= self._keyframe_seq:
            self._drop(DropReason.STALE, f"KEYFRAME seq {packet.seq}: not newer than frame {self._keyframe_seq}")
            return
        try:
            face, body = None, packet.body
            if self.header.num_face:
                face, body = decode_face(body, self.header.height, self.header.width, self.header.num_face)
            image = decode_keyframe(body, self.header.height, self.header.width)
        except InvalidFieldError as exc:
            self._drop(DropReason.INVALID, f"KEYFRAME seq {packet.seq}: {exc}")
            return
        self._keyframes[seq], self._keyframe_seq = (image, face), seq
        while len(self._keyframes) > MAX_PENDING_KEYFRAMES:  # the newest supersede the oldest anyway
            oldest = min(self._keyframes)
            del self._keyframes[oldest]
            self._drop(DropReason.STALE, f"KEYFRAME of frame {oldest}: more than {MAX_PENDING_KEYFRAMES} waiting")

    def _rejoin(self, seq: int) -> None:
        """An intra packet far ahead: continue from just before it without concealing the gap."""
        held = [s for s in self._buffer if s < seq - self.reorder_window]
        for s in held:  # packets of the skipped stretch can no longer be emitted
            del self._buffer[s]
        self._skipped += seq - self.reorder_window - self._next
        self._next = seq - self.reorder_window
        self._synced = False
        logger.warning("re-joined the stream %d frames ahead (an intra packet after a long gap)", self._skipped)
    def _drain(self, final: bool) -> list[DecodedFrame]:
        frames = []
        while self._buffer and (self._next in self._buffer or final
                                or max(self._buffer) > self._next + self.reorder_window):
            frames.append(self._emit(self._buffer.pop(self._next, None)))
        return frames

    def _emit(self, packet: Packet | None) -> DecodedFrame:
        """The frame `self._next`, decoded from `packet` or concealed; advances the decoder."""
        vector = self._decode(packet) if packet is not None else None
        concealed = vector is None
        if concealed:
            self._synced = False
            vector = conceal(*self._history, self.header.num_kp, self.damping, self.header.num_face)
        seq, self._next = self._next, self._next + 1
        timestamp = self._timestamp(seq, None if concealed else packet)
        self._history = (self._history[1], vector)
        motion = Motion.from_vector(vector, self.header.num_kp, self.header.num_face)
        image, face = self._take_keyframe(seq)
        skipped, self._skipped = self._skipped, 0
        return DecodedFrame(seq, timestamp, motion, concealed, image, face, skipped)

    def _decode(self, packet: Packet) -> np.ndarray | None:
        """Reconstruction of a MOTION packet, or None (after recording why) if undecodable."""
        intra = Flags.INTRA in packet.flags
        carried = not self.header.compact or Flags.QSCALE in packet.flags  # legacy packets always carry it
        if carried and (not packet.body or packet.body[0] > QSCALE_MAX) or intra and not carried:
            self._drop(DropReason.INVALID, f"MOTION seq {packet.seq}: missing or out-of-range qscale")
            return None
        if not (intra or self._synced):
            self._drop(DropReason.UNSYNCED, f"MOTION seq {packet.seq}: predicted frame after a loss")
            return None
        qscale, payload = (packet.body[0], packet.body[1:]) if carried else (self._qscale, packet.body)
        try:
            self._state = self._coder.decode(self._state, payload, qscale, intra)
        except BitstreamError as exc:
            self._drop(DropReason.INVALID, f"MOTION seq {packet.seq}: {exc}")
            return None
        self._synced, self._qscale = True, qscale
        return self._state.reconstruction

    def _timestamp(self, seq: int, packet: Packet | None) -> int:
        """The packet's timestamp, or one extrapolated from the last at the nominal frame rate."""
        if packet is not None:
            self._last_timestamp = (seq, packet.timestamp_ms)
            return packet.timestamp_ms
        last_seq, last_ms = self._last_timestamp or (0, 0)
        return (last_ms + round((seq - last_seq) * self.header.frame_ms)) % TIMESTAMP_MODULUS

    def _take_keyframe(self, seq: int) -> tuple[np.ndarray | None, SourceFace | None]:
        """The newest waiting keyframe (image, face) for frames up to `seq` (older ones are
        superseded by it); (None, None) when none is due."""
        due = sorted(k for k in self._keyframes if k <= seq)
        keyframes = [self._keyframes.pop(k) for k in due]
        return keyframes[-1] if keyframes else (None, None)
