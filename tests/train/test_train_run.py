"""The training loop end to end on the shipped sample clip (with the prefetch thread): a short run writes
its checkpoint, loss log, plot and sample grid, a resumed run continues from the step it reached, and the
exported weights load."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from facecodec.train.config import TrainConfig
from facecodec.train.publish import export_weights
from facecodec.train.loop import RunPaths, train
from facecodec.weights import load_weights

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "talking_00086_4s.mp4"


@pytest.fixture
def faces(tmp_path: Path) -> Path:
    """A two-identity data folder (the split needs one to validate on): the sample clip's first 16 frames
    under two names."""
    train = tmp_path / "faces" / "train"
    train.mkdir(parents=True)
    rows = ["file\tidentity\tframes"]
    for name in ("alice", "bob"):
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(SAMPLE), "-frames:v", "16", "-c:v", "libx264", "-crf", "18",
                        str(train / f"{name}.mp4")], check=True)
        rows.append(f"train/{name}.mp4\t{name}\t16")
    (tmp_path / "faces" / "MANIFEST.tsv").write_text("\n".join(rows) + "\n")
    return train


def test_a_short_run_checkpoints_resumes_and_exports(faces, tmp_path):
    # the shipped preset at 256², made cheap where the run allows: 1 pair a step, 2 validation pairs
    cfg = TrainConfig(sources_per_batch=1, drivings_per_source=1, pose_frames_per_step=0, validation_pairs=2,
                      prefetch=1, threads=2)
    paths = RunPaths(faces, tmp_path / "run", tmp_path / "cache")
    state = train(cfg, paths, steps=5)
    rows = [json.loads(line) for line in (paths.out / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5] and all(v == v for v in rows[0].values())  # logged, no NaN
    assert torch.load(paths.checkpoint, weights_only=False)["step"] == 5
    assert json.loads((paths.out / "split.json").read_text())["validation"] in (["alice"], ["bob"])
    assert (paths.out / "samples" / "step_0000001.png").is_file() and (paths.out / "losses.png").is_file()

    state = train(cfg, paths, steps=7, resume=True)
    assert state.step == 7 and torch.load(paths.checkpoint, weights_only=False)["step"] == 7
    weights = export_weights(state, paths.out, tmp_path / "lite.safetensors")
    assert load_weights(weights).cfg.name == "lite"
