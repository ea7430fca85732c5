"""The mouth and eye measure of `facecodec eval`: known inputs give known scores."""

from __future__ import annotations

import numpy as np
import pytest

from facecodec.eval.metrics import eye_opening, follows, mouth_opening


def test_a_clip_and_its_copy_follow_perfectly(sample_frames, landmarker):
    landmarks = landmarker.detect(sample_frames[:40])
    for opening in (mouth_opening(landmarks), eye_opening(landmarks)):
        assert np.isfinite(opening).all()
        corr, amp = follows(opening, opening.copy())
        assert corr == pytest.approx(1.0) and amp == pytest.approx(1.0)


def test_a_still_output_scores_zero(sample_frames, landmarker):
    """Repeating the source frame: the decoded opening never moves."""
    original = mouth_opening(landmarker.detect(sample_frames[:40]))
    still = mouth_opening(landmarker.detect(np.repeat(sample_frames[:1], 5, axis=0)))
    assert np.ptp(still) == 0
    assert follows(original, np.full_like(original, still[0])) == (0.0, 0.0)


def test_follows_on_known_signals():
    t = np.linspace(0, 4 * np.pi, 200)
    signal = 0.1 + 0.05 * np.sin(t)
    assert follows(signal, 0.5 * signal + 3) == pytest.approx((1.0, 0.5))
    assert follows(signal, 0.1 - 0.05 * np.sin(t)) == pytest.approx((-1.0, 1.0))
    gappy = signal.copy()
    gappy[::7] = np.nan  # frames without a face are skipped
    assert follows(signal, gappy) == pytest.approx((1.0, 1.0))
    assert np.isnan(follows(np.full(10, 0.2), signal[:10])[0])  # the original must move
    with pytest.raises(ValueError, match="one length"):
        follows(signal, signal[:-1])


def _open_mouth(frame: np.ndarray, landmarks: np.ndarray, pixels: int) -> np.ndarray:
    """Draw an open mouth: the lower lip and jaw moved `pixels` down, the gap filled dark."""
    out = frame.copy()
    y = int(round((landmarks[13, 1] + landmarks[14, 1]) / 2))
    x0, x1 = int(landmarks[61, 0]) - 2, int(landmarks[291, 0]) + 3
    if pixels:
        out[y + pixels:, x0:x1] = frame[y:-pixels, x0:x1]
        out[y:y + pixels, x0 + 3:x1 - 3] = (40, 10, 15)
    return out


def test_a_mouth_drawn_open_raises_the_measure(sample_frames, landmarker):
    frame = sample_frames[0]
    landmarks = landmarker.detect(frame[None])[0]
    drawn = np.stack([_open_mouth(frame, landmarks, k) for k in (0, 3, 6, 9, 12)])
    opening = mouth_opening(landmarker.detect(drawn))
    assert np.isfinite(opening).all()
    assert (np.diff(opening) > 0).all(), opening
    assert opening[-1] - opening[0] > 0.1, opening  # 12 px at an inter-ocular distance of ≈ 60 px
    assert np.ptp(eye_opening(landmarker.detect(drawn))) < 0.02  # the eyes did not change
