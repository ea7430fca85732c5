"""Live encoder: one `Motion` in, the bytes of its packet(s) out."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from .framecoder import FrameCoder
from .header import StreamHeader
from ..expression import SourceFace
from .auth import check_key, compact_tag, seal
from .keyframe import ImageCodec, check_quality, default_codec, encode_face, encode_keyframe
from .motion import Motion
from .packet import Flags, Packet, PacketType, implied_timestamp, off_grid
from .quant import QSCALE_UNITY, qscale_factor
from .ratecontrol import RateController
from .refresh import RefreshPolicy
from .stats import StreamStats


class Encoder:
    """Encodes one stream: call `request_keyframe` with the source image, then `encode` per frame.

    Packets of frame n carry seq = n mod 65536. Every `header.intra_interval` frames (and
    after `request_intra`) the MOTION packet is intra. With `target_kbps`, a
    `RateController` picks each packet's quantiser scale; otherwise `qscale` is fixed.
    With `refresh`, frames passed to `encode` with their image get a new keyframe whenever the
    policy finds the head too far from the current source (`RefreshPolicy`); `face_of` then gives
    that picture's face in streams with the expression channel. `key`: the call's packet key in an
    authenticated stream (`bitstream.auth`). `dead_zone`: predicted residuals within (0.5 + dead_zone) steps
    code as 0 (`FrameCoder.encode`; the decoder needs nothing).
    """

    def __init__(self, header: StreamHeader, *, target_kbps: float | None = None, qscale: int = QSCALE_UNITY,
                 keyframe_quality: int | None = None, keyframe_codec: ImageCodec | None = None,
                 refresh: RefreshPolicy | None = None,
                 face_of: Callable[[np.ndarray], SourceFace | None] | None = None,
                 key: bytes | None = None, dead_zone: float = 0.0) -> None:
        qscale_factor(qscale)  # validates the index
        if not 0.0 <= dead_zone < 0.5:
            raise ValueError(f"dead zone must be in [0, 0.5) steps, got {dead_zone}")
        self.dead_zone = dead_zone
        self.header = header
        self.stats = StreamStats(float(header.fps))
        self.rate = RateController(target_kbps, float(header.fps), initial=qscale) if target_kbps else None
        self._qscale = qscale
        # checked here, not at the first keyframe: a bad setting fails before the call starts
        self._keyframe_options = {"quality": None if keyframe_quality is None else check_quality(keyframe_quality),
                                  "codec": keyframe_codec or default_codec(header.compact)}
        self._coder = FrameCoder(header.num_kp, header.steps, header.num_face, trimmed=header.compact)
        self._chain_qscale: int | None = None  # compact: the qscale the decoder's chain last received
        self._state = self._coder.initial_state()
        self._frame = 0
        self._frames_since_intra = 0
        self._force_intra = True
        self._pending_keyframe: bytes | None = None
        self.refresh = refresh
        self.face_of = face_of
        if header.authenticated != (key is not None):
            raise ValueError("an authenticated stream needs the call's packet key, and a key needs such a stream "
                             "(StreamHeader(authenticated=True))")
        self._key = None if key is None else check_key(key)
        self._source: tuple[Motion, int] | None = None  # motion and timestamp of the last keyframe's frame
        self._anchor: tuple[int, int] | None = None  # compact packets: (frame, timestamp_ms) of the last anchor

    def request_keyframe(self, image: np.ndarray, face: SourceFace | None = None) -> bytes:
        """Send `image` ((H, W, 3) uint8 RGB, header size) as source from the next frame on, with its
        face in streams with the expression channel (None: no face found); returns the image's
        coded body (`decode_keyframe` of it is the source the receiver will render from).

        The KEYFRAME packet precedes that frame's MOTION packet in the bytes `encode`
        returns; it is flagged REFRESH unless it is the stream's first keyframe.
        """
        image = np.asarray(image)
        if image.shape[:2] != (self.header.height, self.header.width):
            raise ValueError(f"keyframe is {image.shape[:2]}, header says {(self.header.height, self.header.width)}")
        if face is not None and face.code.shape != (self.header.num_face,):
            raise ValueError(f"a source face needs a stream with its expression channel (header num_face "
                             f"{self.header.num_face}, the face's code has {face.code.size})")
        if face is not None:  # on the coefficients' grid: a frame that repeats the source draws it exactly
            step = self.header.steps.face
            face = dataclasses.replace(face, code=np.rint(face.code.astype(np.float64) / step) * step)
        coded = encode_keyframe(image, **self._keyframe_options)
        self._pending_keyframe = (encode_face(face) if self.header.num_face else b"") + coded
        return coded

    def request_intra(self) -> None:
        """Make the next MOTION packet intra (e.g. on a receiver's loss report)."""
        self._force_intra = True

    @property
    def reconstruction(self) -> Motion | None:
        """The decoder's reconstruction of the last encoded frame (None before the first)."""
        state = self._state.reconstruction
        return None if state is None else Motion.from_vector(state, self.header.num_kp, self.header.num_face)

    def encode(self, motion: Motion, timestamp_ms: int, image: np.ndarray | None = None) -> bytes:
        """Bytes of the packets for one frame: [KEYFRAME] MOTION. `timestamp_ms` ≥ 0; `image`
        ((H, W, 3) uint8, the frame itself) lets the refresh policy send it as a new source."""
        vector, timestamp_ms = motion.to_vector(), int(timestamp_ms)
        if (motion.num_kp, motion.num_face) != (self.header.num_kp, self.header.num_face) \
                or not np.all(np.isfinite(vector)):
            raise ValueError(f"motion must have K={self.header.num_kp} keypoints, P={self.header.num_face} "
                             "expression coefficients and finite values")
        if image is not None and self._refresh_due(motion, timestamp_ms):
            self.request_keyframe(image, self.face_of(image) if self.face_of else None)
        if self._pending_keyframe is not None:
            self._source = (motion, timestamp_ms)
        chunk = self._keyframe_packet(timestamp_ms) + self._motion_packet(vector, timestamp_ms)
        self._frame += 1
        return chunk

    def _refresh_due(self, motion: Motion, timestamp_ms: int) -> bool:
        if self.refresh is None or self._source is None or self._pending_keyframe is not None:
            return False
        source, source_ms = self._source
        return self.refresh.due(source, motion, (timestamp_ms - source_ms) / 1000)

    def _keyframe_packet(self, timestamp_ms: int) -> bytes:
        if self._pending_keyframe is None:
            return b""
        flags = Flags.REFRESH if self.stats.keyframes else Flags.NONE
        packet = Packet(PacketType.KEYFRAME, self._frame, timestamp_ms, flags, self._pending_keyframe)
        self._pending_keyframe = None
        return self._emit(packet)

    def _motion_packet(self, vector: np.ndarray, timestamp_ms: int) -> bytes:
        intra = self._force_intra or self._frames_since_intra >= self.header.intra_interval
        qscale = self.rate.qscale if self.rate else self._qscale
        payload, self._state = self._coder.encode(self._state, vector, qscale, intra, self.dead_zone)
        self._force_intra, self._frames_since_intra = False, 1 if intra else self._frames_since_intra + 1
        flags = Flags.INTRA if intra else Flags.NONE
        if self.header.compact and not intra and qscale == self._chain_qscale:
            body = payload  # the decoder's chain holds this qscale already
        else:
            body, flags = bytes([qscale]) + payload, flags | (Flags.QSCALE if self.header.compact else Flags.NONE)
        self._chain_qscale = qscale
        data = self._emit(Packet(PacketType.MOTION, self._frame, timestamp_ms, flags, body))
        if self.rate:
            self.rate.update(8 * len(data))
        return data

    def _emit(self, packet: Packet) -> bytes:
        if self.header.compact:
            data = self._compact(packet)
        else:
            if self._key is not None:
                packet = seal(packet, self._key, self._frame)
            data = packet.to_bytes()
        self.stats.add(dataclasses.replace(packet, wire_size=len(data)))
        return data

    def _compact(self, packet: Packet) -> bytes:
        """Version-3 bytes: an ANCHOR (whole frame number, explicit timestamp) on keyframes, intra packets
        and whenever the timestamp is off the grid implied by the last anchor; else an 8-bit seq only."""
        fps = (self.header.fps_num, self.header.fps_den)
        anchor = packet.type == PacketType.KEYFRAME or Flags.INTRA in packet.flags or self._anchor is None \
            or off_grid(packet.timestamp_ms, implied_timestamp(self._anchor, self._frame, *fps), *fps)
        if anchor:
            self._anchor = (self._frame, packet.timestamp_ms)
        else:
            packet = dataclasses.replace(packet, timestamp_ms=None)
        sign = None
        if self._key is not None:
            key, frame = self._key, self._frame

            def sign(covered: bytes) -> bytes:
                return compact_tag(key, frame, covered)
        return packet.to_compact_bytes(sign)
