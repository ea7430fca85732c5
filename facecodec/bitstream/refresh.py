"""When the sender refreshes the source keyframe (pure Python; sender side only).

The receiver renders every frame by warping ONE source picture. Within ~15° of head turn and a
small shift of it that works; further out it must invent what the source never showed (the far
cheek, the other ear) and the face distorts. A REFRESH keyframe (`Encoder.request_keyframe`
after the first; the receiver swaps its source on it, `codec.receiver.frame_request`) resets that
distance to zero for the price of one picture (3–20 kB of WebP at 256²), so it is worth sending
only when the head has left the current source's neighbourhood, and not in bursts.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from .motion import Motion


@dataclass(frozen=True)
class RefreshPolicy:
    """Refresh when any head angle differs from the current source's by more than `max_angle_deg`
    (degrees), or the head moved more than `max_shift` (normalised image units: 1 = half the frame)
    in the image plane, and at least `min_interval_s` seconds have passed since the last keyframe."""

    max_angle_deg: float = 15.0
    max_shift: float = 0.15
    min_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not (self.max_angle_deg > 0 and self.max_shift > 0 and self.min_interval_s >= 0):
            raise ValueError(f"refresh thresholds must be positive, got {self}")

    def due(self, source: Motion, current: Motion, seconds_since_source: float) -> bool:
        """Whether frame `current` should carry a new keyframe, given the motion of the current
        source's frame and the seconds since that keyframe."""
        if seconds_since_source < self.min_interval_s:
            return False
        angle = max(abs(current.yaw - source.yaw), abs(current.pitch - source.pitch), abs(current.roll - source.roll))
        shift = math.hypot(float(current.t[0] - source.t[0]), float(current.t[1] - source.t[1]))
        return angle > self.max_angle_deg or shift > self.max_shift

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """--refresh and its thresholds, for every command that encodes."""
        d = RefreshPolicy()
        parser.add_argument("--refresh", action="store_true",
                            help="send a new source keyframe when the head turns or moves far from the current one")
        parser.add_argument("--refresh-angle", type=float, default=d.max_angle_deg, metavar="DEG",
                            help=f"with --refresh: an angle this far from the source's (default {d.max_angle_deg:g})")
        parser.add_argument("--refresh-shift", type=float, default=d.max_shift, metavar="UNITS",
                            help=f"with --refresh: head shift, normalised image units (default {d.max_shift:g})")

    @staticmethod
    def from_arguments(args: argparse.Namespace) -> RefreshPolicy | None:
        return RefreshPolicy(args.refresh_angle, args.refresh_shift) if args.refresh else None
