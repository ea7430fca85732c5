"""The evaluation end to end on 10 frames of the sample clip with seeded random lite weights:
report files and keys, face metrics on real frames, free view and motion transfer."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from facecodec.models import FaceVid2Vid
from facecodec.codec.pipeline import TorchNetworks
from facecodec.presets import get_preset
from tests.conftest import SAMPLE_CLIP

# the evaluator fixture runs AlexNet LPIPS only
METRIC_KEYS = {"psnr", "ssim", "lpips_alex", "akd", "aed", "pose_err", "kbps", "motion_kbps"}


@pytest.fixture(scope="module")
def model():
    from facecodec.eval.run import ModelInfo

    torch.manual_seed(0)  # explicitly random: shipped weights, if present, must not change the test
    net = FaceVid2Vid(get_preset("lite")).eval()
    return ModelInfo(TorchNetworks(net), "lite", net.cfg.num_kp, "seeded random weights")


@pytest.fixture(scope="module")
def evaluator():
    from facecodec.eval.compare import Evaluator

    try:
        ev = Evaluator(lpips_nets=("alex",))  # VGG is covered by test_metrics; it is slow on CPU
    except ImportError as err:
        pytest.skip(str(err))
    yield ev
    ev.close()


def test_face_metrics_on_identical_and_shifted_frames(evaluator, sample_frames):
    frames = sample_frames[:1]
    shifted = np.ascontiguousarray(np.pad(frames, ((0, 0), (0, 0), (8, 0), (0, 0)), mode="edge")[:, :, :-8])
    faces, faces_shifted = evaluator.analyse(frames), evaluator.analyse(shifted)
    result = evaluator.compare(frames, faces, {"same": (frames, faces), "moved": (shifted, faces_shifted)})
    same, moved = result["same"], result["moved"]
    assert same["akd"] == pytest.approx([0]) and same["aed"] == pytest.approx([0])
    assert same["pose_err"] == pytest.approx([0])
    assert np.allclose(moved["akd"], 8, atol=2)  # landmarks follow the 8 px shift
    # dlib aligns each face before embedding, so a pure shift may leave the identity distance at 0
    assert (moved["aed"] >= 0).all() and (moved["pose_err"] >= 0).all()
    for name in ("psnr", "ssim"):
        assert (moved[name] < same[name]).all()
    assert (moved["lpips_alex"] > same["lpips_alex"]).all()


def test_eval_writes_report_with_baseline(tmp_path, model, evaluator):
    from facecodec.eval import run
    videos = tmp_path / "videos_in"
    videos.mkdir()
    shutil.copy(SAMPLE_CLIP, videos / SAMPLE_CLIP.name)
    out = tmp_path / "report"
    run.run_eval(model, sorted(videos.iterdir()), out, clips_from="test", max_frames=10, evaluator=evaluator)

    doc = json.loads((out / "metrics.json").read_text())
    assert {"preset", "weights", "clips", "mean", "units"} <= set(doc)
    clip = doc["clips"][0]
    assert clip["frames"] == 10 and clip["faces_found"]["original"] == 10
    for output in ("model", "baseline"):
        assert set(clip[output]) == METRIC_KEYS and set(doc["mean"][output]) == METRIC_KEYS
        assert len(clip["per_frame"][output]["psnr"]) == 10
    assert 0 < clip["motion_kbps"] < clip["kbps"] and clip["keyframe_bytes"] > 1000
    assert doc["mean"]["baseline"]["kbps"] < doc["mean"]["model"]["kbps"]  # baseline: the keyframe only
    # the sample's speaker moves; random weights draw (nearly) the same picture every frame
    st = clip["stability"]
    assert set(st) == set(doc["mean_stability"]) == {"jitter_camera", "jitter_codec", "breathing_codec",
                                                      "breathing_baseline"}
    assert st["jitter_camera"] > 0.3 and 0 <= st["jitter_codec"] < st["jitter_camera"]
    assert st["breathing_baseline"] > 0 and doc["mean_stability"] == st
    # the mouth and eye measure: the repeated source does not move (0, 0); the curves are kept
    assert clip["expression"]["baseline"] == {"mouth_corr": 0, "mouth_amp": 0, "eye_corr": 0, "eye_amp": 0}
    assert set(clip["expression"]["model"]) == set(doc["mean_expression"]["model"])
    assert len(clip["openings"]["original"]["mouth"]) == 10 and len(clip["openings"]["model"]["eye"]) == 10

    report = (out / "report.md").read_text()
    assert "repeat source (baseline)" in report and "| talking_00086_4s | 10 | codec |" in report
    assert doc["keyframe_quality"] == 90 and "WebP keyframe (quality 90)" in report
    jitter_row = f"| talking_00086_4s | {st['jitter_camera']:.2f} | {st['jitter_codec']:.2f} |"
    assert "## Temporal stability" in report and jitter_row in report
    assert "## Mouth and eyes" in report
    for name in ("figures/curves.png", "figures/bars.png", "figures/openings.png", "videos/talking_00086_4s.mp4"):
        assert (out / name).stat().st_size > 1000, name


def test_self_reenact_sends_the_keyframe_at_the_quality_asked(model, sample_frames):
    from facecodec.eval.codec import self_reenact

    runs = {q: self_reenact(model.networks, sample_frames[:2], preset=model.preset, num_kp=model.num_kp,
                            keyframe_quality=q) for q in (60, 100)}
    assert runs[100].keyframe_bytes > 1.5 * runs[60].keyframe_bytes
    error = {q: np.abs(r.keyframe.astype(int) - sample_frames[0]).mean() for q, r in runs.items()}
    assert error[100] < error[60]


def test_freeview_and_transfer(model, evaluator, sample_frames, tmp_path):
    from facecodec.eval.codec import transfer_motion
    from facecodec.eval.freeview import evaluate_freeview, save_grid

    result = evaluate_freeview(model.networks, sample_frames[0], evaluator.landmarker)
    assert result.images.shape == (10, 256, 256, 3) and result.measured.shape == (10, 3)
    doc = result.to_dict()
    assert [v["label"] for v in doc["views"]][:2] == ["frontalised", "yaw -30°"]
    assert save_grid(tmp_path / "grid.png", result).stat().st_size > 10_000

    out = transfer_motion(model.networks, sample_frames[50], sample_frames[:2])
    assert out.shape == (2, 256, 256, 3) and out.dtype == np.uint8


def test_self_reenact_with_refresh_sends_and_uses_later_keyframes(model, sample_frames):
    from facecodec.bitstream import RefreshPolicy
    from facecodec.eval.codec import self_reenact

    frames = sample_frames[:30]
    plain = self_reenact(model.networks, frames, preset="lite", num_kp=model.num_kp)
    # the random net barely moves: near-zero thresholds make the interval decide, a refresh every 10th frame
    eager = RefreshPolicy(max_angle_deg=1e-9, max_shift=1e-9, min_interval_s=0.4)
    refreshed = self_reenact(model.networks, frames, preset="lite", num_kp=model.num_kp, refresh=eager)
    assert (plain.keyframes, refreshed.keyframes) == (1, 3)
    assert refreshed.keyframe_bytes == plain.keyframe_bytes  # the first keyframe: the baseline's cost
    assert refreshed.kbps > plain.kbps  # the refreshes are paid for
    np.testing.assert_array_equal(refreshed.frames[:10], plain.frames[:10])  # same source until frame 10
    assert not np.array_equal(refreshed.frames[10:20], plain.frames[10:20])
