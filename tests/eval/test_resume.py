"""A stopped `facecodec eval` resumes: per-clip results round-trip through their files, are measured
again under other settings, and processes sharing a report folder split the clips by lock files."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from facecodec.eval.report import ClipResult, load_clip, save_clip
from facecodec.eval.run import ClipCache

SETTINGS = {"preset": "lite", "refine": {"steps": 8}, "metrics": ["psnr", "lpips_alex"]}


def clip(name: str) -> ClipResult:
    return ClipResult(name=name, path=f"/clips/{name}.mp4", fps=25.0, frames=3, kbps=14.1, motion_kbps=6.5,
                      keyframe_bytes=5000, faces={"original": 3, "model": 3, "baseline": 3},
                      per_frame={"model": {"psnr": np.array([28.0, np.nan, 27.5])}},
                      stability={"jitter_codec": 1.1}, expression={"model": {"mouth_corr": 0.9}},
                      openings={"original": {"mouth": np.array([0.1, 0.2, 0.3])}})


def test_a_saved_clip_reads_back_equal_and_only_under_its_settings(tmp_path):
    path = save_clip(tmp_path / "a.json", clip("a"), SETTINGS)
    back = load_clip(path, SETTINGS)
    np.testing.assert_array_equal(back.per_frame["model"]["psnr"], [28.0, np.nan, 27.5])
    np.testing.assert_array_equal(back.openings["original"]["mouth"], [0.1, 0.2, 0.3])
    assert (back.name, back.kbps, back.faces, back.expression) == ("a", 14.1, clip("a").faces, clip("a").expression)
    assert load_clip(path, {**SETTINGS, "refine": None}) is None  # measured otherwise: measure again
    assert load_clip(tmp_path / "missing.json", SETTINGS) is None


def test_a_second_run_measures_only_what_the_first_left(tmp_path):
    measured: list[str] = []

    def measure(path: Path) -> ClipResult:
        measured.append(path.stem)
        if path.stem == "b" and len(measured) == 2:
            raise KeyboardInterrupt  # the first run is stopped on its second clip
        return clip(path.stem)

    clips = [Path("a.mp4"), Path("b.mp4"), Path("c.mp4")]
    try:
        ClipCache(tmp_path, SETTINGS).run(clips, measure)
    except KeyboardInterrupt:
        pass
    assert not (tmp_path / "b.lock").exists()  # a stop releases its claim
    results = ClipCache(tmp_path, SETTINGS).run(clips, measure)
    assert measured == ["a", "b", "b", "c"] and [r.name for r in results] == ["a", "b", "c"]


def test_a_clip_claimed_by_a_live_process_is_waited_for_and_a_dead_ones_taken_over(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        (tmp_path / "a.lock").write_text(str(live.pid))
        (tmp_path / "b.lock").write_text(str(dead.pid))
        measured: list[str] = []

        def measure(path: Path) -> ClipResult:
            measured.append(path.stem)
            return clip(path.stem)

        # the other process finishes "a" a moment later
        threading.Timer(0.3, lambda: save_clip(tmp_path / "a.json", clip("a"), SETTINGS)).start()
        results = ClipCache(tmp_path, SETTINGS, poll_s=0.1).run([Path("a.mp4"), Path("b.mp4")], measure)
        assert measured == ["b"] and [r.name for r in results] == ["a", "b"]
    finally:
        live.kill()
