"""Rate control: one global quantiser scale index, adapted from measured packet sizes.

An integral controller on the relative rate error: after every MOTION packet,
q ← clamp(q + gain · (bits / target_bits − 1), q_min, q_max), and the next packet uses
round(q). At equilibrium the arithmetic mean of packet sizes equals the target, intra
packets included; the clamp bounds the scale (and prevents wind-up) where the target is
infeasible. KEYFRAME bytes are left out: their timing is a policy decision outside this
loop, and `StreamStats` reports them separately.
"""

from __future__ import annotations

from .quant import QSCALE_MAX, QSCALE_MIN, QSCALE_UNITY

DEFAULT_GAIN = 2.0  # qscale steps per unit of relative error, per frame (loop gain ≈ 0.06: overdamped)


class RateController:
    """Holds the quantiser scale index of a stream aiming at `target_kbps` at `fps`."""

    def __init__(self, target_kbps: float, fps: float, *, qscale_min: int = QSCALE_MIN,
                 qscale_max: int = QSCALE_MAX, initial: int = QSCALE_UNITY, gain: float = DEFAULT_GAIN) -> None:
        if not (target_kbps > 0 and fps > 0 and QSCALE_MIN <= qscale_min <= qscale_max <= QSCALE_MAX):
            raise ValueError(f"bad rate control settings: target_kbps={target_kbps}, fps={fps}, "
                             f"qscale range [{qscale_min}, {qscale_max}]")
        self.target_bits = 1000.0 * target_kbps / fps  # per frame
        self._bounds = (float(qscale_min), float(qscale_max))
        self._q = min(max(float(initial), self._bounds[0]), self._bounds[1])
        self._gain = gain

    @property
    def qscale(self) -> int:
        """Quantiser scale index for the next packet."""
        return int(round(self._q))

    @property
    def saturated(self) -> bool:
        """True while the scale sits at a bound, i.e. the target is (currently) not reachable."""
        return self._q in self._bounds

    def update(self, packet_bits: int) -> None:
        """Account for one sent MOTION packet of `packet_bits` bits."""
        self._q += self._gain * (packet_bits / self.target_bits - 1.0)
        self._q = min(max(self._q, self._bounds[0]), self._bounds[1])
