"""Rate–distortion curve arithmetic: monotone curves, "rate to match" and Bjøntegaard delta rate.

A curve is a list of (kbps, quality) points. Quality is oriented by the metric (PSNR and SSIM: higher
is better; LPIPS: lower is better); internally every curve is turned into "score" = ±quality, so a
better point always has a higher score. All interpolation is done in log10(rate), the convention
of Bjøntegaard (VCEG-M33) and of the codec-comparison literature.

- `monotone_curve`: the lower-right hull of a point cloud — sorted by rate, each point strictly
  better than every cheaper one (a point that costs more but is no better is dominated and dropped).
- `rate_to_match`: the rate at which a curve reaches a given quality, linear in log-rate between
  the two bracketing points; "not reached" when the curve never gets that good, "never this bad"
  when even its cheapest point is better (no extrapolation either way).
- `bd_rate`: mean log-rate difference of two curves over their OVERLAPPING quality range, each
  curve interpolated by a monotone piecewise-cubic Hermite (PCHIP, Fritsch–Carlson; the variant
  JVET's CTC spreadsheets use). No overlap → no number, and the reason says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

Point = tuple[float, float]  # (kbps, quality)


class MatchStatus(str, Enum):
    OK = "ok"
    NOT_REACHED = "not reached"  # the curve's best point is still worse than the target
    NEVER_THIS_BAD = "never this bad"  # the curve's cheapest point is already better than the target


@dataclass(frozen=True)
class Match:
    """Rate a curve needs for a target quality; `kbps` is None unless status is OK, `bound` is the
    curve's rate limit that was hit (its highest rate if NOT_REACHED, its lowest if NEVER_THIS_BAD)."""

    status: MatchStatus
    kbps: float | None = None
    bound: float | None = None

    def describe(self, reference_kbps: float | None = None) -> str:
        """'12.3 kbps (2.1×)', 'not reached (> 410 kbps)' or 'never this bad (< 9.8 kbps)'."""
        if self.status is MatchStatus.OK:
            ratio = f" ({self.kbps / reference_kbps:.2g}×)" if reference_kbps else ""
            return f"{self.kbps:.3g} kbps{ratio}"
        sign = ">" if self.status is MatchStatus.NOT_REACHED else "<"
        ratio = f", {sign} {self.bound / reference_kbps:.2g}×" if reference_kbps else ""
        return f"{self.status.value} ({sign} {self.bound:.3g} kbps{ratio})"


@dataclass(frozen=True)
class BdResult:
    """Bjøntegaard delta rate of a test curve against an anchor curve.

    percent: mean rate change of the test vs the anchor at equal quality (−60 means the test needs
    60 % fewer bits); None with `reason` when the quality ranges do not overlap.
    """

    percent: float | None
    overlap: tuple[float, float] | None = None  # quality range (metric units) the mean is taken over
    reason: str = ""

    @property
    def anchor_over_test(self) -> float | None:
        """How many times the anchor's rate the test's rate is, inverted: anchor kbps / test kbps."""
        return None if self.percent is None else 1.0 / (1.0 + self.percent / 100.0)


def _score(quality: float, higher_is_better: bool) -> float:
    return quality if higher_is_better else -quality


def monotone_curve(points: Iterable[Point], higher_is_better: bool = True) -> list[Point]:
    """Non-dominated points sorted by rate: strictly increasing rate AND strictly better quality."""
    usable = [(float(r), float(q)) for r, q in points if r > 0 and math.isfinite(r) and math.isfinite(q)]
    usable.sort(key=lambda p: (p[0], -_score(p[1], higher_is_better)))
    hull: list[Point] = []
    for rate, quality in usable:
        if not hull or _score(quality, higher_is_better) > _score(hull[-1][1], higher_is_better):
            if hull and rate == hull[-1][0]:
                hull.pop()
            hull.append((rate, quality))
    return hull


def rate_to_match(points: Iterable[Point], quality: float, higher_is_better: bool = True) -> Match:
    """Rate at which the curve through `points` reaches `quality` (interpolated in log10 rate)."""
    curve = monotone_curve(points, higher_is_better)
    if not curve:
        raise ValueError("rate_to_match needs at least one point with a positive rate and finite quality")
    target = _score(quality, higher_is_better)
    scores = [_score(q, higher_is_better) for _, q in curve]
    if target > scores[-1]:
        return Match(MatchStatus.NOT_REACHED, bound=curve[-1][0])
    if target < scores[0]:
        return Match(MatchStatus.NEVER_THIS_BAD, bound=curve[0][0])
    for (r0, _), (r1, _), s0, s1 in zip(curve, curve[1:], scores, scores[1:]):
        if s0 <= target <= s1:
            w = (target - s0) / (s1 - s0)
            return Match(MatchStatus.OK, kbps=10 ** ((1 - w) * math.log10(r0) + w * math.log10(r1)))
    return Match(MatchStatus.OK, kbps=curve[0][0])  # single-point curve hit exactly


def pchip(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Monotone piecewise-cubic Hermite interpolation (Fritsch–Carlson) of y(x), x strictly
    increasing, evaluated at `at` (inside [x0, xn]); linear for two points."""
    x, y, at = (np.asarray(a, np.float64) for a in (x, y, at))
    h, delta = np.diff(x), np.diff(y) / np.diff(x)
    d = np.zeros_like(y)
    if len(x) == 2:
        d[:] = delta[0]
    else:
        for k in range(1, len(x) - 1):  # harmonic mean of neighbouring slopes, 0 at extrema
            if delta[k - 1] * delta[k] > 0:
                w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
                d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
        d[0], d[-1] = _end_slope(h[0], h[1], delta[0], delta[1]), _end_slope(h[-1], h[-2], delta[-1], delta[-2])
    k = np.clip(np.searchsorted(x, at, side="right") - 1, 0, len(x) - 2)
    t = (at - x[k]) / h[k]
    h00, h10, h01, h11 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t, -2 * t**3 + 3 * t**2, t**3 - t**2
    return h00 * y[k] + h10 * h[k] * d[k] + h01 * y[k + 1] + h11 * h[k] * d[k + 1]


def _end_slope(h0: float, h1: float, d0: float, d1: float) -> float:
    """Three-point end slope, limited to keep the interpolant monotone (as scipy's PchipInterpolator)."""
    slope = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if np.sign(slope) != np.sign(d0):
        return 0.0
    if np.sign(d0) != np.sign(d1) and abs(slope) > abs(3 * d0):
        return 3 * d0
    return slope


def bd_rate(anchor: Sequence[Point], test: Sequence[Point], higher_is_better: bool = True,
            samples: int = 1000) -> BdResult:
    """Bjøntegaard delta rate (%) of `test` against `anchor` over their overlapping quality range."""
    curves = [monotone_curve(c, higher_is_better) for c in (anchor, test)]
    if min(len(c) for c in curves) < 2:
        return BdResult(None, reason="a curve has fewer than two distinct points")
    logs, scores = [], []
    for curve in curves:
        logs.append(np.log10([r for r, _ in curve]))
        scores.append(np.array([_score(q, higher_is_better) for _, q in curve]))
    low, high = max(s[0] for s in scores), min(s[-1] for s in scores)
    if not low < high:
        anchor_range, test_range = ("{:.3g}…{:.3g}".format(*sorted(_unscore(v, higher_is_better) for v in (a, b)))
                                    for a, b in ((s[0], s[-1]) for s in scores))
        return BdResult(None, reason=f"no overlap (anchor {anchor_range}, test {test_range})")
    grid = np.linspace(low, high, samples)
    mean_diff = np.mean(pchip(scores[1], logs[1], grid) - pchip(scores[0], logs[0], grid))
    overlap = tuple(sorted((_unscore(low, higher_is_better), _unscore(high, higher_is_better))))
    return BdResult(100.0 * (10**mean_diff - 1.0), overlap=overlap)


def _unscore(score: float, higher_is_better: bool) -> float:
    return score if higher_is_better else -score
