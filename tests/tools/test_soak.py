"""`make soak`, short: 2 concurrent paced calls for 20 s against the real tritonserver of the tests. No
frame lost, no cross-talk (each call's checked frames are its own in-process render), the outputs
written; and the RSS trend's arithmetic."""

from __future__ import annotations

import json

import pytest

from facecodec.tools import soak


def test_rss_trend_is_the_slope_after_the_warm_up():
    samples = [{"t": t, "tree_mib": 500.0 + (100.0 if t < 10 else 0.0) + 0.5 * t / 60} for t in range(0, 70, 5)]
    slope, growth, base = soak.rss_trend(samples, warmup_s=10)
    assert slope == pytest.approx(0.5) and base == pytest.approx(500 + 0.5 * 10 / 60)
    assert growth == pytest.approx(100 * 0.5 * (65 - 10) / 60 / base)
    assert soak.rss_trend(samples[:2], warmup_s=0)[0] != soak.rss_trend(samples[:2], warmup_s=0)[0]  # NaN


@pytest.mark.triton
def test_a_short_soak_loses_nothing_and_keeps_calls_apart(triton, onnx_dir, tmp_path):
    config = soak.SoakConfig(calls=2, seconds=20.0, warmup_s=5.0, sample_s=1.0, check_frames=2)
    result = soak.run_soak(triton.grpc_url, triton.process.pid, onnx_dir, config)
    summary = soak.write_outputs(result, tmp_path)
    # each worker completes at least one 4-s call (a loaded machine finishes fewer than the 5 that fit)
    assert summary["calls"] >= config.calls and summary["failed_calls"] == 0 and summary["abandoned_calls"] == 0
    assert summary["lost"] == 0 and summary["delivered"] > 0
    assert summary["checked_frames"] >= summary["calls"] and summary["cross_talk"] == 0, summary
    assert summary["latency_ms_p99"] >= summary["latency_ms_p50"] > 0
    assert len(result.rss) >= 10 and all(s["tree_mib"] > s["server_mib"] > 0 for s in result.rss)
    assert soak.passed(summary, config) == [] or summary["rss_growth_after_warmup_pct"] >= 5  # 20 s: RSS still warming
    saved = json.loads((tmp_path / "soak.json").read_text())
    assert saved["summary"]["calls"] == summary["calls"] and len(saved["calls"]) == summary["calls"]
    assert (tmp_path / "soak.png").stat().st_size > 10_000 and "cross-talk" in (tmp_path / "soak.md").read_text()
    print("\n" + (tmp_path / "soak.md").read_text())
