"""A simulated network path on loopback: one direction of a link with delay, jitter and loss.

The call's packets (and the receiver's reports back to the sender) cross it in-process, so a call
on one machine sees what a real link does to it: a fixed one-way delay, a random extra delay per
datagram (which can reorder them, as a real path does), and lost datagrams. A datagram marked
`reliable` (the source keyframe: a real sender retransmits it) is never lost. Seeded: the same
settings drop the same datagrams.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkModel:
    """delay_ms: one-way delay; jitter_ms: standard deviation of a normal extra delay (clipped at
    zero); loss: probability that an unreliable datagram is lost."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0 or not 0.0 <= self.loss < 1.0:
            raise ValueError(f"need delay, jitter >= 0 and 0 <= loss < 1, got {self}")

    @property
    def ideal(self) -> bool:
        return self.delay_ms == 0 and self.jitter_ms == 0 and self.loss == 0

    def describe(self) -> str:
        return f"{self.delay_ms:g} ms delay, {self.jitter_ms:g} ms jitter, {100 * self.loss:g} % loss"

    @staticmethod
    def add_arguments(parser) -> None:
        group = parser.add_argument_group("simulated link (loopback)")
        group.add_argument("--link-delay-ms", type=float, default=0.0, help="one-way delay (0)")
        group.add_argument("--link-jitter-ms", type=float, default=0.0, help="std of the extra delay (0)")
        group.add_argument("--link-loss", type=float, default=0.0, help="datagram loss probability (0)")

    @classmethod
    def from_arguments(cls, args) -> "LinkModel":
        return cls(args.link_delay_ms, args.link_jitter_ms, args.link_loss)


class Link:
    """One direction of a simulated path: `send(payload)` now, `deliver(payload, sent_at)` later on
    the link's thread (at once on the caller's thread for an ideal link). `close()` delivers what is
    still under way, then stops."""

    def __init__(self, model: LinkModel, deliver: Callable[[object, float], None], *, name: str = "link",
                 clock: Callable[[], float] = time.monotonic):
        self.model, self.deliver, self.clock = model, deliver, clock
        self.rng = random.Random(model.seed)
        self.sent = self.lost = 0
        self._heap: list[tuple[float, int, float, object]] = []
        self._order = itertools.count()
        self._cv = threading.Condition()
        self._closed = False
        self._thread = None
        if not model.ideal:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def send(self, payload, *, reliable: bool = False) -> bool:
        """False when the datagram is lost."""
        now = self.clock()
        self.sent += 1
        if not reliable and self.model.loss and self.rng.random() < self.model.loss:
            self.lost += 1
            return False
        if self._thread is None:
            self.deliver(payload, now)
            return True
        extra = abs(self.rng.gauss(0.0, self.model.jitter_ms)) if self.model.jitter_ms else 0.0
        due = now + (self.model.delay_ms + extra) / 1e3
        with self._cv:
            heapq.heappush(self._heap, (due, next(self._order), now, payload))
            self._cv.notify()
        return True

    def close(self, timeout: float | None = 10.0) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._closed:
                    self._cv.wait()
                if not self._heap:
                    return
                due, _, sent_at, payload = self._heap[0]
                wait = due - self.clock()
                if wait > 0 and not self._closed:
                    self._cv.wait(wait)
                    continue
                heapq.heappop(self._heap)
            if wait > 0:  # closing: what is under way still arrives, on time
                time.sleep(wait)
            self.deliver(payload, sent_at)
