"""A call that outlives its server: `ReconnectingSession` re-opens the decoder session elsewhere.

A call's session (the source's f_s) lives in one Triton pod. When that pod goes away mid-call
(SIGKILL after its drain window, a node lost), the gRPC stream fails; the session then opens a new
stream on the next server (the same Kubernetes Service address reaches another pod; a single URL
is the same server once it is back), re-sends the current source keyframe as START of a fresh
session (new id, new token), and the call goes on from the next packet. Frames that were in
flight on the dead stream fail with `SessionLost`: they are the gap, which `gaps` measures. A
server that refuses the call (draining: "Server is stopping"; full: "refused") is skipped the same
way. Retries back off exponentially with jitter, up to `Backoff.give_up_s`.

Same interface as `DecoderSession` (send → Future of the frame, session_id, started, broken, close).
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace

from ..codec.session import FrameRequest
from .remote import ClientError, DecoderSession
from .tls import ClientTls

log = logging.getLogger(__name__)
# a server that will not take the call now, though another may: draining, full, unreachable
RETRYABLE = (
    "Server is stopping", "Server exiting", "stopped accepting", "refused:", "cannot reach", "failed to connect",
    "Socket closed", "unavailable", "UNAVAILABLE", "stream to", "Exceeds maximum queue size",
)


class SessionLost(ClientError):
    """A frame lost with its server (in flight on a stream that died); the call went on elsewhere."""


@dataclass(frozen=True)
class Backoff:
    """Waits between tries: first_s, doubling up to max_s, ±jitter; give up after give_up_s."""

    first_s: float = 0.05
    max_s: float = 1.0
    jitter: float = 0.2
    give_up_s: float = 30.0

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield delay * (1 + self.jitter * (2 * random.random() - 1))
            delay = min(2 * delay, self.max_s)


@dataclass(frozen=True)
class Reconnect:
    """One move of the call to another server."""

    at_request: int  # requests of the call sent before the stream failed
    failed_url: str
    url: str
    seconds: float  # from the failure being noticed to the new server's START answered
    tries: int


@dataclass(frozen=True)
class Gap:
    """A run of lost frames: `frames` frames from sequence number `first`, and the time between the
    last frame delivered before it and the first one after it."""

    first: int
    frames: int
    ms: float


def gaps(arrived: dict[int, float], lost: Sequence[int]) -> list[Gap]:
    """The gaps of a call from each delivered frame's arrival time (monotonic s, by sequence number)
    and the lost frames' sequence numbers."""
    out = []
    lost = sorted(lost)
    i = 0
    while i < len(lost):
        j = i
        while j + 1 < len(lost) and lost[j + 1] == lost[j] + 1:
            j += 1
        before = [arrived[n] for n in arrived if n < lost[i]]
        after = [arrived[n] for n in arrived if n > lost[j]]
        ms = 1e3 * (min(after) - max(before)) if before and after else float("nan")
        out.append(Gap(lost[i], j - i + 1, ms))
        i = j + 1
    return out


class ReconnectingSession:
    """One call over `urls` (tried in order; a Kubernetes Service is one URL that reaches any ready
    pod). See the module docstring."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        session_id: int | None = None,
        timeout: float | None = 60.0,
        window: int = 8,
        verbose: bool = False,
        backoff: Backoff = Backoff(),
        tls: ClientTls | None = None,
    ):
        if not urls:
            raise ValueError("no server URL")
        self.urls, self.timeout, self.window, self.verbose, self.backoff = list(urls), timeout, window, verbose, backoff
        self.tls = tls
        self._index = 0
        self._session: DecoderSession | None = None
        self._source: FrameRequest | None = None  # the current source as a START request
        self._requests = 0
        self._lock = threading.RLock()
        self._gave_up: str | None = None
        self._tries = 0
        self.reconnects: list[Reconnect] = []
        # the call's id: its first session's CORRID. Every re-opening is a fresh session with a fresh id
        # and token (the old session may still be live where the stream broke: its id is taken)
        self.session_id = session_id or secrets.randbits(62) + 1
        self.started = self.ended = False

    def __enter__(self) -> "ReconnectingSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.urls[self._index]

    @property
    def broken(self) -> bool:
        """True once the call gave up (no server took it within the backoff's limit)."""
        return self._gave_up is not None

    @property
    def last_request_id(self) -> str:
        """The id of the latest request sent (Triton's trace names it), "" before any."""
        return "" if self._session is None else self._session.last_request_id

    def send(self, frame: FrameRequest, parameters: dict[str, int | str | bool] | None = None) -> Future:
        """Queue one request of the call; a START (and a reconnection) waits for its server's answer.
        `parameters`: Triton request parameters, as `DecoderSession.send`."""
        frame = replace(frame, session_id=self.session_id)
        with self._lock:
            if self._gave_up:
                raise ClientError(self._gave_up)
            if frame.source_image is not None:
                self._source = replace(frame, start=True, end=False, view=None, relative=False)
            if frame.start:
                return self._open(frame)
            if self._session is None:
                raise ClientError(f"call {self.session_id}: the first request must be START")
            if self._session.broken:
                self._reconnect()
            session = self._session
            try:
                inner = session.send(frame, parameters=parameters)
            except ClientError:
                if not session.broken:
                    raise
                self._reconnect()
                session = self._session
                inner = session.send(frame, parameters=parameters)
            self._requests += 1
        self.ended |= frame.end
        outer: Future = Future()
        inner.add_done_callback(lambda done: self._settle(outer, done, session))
        return outer

    def _settle(self, outer: Future, inner: Future, session: DecoderSession) -> None:
        error = inner.exception()
        if error is None:
            outer.set_result(inner.result())
        elif session.broken:  # the stream died: this frame is part of the gap
            outer.set_exception(SessionLost(f"call {self.session_id}: frame lost with {session.url}: {error}"))
        else:
            outer.set_exception(error)

    def _open(self, start: FrameRequest, *, first_index: int | None = None) -> Future:
        """A session on the first server, from `first_index` on, that answers `start`; its frame."""
        deadline = time.monotonic() + self.backoff.give_up_s
        delays = self.backoff.delays()
        index = self._index if first_index is None else first_index
        tries, errors = 0, []
        while True:
            for _ in range(len(self.urls)):
                url = self.urls[index % len(self.urls)]
                tries += 1
                try:
                    session = DecoderSession(url, session_id=None if self._session else self.session_id,
                                             timeout=self.timeout, window=self.window, verbose=self.verbose,
                                             tls=self.tls)
                except ClientError as err:
                    errors.append(str(err))
                else:
                    try:
                        frame = session.send(start).result(self.timeout)
                    except ClientError as err:
                        session.close()
                        if not _retryable(err):
                            raise
                        errors.append(str(err))
                    else:
                        self._session, self._index = session, index % len(self.urls)
                        self.started, self._tries = True, tries
                        self._requests += 1
                        done: Future = Future()
                        done.set_result(frame)
                        return done
                log.info("call %d: %s did not take the call (%s)", self.session_id, url, errors[-1])
                index += 1
            if time.monotonic() >= deadline:
                self._gave_up = f"call {self.session_id}: no server took the call in {self.backoff.give_up_s:g} s " \
                                f"({tries} tries); last: {errors[-1] if errors else '-'}"
                raise ClientError(self._gave_up)
            time.sleep(min(next(delays), max(deadline - time.monotonic(), 0.0)))

    def _reconnect(self) -> None:
        """The current stream died: re-send the source on the next server, drop the dead session."""
        failed, failed_url = self._session, self.url
        at, noticed = self._requests, time.monotonic()
        if self._source is None:
            raise ClientError(f"call {self.session_id}: stream failed before any source was sent")
        log.warning("call %d: lost %s after %d requests; re-opening elsewhere", self.session_id, failed_url, at)
        self._open(self._source, first_index=self._index + 1)
        self.reconnects.append(Reconnect(at, failed_url, self.url, time.monotonic() - noticed, self._tries))
        failed.close()

    def close(self) -> None:
        """END the call if it was left open (on the server it is on), close the stream."""
        with self._lock:
            if self._session is not None:
                self._session.close()


def _retryable(err: Exception) -> bool:
    return any(marker in str(err) for marker in RETRYABLE)
