"""Per-frame metrics: exact values on identical and analytic cases; degradations score worse."""

from __future__ import annotations

import numpy as np
import pytest

from facecodec.eval import metrics


@pytest.fixture(scope="module")
def lpips():
    return metrics.Lpips(("alex", "vgg"))


def _blur(frames: np.ndarray) -> np.ndarray:
    """5×5 box blur per channel (edge-replicated)."""
    padded = np.pad(frames.astype(np.float64), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    out = sum(padded[:, i : i + frames.shape[1], j : j + frames.shape[2]] for i in range(5) for j in range(5)) / 25
    return np.round(out).astype(np.uint8)


def _shift(frames: np.ndarray, pixels: int = 8) -> np.ndarray:
    return np.ascontiguousarray(np.pad(frames, ((0, 0), (0, 0), (pixels, 0), (0, 0)), mode="edge")[:, :, :-pixels])


def test_identical_frames_are_perfect(sample_frames, lpips):
    frames = sample_frames[:1]
    assert np.isinf(metrics.psnr(frames, frames)).all()
    assert np.allclose(metrics.ssim(frames, frames), 1.0)
    for values in lpips(frames, frames).values():
        assert np.allclose(values, 0.0, atol=1e-6)


def test_psnr_known_value():
    a = np.zeros((1, 8, 8, 3), np.uint8)
    b = np.full_like(a, 10)  # MSE 100 → 10·log10(255² / 100)
    assert metrics.psnr(a, b)[0] == pytest.approx(10 * np.log10(255**2 / 100))


def test_ssim_of_flat_images_is_the_luminance_term():
    """With σ = 0 everywhere, SSIM = (2 μx μy + C1) / (μx² + μy² + C1)."""
    a, b = np.full((1, 32, 32, 3), 100, np.uint8), np.full((1, 32, 32, 3), 140, np.uint8)
    c1 = (0.01 * 255) ** 2
    # float32 moments: E[x²] − μ² cancels to ~1e-3 of the C2 = 58.5 term
    assert metrics.ssim(a, b)[0] == pytest.approx((2 * 100 * 140 + c1) / (100**2 + 140**2 + c1), rel=1e-4)
    assert metrics.ssim(a, b)[0] == pytest.approx(metrics.ssim(b, a)[0])


def test_ssim_matches_scikit_image(sample_frames):
    """Golden values from skimage.metrics.structural_similarity(channel_axis=2, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255) on sample frames 0, 1 vs 37, 38."""
    values = metrics.ssim(sample_frames[0:2], sample_frames[37:39])
    assert values == pytest.approx([0.4962635, 0.4957197], abs=1e-5)


@pytest.mark.parametrize("degrade", [_shift, _blur], ids=["shift8px", "blur5"])
def test_degraded_frames_score_worse(sample_frames, lpips, degrade):
    frames = sample_frames[:1]
    worse = degrade(frames)
    assert (metrics.psnr(frames, worse) < 40).all()
    assert (metrics.ssim(frames, worse) < 0.95).all()
    for values in lpips(frames, worse).values():
        assert (values > 0.01).all()


def test_lpips_matches_the_wheels_reference_code(sample_frames, lpips):
    """Golden values computed once with stlpips_pytorch's own LPIPS(variant='shift_tolerant')
    (torchvision stubbed out) on frames 0 and 39 of the sample clip."""
    out = lpips(sample_frames[:1], sample_frames[39:40])
    assert out["lpips_alex"][0] == pytest.approx(0.3097373, abs=1e-4)
    assert out["lpips_vgg"][0] == pytest.approx(0.3188949, abs=1e-4)


def test_landmark_pose_and_identity_distances():
    a = np.zeros((2, 478, 2))
    b = a + np.array([3.0, 4.0])
    assert np.allclose(metrics.keypoint_distance(a, b), 5.0)
    assert np.allclose(metrics.pose_error(np.zeros((2, 3)), np.array([[3.0, -3.0, 0.0]] * 2)), 2.0)
    assert np.allclose(metrics.identity_distance(np.zeros((2, 4)), np.ones((1, 4))), 2.0)
    assert np.isnan(metrics.keypoint_distance(a, np.full_like(a, np.nan))).all()


def test_jitter_is_zero_for_steady_motion_and_counts_a_shake():
    steady = np.arange(6, dtype=float)[:, None, None] * np.ones((1, 478, 2))  # 1 px per frame, both axes
    assert metrics.jitter(steady) == 0.0
    shake = np.zeros((6, 478, 2))
    shake[::2, :, 0] = 1.0  # x: 1, 0, 1, 0, …: second difference ±2 every frame
    assert metrics.jitter(shake) == pytest.approx(2.0)
    shake[2] = np.nan  # a frame without a face: the three triplets through it are skipped
    assert metrics.jitter(shake) == pytest.approx(2.0)
    assert np.isnan(metrics.jitter(shake[:2]))


def test_breathing_counts_a_size_swing_not_a_size_offset():
    rng = np.random.default_rng(0)
    face = rng.normal(0, 30, (1, 478, 2)) + 128
    camera = np.repeat(face, 8, axis=0)
    centre = face.mean(axis=1, keepdims=True)
    bigger = centre + 1.2 * (camera - centre)  # 20 % larger throughout: an offset, not breathing
    assert metrics.breathing(bigger, camera) == pytest.approx(0.0, abs=1e-9)
    swing = np.array([1.1, 1 / 1.1] * 4)[:, None, None]  # ±ln 1.1 ≈ ±9.5 % frame to frame
    assert metrics.breathing(centre + swing * (camera - centre), camera) == pytest.approx(100 * np.log(1.1))
    assert metrics.breathing(face, camera) == 0.0  # a frozen frame against a steady face
    assert np.isnan(metrics.breathing(np.full_like(camera, np.nan), camera))


def test_nanmean_skips_missing_frames():
    assert metrics.nanmean(np.array([1.0, np.nan, 3.0])) == 2.0
    assert np.isnan(metrics.nanmean(np.array([np.nan])))
    assert np.isinf(metrics.nanmean(np.array([np.inf, np.inf])))


def test_transfer_share_counts_missing_faces_as_failures():
    from facecodec.eval.run import _fraction_closer

    portrait = np.array([0.1, 0.2, np.nan, 0.5])
    driver = np.array([0.8, 0.9, 0.7, 0.4])
    assert _fraction_closer(portrait, driver) == 0.5
