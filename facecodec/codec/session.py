"""Call sessions of the `decoder` model: per call, the source's f_s and keypoints stay where the
decoding runs, and every request renders one frame.

A session is a `pipeline.Receiver` keyed by the call's correlation id. START carries the source
image (and its motion, else the motion is estimated from it; with the expression channel also its
face), later requests carry one frame's motion (with the channel, its code `face`) plus optional
view edits; END frees the session. The frames of all sessions in a batch are
rendered by ONE `warp_decoder` run. Pure numpy: the Triton model (`serving.backend.DecoderModel`) and the
in-process receiver (`codec.receiver.receive`) run this same code, so their outputs agree.
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import io_spec
from ..expression import SourceFace, flow_size, zero_flow
from .pipeline import MotionBatch, Networks, Receiver, ViewEdit

log = logging.getLogger(__name__)
MOTION_NAMES = ("rotation", "translation", "expression")
FACE_NAMES = ("source_face_points", "source_face_map", "source_face_code")  # `SourceFace` fields, in order
# the request parameter carrying the call's session token: bound at START, checked on every later request
TOKEN_PARAMETER = "session_token"
MIN_TOKEN_CHARS = 16


class SessionError(Exception):
    """A request that does not fit its session; reported in that request's response only."""


@dataclass(frozen=True)
class FrameRequest:
    """One decoder request: a frame of call `session_id` (arrays have a batch axis of 1)."""

    session_id: int
    start: bool = False
    end: bool = False
    ready: bool = True  # False: a padding slot of Triton's `direct` strategy, no session behind it
    source_image: np.ndarray | None = None  # (1, 3, S, S): START, or a new source mid-call
    motion: MotionBatch | None = None  # one frame; on START the source's motion
    view: ViewEdit | None = None
    relative: bool = False
    source_face: SourceFace | None = None  # with source_image: its face (the expression channel)
    token: str | None = None  # the session token (a request parameter, not a tensor): START binds it

    def with_token(self, token: str | None) -> "FrameRequest":
        return dataclasses.replace(self, token=token)

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray | None], token: str | None = None) -> "FrameRequest":
        """From the decoder's tensors by io_spec name plus the controls START, END, READY, CORRID
        (absent optional inputs are None). Arrays are copied: Triton reuses request memory. A tensor
        of the wrong rank, empty, or not finite (NaN only where it means "keep": view_override) is
        a SessionError naming it."""
        tensors = _checked(tensors)
        flag = lambda name: bool(tensors.get(name) is not None and np.asarray(tensors[name]).reshape(-1)[0])  # noqa: E731
        present = [n for n in MOTION_NAMES if tensors.get(n) is not None]
        if present and len(present) != len(MOTION_NAMES):
            raise SessionError(f"motion needs all of {MOTION_NAMES}, got only {present}")
        motion = MotionBatch(*(np.array(tensors[n], np.float32) for n in MOTION_NAMES)) if present else None
        if motion is not None and tensors.get("face") is not None:
            motion = motion.with_face(np.array(tensors["face"], np.float32))
        source = tensors.get("source_image")
        faces = [tensors.get(n) for n in FACE_NAMES]
        if any(f is not None for f in faces) and (source is None or any(f is None for f in faces)):
            raise SessionError(f"a source face needs all of {FACE_NAMES} and the source_image")
        try:
            face = None if faces[0] is None else SourceFace(*(np.asarray(f, np.float32)[0] for f in faces))
        except ValueError as err:
            raise SessionError(str(err)) from None
        return cls(
            session_id=int(np.asarray(tensors["CORRID"]).reshape(-1)[0]),
            start=flag("START"),
            end=flag("END"),
            ready=tensors.get("READY") is None or flag("READY"),
            source_image=None if source is None else np.array(source, np.float32),
            motion=motion,
            view=view_edit(tensors.get("view_override"), tensors.get("view_offset"), flag("frontalise")),
            relative=flag("relative"),
            source_face=face,
            token=token,
        )

    def to_tensors(self) -> dict[str, np.ndarray]:
        """The decoder input tensors (batch axis 1) this request carries; controls are not tensors
        on the client side but the request's sequence flags."""
        out: dict[str, np.ndarray] = {}
        if self.source_image is not None:
            out["source_image"] = np.ascontiguousarray(self.source_image, np.float32)
        if self.source_face is not None:
            face = self.source_face
            out.update(zip(FACE_NAMES, (x[None] for x in (face.points, face.to_image, face.code)), strict=True))
        if self.motion is not None:
            out.update(
                zip(
                    MOTION_NAMES,
                    (np.ascontiguousarray(getattr(self.motion, n), np.float32) for n in MOTION_NAMES),
                    strict=True,
                )
            )
            if self.motion.face is not None:
                out["face"] = np.ascontiguousarray(self.motion.face, np.float32)
        if self.view is not None:
            override = [np.nan if v is None else v for v in self.view.override]
            out["view_override"] = np.array([override], np.float32)
            out["view_offset"] = np.array([self.view.offset], np.float32)
            out["frontalise"] = np.array([[self.view.frontalise]])
        if self.relative:
            out["relative"] = np.array([[True]])
        return out


# rank of each request tensor, batch axis included (the Triton configs fix the dims; in-process
# callers and fuzzed inputs get the same check)
_RANKS = {"source_image": 4, "rotation": 2, "translation": 2, "expression": 3, "face": 2, "source_face_points": 3,
          "source_face_map": 3, "source_face_code": 2, "view_override": 2, "view_offset": 2, "frontalise": 2,
          "relative": 2}
_NAN_MEANS_KEEP = {"view_override"}


def _checked(tensors: dict[str, np.ndarray | None]) -> dict[str, np.ndarray | None]:
    if tensors.get("CORRID") is None or np.asarray(tensors["CORRID"]).size == 0:
        raise SessionError("request without a correlation id")
    for name, value in tensors.items():
        if value is None:
            continue
        array = np.asarray(value)
        rank = _RANKS.get(name)
        if array.size == 0 or (rank is not None and array.ndim != rank):
            raise SessionError(f"{name}: expected {rank or 'a'}-dimensional non-empty tensor, got shape {array.shape}")
        if array.dtype.kind == "f" and not np.isfinite(array[~np.isnan(array)] if name in _NAN_MEANS_KEEP
                                                       else array).all():
            raise SessionError(f"{name}: values must be finite")
    return tensors


def view_edit(override: np.ndarray | None, offset: np.ndarray | None, frontalise: bool) -> ViewEdit | None:
    """ViewEdit from the decoder's view tensors ((1, 3) degrees; NaN in `override` keeps the angle)."""
    if override is None and offset is None and not frontalise:
        return None
    fixed = (
        (None, None, None)
        if override is None
        else tuple(None if math.isnan(v) else float(v) for v in np.asarray(override, np.float64).reshape(3))
    )
    delta = (0.0, 0.0, 0.0) if offset is None else tuple(float(v) for v in np.asarray(offset).reshape(3))
    return ViewEdit(override=fixed, offset=delta, frontalise=frontalise)


class HostArrays:
    """Where sessions keep their source image and f_s on CPU: numpy arrays in this process. (The GPU
    decoder passes `serving.bls.DeviceArrays`, same two methods, holding CUDA tensors instead.)"""

    @staticmethod
    def place(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array, np.float32)

    @staticmethod
    def concat(parts: list) -> np.ndarray:
        return parts[0] if len(parts) == 1 else np.concatenate(parts)  # one call's frame: no 2 MiB copy of f_s


@dataclass
class Session:
    receiver: Receiver
    last_seen: float
    token: str | None = None  # bound at START; every later request must carry it


class SessionStore:
    """Live call sessions of one decoder instance, with a cap and idle eviction.

    Triton's sequence scheduler drops an idle sequence without telling the model, so the store
    evicts by its own timestamps (swept on every `decode`).

    A session belongs to whoever started it, not to whoever knows its correlation id: START binds the
    request's token (`FrameRequest.token`, the `session_token` request parameter on the server), and
    every later request of the session, END included, must carry the same token or is refused without
    touching the session. START on a live id is refused (a call cannot be taken over). With
    `require_token` (the served decoder) a START without a token of at least 16 characters is refused;
    in-process receivers run without tokens. `seconds` adds up the time of each stage
    (`STAGES`) and `frames` the frames rendered, for the profiler and the server's metrics.
    """

    STAGES = ("source", "keypoints", "expression_flow", "warp")

    def __init__(
        self,
        networks: Networks,
        *,
        max_sessions: int,
        idle_s: float,
        arrays=None,
        clock: Callable[[], float] = time.monotonic,
        require_token: bool = False,
    ):
        self.networks, self.max_sessions, self.idle_s, self.clock = networks, max_sessions, idle_s, clock
        self.require_token = require_token
        self.arrays = arrays or HostArrays()
        self.sessions: dict[int, Session] = {}
        self.seconds: collections.Counter[str] = collections.Counter()
        self.frames = 0

    def __len__(self) -> int:
        return len(self.sessions)

    def evict_idle(self) -> list[int]:
        now = self.clock()
        expired = [sid for sid, s in self.sessions.items() if now - s.last_seen > self.idle_s]
        for sid in expired:
            del self.sessions[sid]
            log.info("session %d evicted after %.0f s idle", sid, self.idle_s)
        return expired

    def decode(self, requests: list[FrameRequest | Exception]) -> list[np.ndarray | Exception]:
        """One output frame (1, 3, S, S) or the error, per request, in order. Requests are applied to
        their sessions in order, then all frames are rendered together."""
        self.evict_idle()
        results: list[np.ndarray | Exception | None] = list(requests)
        feeds: dict[int, dict[str, np.ndarray]] = {}
        for i, req in enumerate(requests):
            if isinstance(req, Exception):
                continue
            owner = False  # END frees the session only for its owner
            try:
                owner = self._authorise(req)
                feeds[i] = self._prepare(req)
            except (SessionError, ValueError) as err:  # ValueError: e.g. a view angle out of range
                results[i] = SessionError(f"session {req.session_id}: {err}")
            except Exception as err:  # e.g. a failed BLS request: this request fails, the batch goes on
                log.exception("session %d: request failed", req.session_id)
                results[i] = RuntimeError(f"session {req.session_id}: {err}")
            finally:
                if req.end and owner:
                    self.sessions.pop(req.session_id, None)
        if feeds:
            start = time.perf_counter()
            try:
                frames = self._render(list(feeds.values()))
                self.frames += len(frames)
            except Exception as err:  # the whole batch failed to render: every frame in it reports it
                frames = [RuntimeError(f"warp_decoder failed: {err}")] * len(feeds)
            self.seconds["warp"] += time.perf_counter() - start
            for i, frame in zip(feeds, frames, strict=True):
                results[i] = frame
        return results  # type: ignore[return-value]

    def _authorise(self, req: FrameRequest) -> bool:
        """Whether `req` may act on its session (raises SessionError if not): a START needs a free id
        (and a token when required), any other request the token its session was started with."""
        if req.start:
            if req.session_id in self.sessions:
                raise SessionError("a live call holds this session id; START refused (a call cannot be taken "
                                   "over: end it first, or start with another id)")
            if self.require_token and (not isinstance(req.token, str) or len(req.token) < MIN_TOKEN_CHARS):
                raise SessionError(f"START needs a session token of at least {MIN_TOKEN_CHARS} characters "
                                   f"(request parameter {TOKEN_PARAMETER!r})")
            return True
        session = self.sessions.get(req.session_id)
        if session is None:
            return False  # _prepare says why
        if not hmac.compare_digest((session.token or "").encode(), (req.token or "").encode()):
            raise SessionError("wrong or missing session token: this session belongs to another client")
        return True

    def _prepare(self, req: FrameRequest) -> dict[str, np.ndarray]:
        """Update the session from the request; warp_decoder feeds (batch 1) of its frame."""
        if not req.ready:
            raise SessionError("inactive batch slot (READY=0)")
        motion = req.motion
        start = time.perf_counter()
        if req.start:
            session, motion = self._start(req)
        else:
            session = self.sessions.get(req.session_id)
            if session is None:
                raise SessionError(
                    "unknown session: never started, already ended, refused, or expired after "
                    f"{self.idle_s:g} s idle; send START with source_image"
                )
            if req.source_image is not None:  # a new source mid-call (keyframe refresh)
                source = self.arrays.place(req.source_image)
                motion = motion if motion is not None else self._estimate(source)
                session.receiver.set_source(source, motion, req.source_face)
        session.last_seen = self.clock()
        rx = session.receiver
        now = time.perf_counter()
        self.seconds["source"] += now - start
        if motion is not None:
            kp_driving = rx.driving_keypoints(motion, req.view, req.relative)
            self.seconds["keypoints"] += time.perf_counter() - now
            now = time.perf_counter()
            flow = rx.expression_flow(motion, req.relative)
            self.seconds["expression_flow"] += time.perf_counter() - now
        elif req.end:  # END alone (an aborted call): the frame is the source at its own pose
            kp_driving = rx.kp_source
            flow = zero_flow(1, flow_size(rx.source_image.shape[-1]))
        else:
            raise SessionError("frame carries no motion (rotation, translation, expression)")
        return {
            "source_image": rx.source_image,
            "source_features": rx.features,
            "kp_source": rx.kp_source,
            "kp_driving": kp_driving.astype(np.float32),
            "expression_flow": self.arrays.place(flow),
        }

    def _start(self, req: FrameRequest) -> tuple[Session, MotionBatch]:
        """A new session from START (`_authorise` refused a live id); START renders the source at its own
        motion and binds the request's token."""
        if req.source_image is None:
            raise SessionError("START needs source_image (the call's source frame)")
        if len(self.sessions) >= self.max_sessions:
            raise SessionError(
                f"refused: this decoder holds its maximum of {self.max_sessions} live sessions; "
                "end a call or retry later"
            )
        source = self.arrays.place(req.source_image)
        motion = req.motion if req.motion is not None else self._estimate(source)
        receiver = Receiver(self.networks)
        receiver.set_source(source, motion, req.source_face)
        self.sessions[req.session_id] = Session(receiver, self.clock(), req.token)
        return self.sessions[req.session_id], motion

    def _estimate(self, image) -> MotionBatch:
        out = self.networks("motion_encoder", {"image": image})
        return MotionBatch(out["rotation"], out["translation"], out["expression"])

    def _render(self, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        names = io_spec.WARP_DECODER.input_names
        batch = {n: self.arrays.concat([f[n] for f in feeds]) for n in names}
        images = self.networks("warp_decoder", batch)["output_image"]
        return [images[i : i + 1] for i in range(len(feeds))]
