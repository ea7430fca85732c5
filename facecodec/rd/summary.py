"""From measured points to the comparisons the report states: rate to match facecodec's default
operating point, and Bjøntegaard delta rates, per anchor, metric and rate basis.

Two rate bases, because a one-shot codec's keyframe is a one-off cost:
- "clip": everything this clip cost (facecodec's keyframe amortised over these few seconds only;
  the anchors' opening intra frame likewise);
- "call": a long call's rate, where both one-off costs vanish (facecodec: motion packets only;
  anchors: packets after the opening intra frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .curves import BdResult, Match, MatchStatus, Point, bd_rate, monotone_curve, rate_to_match
from .quality import HIGHER_IS_BETTER
from .sweep import FACECODEC, RdPoint

NARROW_FRACTION = 0.1
BASES = {
    "clip": ("kbps", "this clip, everything counted (facecodec keyframe / anchor intra frame amortised over the clip)"),
    "call": ("steady_kbps", "long call (facecodec motion packets only; anchors without their opening intra frame)"),
    "call12": ("call12_kbps", "a 12-s call: the long-call rate + the one-off bytes (keyframe and header / opening "
               "intra frame) over 12 s"),
    "call60": ("call60_kbps", "a 60-s call: the same, one-off bytes over 60 s"),
}


def curve(points: Sequence[RdPoint], codec: str, metric: str, basis: str = "clip") -> list[Point]:
    """All (rate, quality) points of one codec (one clip or the means), unsorted."""
    attr = BASES[basis][0]
    return [(getattr(p, attr), p.quality[metric]) for p in points if p.codec == codec and metric in p.quality]


def hull(points: Sequence[RdPoint], codec: str, metric: str, basis: str = "clip") -> list[Point]:
    return monotone_curve(curve(points, codec, metric, basis), HIGHER_IS_BETTER[metric])


def default_point(points: Sequence[RdPoint]) -> RdPoint:
    found = [p for p in points if p.codec == FACECODEC and p.default]
    if len(found) != 1:
        raise ValueError(f"expected one facecodec default point, found {len(found)}")
    return found[0]


@dataclass(frozen=True)
class MatchRow:
    """Rate an anchor needs for facecodec's default-point quality on one metric and rate basis."""

    anchor: str
    metric: str
    basis: str
    facecodec_kbps: float
    facecodec_quality: float
    match: Match

    @property
    def ratio(self) -> float | None:
        """anchor kbps / facecodec kbps (None unless matched at a positive reference rate)."""
        return None if self.match.kbps is None or not self.facecodec_kbps else self.match.kbps / self.facecodec_kbps

    def to_json(self) -> dict:
        return {"anchor": self.anchor, "metric": self.metric, "basis": self.basis,
                "facecodec_kbps": self.facecodec_kbps, "facecodec_quality": self.facecodec_quality,
                "status": self.match.status.value, "anchor_kbps": self.match.kbps, "bound_kbps": self.match.bound,
                "ratio": self.ratio, "text": self.match.describe(self.facecodec_kbps)}


def match_rows(points: Sequence[RdPoint], anchors: Sequence[str], metrics: Sequence[str],
               bases: Sequence[str] = tuple(BASES), reference: RdPoint | None = None) -> list[MatchRow]:
    """Rows for facecodec's default point, or for another `reference` point (e.g. the keyframe alone)."""
    ref = reference or default_point(points)
    rows = []
    for basis in bases:
        ref_kbps = getattr(ref, BASES[basis][0])
        for metric in metrics:
            for anchor in anchors:
                match = rate_to_match(curve(points, anchor, metric, basis), ref.quality[metric],
                                      HIGHER_IS_BETTER[metric])
                rows.append(MatchRow(anchor, metric, basis, ref_kbps, ref.quality[metric], match))
    return rows


@dataclass(frozen=True)
class BdRow:
    """BD-rate of facecodec (test: all its points' hull) against one anchor."""

    anchor: str
    metric: str
    basis: str
    result: BdResult
    anchor_span: float = 0.0  # width of the anchor's quality range, to flag slivers of overlap

    @property
    def narrow(self) -> bool:
        """The overlap is under NARROW_FRACTION of the anchor's quality range: the mean is over a sliver
        and says little more than a single-point match."""
        o = self.result.overlap
        return o is not None and self.anchor_span > 0 and (o[1] - o[0]) < NARROW_FRACTION * self.anchor_span

    def text(self) -> str:
        r = self.result
        if r.percent is None:
            return f"n/a: {r.reason}".replace(", test ", ", facecodec ")
        flag = " ⚠ narrow overlap" if self.narrow else ""
        return (f"{r.percent:+.1f} % (anchor needs {r.anchor_over_test:.2g}× facecodec's rate; "
                f"over {_range(self.metric, r.overlap)}){flag}")

    def to_json(self) -> dict:
        r = self.result
        return {"anchor": self.anchor, "metric": self.metric, "basis": self.basis, "bd_rate_percent": r.percent,
                "anchor_over_facecodec": r.anchor_over_test, "overlap": r.overlap, "narrow": self.narrow,
                "reason": r.reason, "text": self.text()}


def bd_rows(points: Sequence[RdPoint], anchors: Sequence[str], metrics: Sequence[str],
            bases: Sequence[str] = tuple(BASES)) -> list[BdRow]:
    rows = []
    for basis in bases:
        for metric in metrics:
            for anchor in anchors:
                ref = curve(points, anchor, metric, basis)
                span = max(q for _, q in ref) - min(q for _, q in ref) if ref else 0.0
                result = bd_rate(ref, curve(points, FACECODEC, metric, basis), HIGHER_IS_BETTER[metric])
                rows.append(BdRow(anchor, metric, basis, result, span))
    return rows


def per_clip_ratios(points: Sequence[RdPoint], anchor: str, metric: str, basis: str = "clip") -> dict[str, str]:
    """Per clip: the match of `anchor` to that clip's facecodec default point, as text."""
    out = {}
    for clip in sorted({p.clip for p in points}):
        own = [p for p in points if p.clip == clip]
        row = match_rows(own, [anchor], [metric], [basis])[0]
        out[clip] = row.match.describe(row.facecodec_kbps)
    return out


def headline(rows: Sequence[MatchRow], anchor: str, metric: str, basis: str) -> str:
    """One sentence: how many times facecodec's rate `anchor` needs to match its `metric`."""
    row = next(r for r in rows if (r.anchor, r.metric, r.basis) == (anchor, metric, basis))
    m, ref = row.match, row.facecodec_kbps
    what = f"{anchor} to match facecodec's {metric} ({row.facecodec_quality:.4g} at {ref:.3g} kbps, {basis} rate)"
    if m.status is MatchStatus.OK:
        return f"{what}: {m.kbps:.3g} kbps = **{m.kbps / ref:.2g}×** facecodec's bitrate"
    if m.status is MatchStatus.NEVER_THIS_BAD:
        return (f"{what}: **no match within the anchor's range** — even its cheapest point ({m.bound:.3g} kbps = "
                f"{m.bound / ref:.2g}×) is better, so the bitrate it needs is below {m.bound / ref:.2g}×")
    return (f"{what}: **not reached** — even its richest point ({m.bound:.3g} kbps = {m.bound / ref:.2g}×) "
            f"is worse, so it needs more than {m.bound / ref:.2g}×")


def _range(metric: str, overlap: tuple[float, float] | None) -> str:
    return "–" if overlap is None else f"{metric} {overlap[0]:.4g}…{overlap[1]:.4g}"
