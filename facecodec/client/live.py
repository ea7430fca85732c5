"""What keeps a live call's latency bounded: the receiver renders only the newest motion when it
falls behind, and the sender lowers its frame rate when the receiver says so.

Every frame's motion stands on its own given the call's source, so a frame that waited while the
decoder was busy is worth nothing once a newer one has arrived: `RenderQueue` keeps keyframes (they
carry the source and must all be applied) and, in live mode, only the newest other frame; the ones
it replaces are dropped. The receiver reports what it received, delivered and dropped
(`ReceiverReport`, a few times a second over the link's return path); `RateAdapter` turns those
reports into the sender's frame rate: cut to what the receiver delivers when it drops, raised a
step at a time while it keeps up.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from ..bitstream import DecodedFrame


class RenderQueue:
    """Decoded frames waiting for the decoder. `live`: adding a frame drops every waiting
    non-keyframe (returned by `add`); otherwise every frame waits its turn (offline decode)."""

    def __init__(self, live: bool):
        self.live = live
        self.frames: collections.deque[DecodedFrame] = collections.deque()

    def add(self, frame: DecodedFrame) -> list[DecodedFrame]:
        stale: list[DecodedFrame] = []
        if self.live:
            stale = [f for f in self.frames if f.keyframe is None]
            self.frames = collections.deque(f for f in self.frames if f.keyframe is not None)
        self.frames.append(frame)
        return stale

    def pop(self) -> DecodedFrame:
        return self.frames.popleft()

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class ReceiverReport:
    """What the receiver did over the last `interval_s`: frames received from the link, rendered and
    shown (delivered), and skipped because newer motion had arrived (dropped)."""

    interval_s: float
    received: int
    delivered: int
    dropped: int

    @property
    def behind(self) -> bool:
        return self.dropped > 0

    @property
    def delivered_fps(self) -> float:
        return self.delivered / self.interval_s if self.interval_s > 0 else 0.0


class RateAdapter:
    """The sender's frame rate from the receiver's reports; `take()` per captured frame says
    whether to send it.

    A report with drops above `tolerance` of the received frames sets the rate to `headroom` × the
    rate the receiver delivered (never below `min_fps`); a report without drops raises it by
    `step_fps`, up to the capture rate. The call's first report is a warm-up: its drops come from the
    START and the first renders, and cutting the rate on them kept the demo's call near 8 frames/s for
    its whole 4 s (11–18 with the warm-up, docs/benchmarks.md). Frames are taken evenly (a credit per
    captured frame).
    """

    def __init__(self, capture_fps: float, *, min_fps: float = 5.0, step_fps: float = 1.0,
                 headroom: float = 0.9, tolerance: float = 0.05):
        if not 0 < min_fps <= capture_fps:
            raise ValueError(f"need 0 < min_fps <= capture_fps, got {min_fps}, {capture_fps}")
        self.capture_fps, self.min_fps, self.step_fps = capture_fps, min_fps, step_fps
        self.headroom, self.tolerance = headroom, tolerance
        self.fps = capture_fps
        self._credit = 1.0  # the first captured frame is always sent
        self.history: list[tuple[ReceiverReport, float]] = []  # each report and the rate it set

    def report(self, report: ReceiverReport) -> None:
        if not self.history and report.dropped:  # the warm-up: a one-off, not the receiver's rate
            self.history.append((report, self.fps))
            return
        if report.received and report.dropped > self.tolerance * report.received:
            self.fps = max(self.min_fps, min(self.fps, self.headroom * report.delivered_fps))
        elif not report.dropped:
            self.fps = min(self.capture_fps, self.fps + self.step_fps)
        self.history.append((report, self.fps))

    def take(self) -> bool:
        if self._credit >= 1.0:
            self._credit -= 1.0
            taken = True
        else:
            taken = False
        self._credit = min(self._credit + self.fps / self.capture_fps, 1.0 + self.fps / self.capture_fps)
        return taken
