"""RD arithmetic on synthetic curves: monotone hull, rate to match, Bjøntegaard delta rate."""

import math

import numpy as np
import pytest

from facecodec.rd.curves import MatchStatus, bd_rate, monotone_curve, pchip, rate_to_match

# PSNR-like curve: +6 dB per doubling of the rate
CURVE = [(10.0, 30.0), (20.0, 36.0), (40.0, 42.0), (80.0, 48.0)]


def test_monotone_curve_keeps_only_points_better_than_every_cheaper_one():
    points = [(40, 42), (10, 30), (25, 29), (20, 36), (20, 35), (80, 41)]
    assert monotone_curve(points) == [(10, 30), (20, 36), (40, 42)]
    lpips = [(10, 0.30), (20, 0.20), (30, 0.25), (40, 0.10)]  # lower is better
    assert monotone_curve(lpips, higher_is_better=False) == [(10, 0.30), (20, 0.20), (40, 0.10)]


def test_rate_to_match_interpolates_in_log_rate():
    assert rate_to_match(CURVE, 36.0).kbps == pytest.approx(20.0)
    assert rate_to_match(CURVE, 39.0).kbps == pytest.approx(20 * math.sqrt(2))  # halfway in log2 rate
    lpips = [(10, 0.4), (100, 0.2)]
    assert rate_to_match(lpips, 0.3, higher_is_better=False).kbps == pytest.approx(math.sqrt(10 * 100))


def test_rate_to_match_says_when_the_curve_never_gets_there():
    high = rate_to_match(CURVE, 50.0)
    assert high.status is MatchStatus.NOT_REACHED and high.kbps is None and high.bound == 80.0
    low = rate_to_match(CURVE, 20.0)
    assert low.status is MatchStatus.NEVER_THIS_BAD and low.bound == 10.0
    assert "never this bad" in low.describe(5.0) and "< 2×" in low.describe(5.0)
    assert rate_to_match([(10, 0.1)], 0.3, higher_is_better=False).status is MatchStatus.NEVER_THIS_BAD


def test_bd_rate_of_a_curve_against_itself_is_zero():
    result = bd_rate(CURVE, CURVE)
    assert result.percent == pytest.approx(0.0, abs=1e-9)
    assert result.overlap == (30.0, 48.0) and result.anchor_over_test == pytest.approx(1.0)


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_bd_rate_of_a_rate_scaled_curve_is_the_scale(factor):
    scaled = [(r * factor, q) for r, q in CURVE]
    assert bd_rate(CURVE, scaled).percent == pytest.approx(100 * (factor - 1))
    lower_better = [(r, -q) for r, q in CURVE]
    assert bd_rate(lower_better, [(r * factor, q) for r, q in lower_better], higher_is_better=False).percent == \
        pytest.approx(100 * (factor - 1))


def test_bd_rate_refuses_curves_whose_quality_ranges_do_not_overlap():
    result = bd_rate(CURVE, [(5, 10.0), (8, 12.0)])
    assert result.percent is None and result.reason == "no overlap (anchor 30…48, test 10…12)"
    assert bd_rate(CURVE, [(5, 10.0)]).percent is None


def test_pchip_passes_through_the_points_and_stays_monotone():
    x, y = np.array([0.0, 1.0, 2.0, 5.0]), np.array([0.0, 0.1, 3.0, 3.2])
    np.testing.assert_allclose(pchip(x, y, x), y, atol=1e-12)
    dense = pchip(x, y, np.linspace(0, 5, 501))
    assert np.all(np.diff(dense) >= -1e-12)
