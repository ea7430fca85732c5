"""Report writing from synthetic measurements (no networks, no ffmpeg)."""

import dataclasses
import json
from types import SimpleNamespace

import pytest

from facecodec.rd.curves import MatchStatus
from facecodec.rd.quality import LpipsPlan
from facecodec.rd.report import RdRun, write_report
from facecodec.rd.summary import match_rows
from facecodec.rd.sweep import FACECODEC, KEYFRAME_ONLY, RdPoint, mean_points


def _points(clip: str, shift: float) -> list[RdPoint]:
    pts = [RdPoint(clip, FACECODEC, f"q{q}, kf90", kbps, kbps / 4, kbps, {"psnr": psnr + shift, "lpips_alex": lp},
                   {"stream": 1, "header": 1, "keyframe": 1, "motion": 1}, default=q == 24)
           for q, kbps, psnr, lp in ((16, 30.0, 22.0, 0.20), (24, 25.0, 21.5, 0.21), (47, 22.0, 21.0, 0.23))]
    pts += [RdPoint(clip, "x264-veryslow", f"crf {c}", kbps, kbps * 0.9, kbps + 3,
                    {"psnr": psnr + shift, "lpips_alex": lp}, {"file": 1, "payload": 1, "first_packet": 1})
            for c, kbps, psnr, lp in ((51, 12.0, 24.0, 0.30), (45, 20.0, 27.0, 0.15), (39, 40.0, 30.0, 0.05))]
    pts.append(RdPoint(clip, KEYFRAME_ONLY, "kf90", 20.0, 0.0, 20.0, {"psnr": 20.0 + shift, "lpips_alex": 0.25}))
    return pts


def test_mean_points_average_each_setting_over_the_clips():
    means = mean_points(_points("a", 0.0) + _points("b", 2.0))
    default = next(p for p in means if p.default)
    assert default.clip == "mean" and default.quality["psnr"] == pytest.approx(22.5) and default.kbps == 25.0


def test_match_rows_state_ratios_and_unreachable_targets():
    rows = {(r.metric, r.basis): r for r in match_rows(_points("a", 0.0), ["x264-veryslow"], ["psnr", "lpips_alex"])}
    assert rows[("psnr", "clip")].match.status is MatchStatus.NEVER_THIS_BAD  # x264 at CRF 51 is already better
    lpips = rows[("lpips_alex", "clip")]
    assert lpips.match.status is MatchStatus.OK and 12.0 < lpips.match.kbps < 20.0
    assert lpips.ratio == pytest.approx(lpips.match.kbps / 25.0)


def test_write_report_produces_json_plots_and_markdown(tmp_path):
    run = RdRun("facecodec rd --test", "lite", {"kind": "random (seed 0)", "path": None, "sha256": None},
                [{"name": c, "path": f"{c}.mp4", "frames": 100, "fps": 25.0, "seconds": 4.0} for c in "ab"],
                LpipsPlan((("alex", 4),)), ["x264-veryslow"], _points("a", 0.0) + _points("b", 1.0))
    paths = write_report(run, tmp_path / "report")
    data = json.loads(paths["json"].read_text())
    assert len(data["points"]) == 14 and len(data["means"]) == 7 and data["lpips_frame_strides"] == {"alex": 4}
    assert {r["status"] for r in data["match_default"]} <= {"ok", "never this bad", "not reached"}
    text = paths["report"].read_text()
    assert "random (seed 0)" in text and "never this bad" in text and "rd_lpips_alex.png" in text
    assert "keyframe alone shown for every frame" in text and "lpips_alex 0.2100 vs 0.2500 (better)" in text
    assert "## Reference: the keyframe alone" in text
    assert paths["lpips_alex"].stat().st_size > 10_000 and paths["psnr"].suffix == ".png"


def test_a_report_can_be_rewritten_and_its_anchors_reused_from_rd_json(tmp_path):
    from facecodec.rd.cli import _cached_anchor_points
    from facecodec.rd.neural import DEFAULT_SETTING, NeuralSetting, QuantisationEffect

    plan = LpipsPlan((("alex", 4),))
    gap = QuantisationEffect(DEFAULT_SETTING, {"psnr": 40.0, "lpips_alex": 0.01}, 5.0, 25.0, 100)
    run = RdRun("facecodec rd --test", "lite", {"kind": "trained", "path": "w.safetensors", "sha256": "00"},
                [{"name": "a", "path": "a.mp4", "frames": 100, "fps": 25.0, "seconds": 4.0}], plan,
                ["x264-veryslow"], _points("a", 0.0), {"a": gap})
    paths = write_report(run, tmp_path)
    again = RdRun.from_json(json.loads(paths["json"].read_text()))
    assert again.points == run.points and again.quantisation == run.quantisation and again.lpips == plan
    assert NeuralSetting.from_label("target 6 kbps, kf75") == NeuralSetting(keyframe_quality=75, target_kbps=6.0,
                                                                           keyframe_codec="webp")
    for setting in (NeuralSetting(), NeuralSetting(32, 75), NeuralSetting(24, 90, keyframe_codec="webp", legacy=True)):
        assert NeuralSetting.from_label(setting.label) == setting
    cached = _cached_anchor_points(paths["json"], plan)
    assert [p.setting for p in cached[("a", 100)] if p.codec == "x264-veryslow"] == ["crf 51", "crf 45", "crf 39"]
    with pytest.raises(ValueError, match="measured with LPIPS"):
        _cached_anchor_points(paths["json"], LpipsPlan((("alex", 1),)))


def test_bd_rows_flag_a_sliver_of_overlap():
    from facecodec.rd.summary import bd_rows

    rows = {(r.metric, r.basis): r for r in bd_rows(_points("a", 0.0), ["x264-veryslow"], ["psnr", "lpips_alex"])}
    assert rows[("psnr", "clip")].result.percent is None  # facecodec 21…22 dB, x264 24…30 dB
    lpips = rows[("lpips_alex", "clip")]
    assert lpips.result.percent is not None and not lpips.narrow and "narrow" not in lpips.text()


def test_calls_of_12_and_60_seconds_amortise_the_one_off_bytes_and_the_old_stream_is_compared(tmp_path):
    point = RdPoint("a", FACECODEC, "q24, avif50", 10.0, 3.0, 10.0, {"lpips_alex": 0.1},
                    {"stream": 6000, "header": 60, "keyframe": 4440, "motion": 1500}, default=True)
    assert point.call12_kbps == pytest.approx(3.0 + 8 * 4500 / 12 / 1000)
    assert point.call60_kbps == pytest.approx(3.0 + 8 * 4500 / 60 / 1000)
    anchor = RdPoint("a", "x264-veryslow", "crf 45", 20.0, 18.0, 21.0, {}, {"first_packet": 3000})
    assert anchor.call12_kbps == pytest.approx(18.0 + 2.0)
    from facecodec.rd.report import _legacy_section

    old = dataclasses.replace(point, setting="q24, kf90, legacy", default=False, steady_kbps=4.5)
    run = SimpleNamespace(metrics=["lpips_alex"])
    text = "\n".join(_legacy_section(run, [point, old]))
    assert "| new / old |" in text and "0.67" in text  # long call 3.0 / 4.5
