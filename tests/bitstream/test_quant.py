import numpy as np
import pytest

from facecodec.bitstream import DEFAULT_STEPS, PerField, qscale_factor
from facecodec.bitstream.quant import LIMITS, check_steps, dequantise, quantise


def test_qscale_factor_table_is_exact_and_monotonic():
    assert qscale_factor(0) == 0.125 and qscale_factor(24) == 1.0 and qscale_factor(47) == 7.5
    assert qscale_factor(25) == 1.125 and qscale_factor(32) == 2.0
    factors = [qscale_factor(q) for q in range(48)]
    assert all(b > a for a, b in zip(factors, factors[1:]))
    with pytest.raises(ValueError):
        qscale_factor(48)


def test_expand_follows_the_motion_vector_layout():
    steps = PerField(angle=0.5, t=0.004, exp=0.002).expand(2)
    np.testing.assert_array_equal(steps, [0.5, 0.5, 0.5, 0.004, 0.004, 0.004] + [0.002] * 6)
    with_face = PerField(angle=0.5, t=0.004, exp=0.002, face=0.02).expand(2, 3)
    np.testing.assert_array_equal(with_face, [0.5, 0.5, 0.5, 0.004, 0.004, 0.004] + [0.002] * 6 + [0.02] * 3)


def test_face_coefficients_are_clipped_to_their_own_limit():
    step = DEFAULT_STEPS.expand(1, 2)
    levels = quantise(np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1e9, -1e9]), np.zeros(11), step, 1)
    np.testing.assert_array_equal(levels[-2:], [LIMITS.face / DEFAULT_STEPS.face, -LIMITS.face / DEFAULT_STEPS.face])


def test_quantise_error_is_at_most_half_a_step_and_values_are_clipped():
    rng = np.random.default_rng(1)
    step = DEFAULT_STEPS.expand(15)
    x = rng.normal(scale=0.1, size=51) * np.where(np.arange(51) < 3, 200, 1)
    prediction = rng.normal(scale=0.05, size=51)
    rec = dequantise(quantise(x, prediction, step, 15), prediction, step)
    clipped = np.clip(x, -LIMITS.expand(15), LIMITS.expand(15))
    assert np.all(np.abs(rec - clipped) <= step / 2 * (1 + 1e-12))
    assert quantise(np.full(51, 1e9), np.zeros(51), step, 15)[0] == 360  # 180° / 0.5°


def test_check_steps_rejects_unusable_steps():
    check_steps(DEFAULT_STEPS)
    for bad in (0.0, -1.0, float("nan"), float("inf"), 1e-9):
        with pytest.raises(ValueError, match="step for t"):
            check_steps(PerField(angle=0.5, t=bad, exp=0.004))
