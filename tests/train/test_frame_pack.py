"""scripts/frame_pack.py: the frame cache survives the trip as x264 + labels (how phase 4 reached the GPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "frame_pack.py"
spec = importlib.util.spec_from_file_location("frame_pack", SCRIPT)
frame_pack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(frame_pack)


def test_pack_round_trip_keeps_frames_and_labels(tmp_path, sample_frames):
    cache, pack, back = tmp_path / "cache", tmp_path / "pack", tmp_path / "back"
    cache.mkdir()
    frames = sample_frames[:12:2]
    stem = "clip_s256_every2"
    np.save(cache / f"{stem}.npy", frames)
    landmarks = np.random.default_rng(0).uniform(0, 256, (len(frames), 478, 3)).astype(np.float16)
    poses = np.random.default_rng(1).normal(0, 10, (len(frames), 3)).astype(np.float32)
    np.save(cache / f"{stem}_lmk3.npy", landmarks)
    np.save(cache / f"{stem}_pose.npy", poses)

    frame_pack.pack(cache, pack)
    assert frame_pack.unpack(pack, back) == len(frames)

    restored = np.load(back / f"{stem}.npy")
    assert restored.shape == frames.shape and restored.dtype == np.uint8
    mse = np.mean((restored.astype(float) - frames) ** 2)
    assert 10 * np.log10(255**2 / mse) > 38  # near-transparent: training sees the same pictures
    np.testing.assert_array_equal(np.load(back / f"{stem}_lmk3.npy"), landmarks[:, frame_pack.LANDMARKS])
    np.testing.assert_array_equal(np.load(back / f"{stem}_pose.npy"), poses)


def test_pack_refuses_labels_of_another_length(tmp_path, sample_frames):
    np.save(tmp_path / "c_s256_every2.npy", sample_frames[:4])
    np.save(tmp_path / "c_s256_every2_lmk3.npy", np.zeros((3, 478, 3), np.float16))
    np.save(tmp_path / "c_s256_every2_pose.npy", np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="4 frames but 3 landmark"):
        frame_pack.pack(tmp_path, tmp_path / "pack")
