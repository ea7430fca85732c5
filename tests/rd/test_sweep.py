"""Clip selection of the sweep, and the `facecodec rd` command end to end (slow)."""

import json

import pytest

from facecodec.rd.sweep import find_videos, validation_videos

MANIFEST_HEAD = ("file\tsource_repo\tsource_path\tlicence\tidentity\tseconds\twidth\theight\tfps\tframes\tbytes"
                 "\tsha256\n")


def test_find_videos_expands_folders_and_rejects_missing_paths(tmp_path):
    for name in ("b.mp4", "a.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_videos([tmp_path])] == ["a.mp4", "b.mp4"]
    with pytest.raises(FileNotFoundError, match="no such video"):
        find_videos([tmp_path / "missing.mp4"])


def test_validation_videos_take_one_long_enough_clip_per_validation_identity(tmp_path):
    rows = [f"train/{who}_{n}.mp4\tr\tp\tMIT\t{who}\t4\t256\t256\t25\t{frames}\t1\tx\n"
            for who in "abcdefghij" for n, frames in ((1, 50), (2, 120), (3, 130))]
    (tmp_path / "MANIFEST.tsv").write_text(MANIFEST_HEAD + "".join(rows))
    chosen = validation_videos(tmp_path / "MANIFEST.tsv", 2, min_frames=100)
    assert len(chosen) == 2 and all(p.name.endswith("_2.mp4") for p in chosen)
    assert len({p.name.split("_")[0] for p in chosen}) == 2


@pytest.mark.slow
def test_rd_command_writes_the_report(tmp_path):
    from facecodec.cli import main
    from tests.conftest import SAMPLE_CLIP

    out = tmp_path / "rd"
    assert main(["rd", "--videos", str(SAMPLE_CLIP), "--report", str(out), "--max-frames", "4",
                 "--codecs", "x264-zerolatency", "--lpips", "alex:4"]) == 0
    data = json.loads((out / "rd.json").read_text())
    assert {p["codec"] for p in data["points"]} == {"facecodec", "keyframe-only", "x264-zerolatency"}
    assert (out / "report.md").read_text().startswith("# facecodec rate–distortion report")
    assert (out / "rd_lpips_alex.png").is_file()


def test_sweep_reuses_anchor_points_it_is_given_and_encodes_the_rest(sample_frames):
    from facecodec.rd.quality import LpipsPlan
    from facecodec.rd.sweep import Clip, RdPoint, Sweep

    clip = Clip("sample", "sample.mp4", sample_frames[:2], 25.0)
    known = RdPoint("sample", "x264-veryslow", "crf 45", 1.0, 1.0, 1.0, {"psnr": 1.0})
    sweep = Sweep(networks=None, preset="lite", num_kp=15, codecs=["x264-veryslow", "x264-zerolatency"], settings=(),
                  anchor_crfs={"x264-veryslow": (45,), "x264-zerolatency": (45,)}, lpips=LpipsPlan((("alex", 2),)))
    points, gap = sweep.run(clip, cached=[known])
    assert gap is None and points[0] is known
    assert points[1].codec == "x264-zerolatency" and points[1].kbps > 0 and "lpips_alex" in points[1].quality


def test_weights_info_says_random_or_how_long_trained(tmp_path):
    import torch
    from safetensors.torch import save_file

    from facecodec.rd.cli import weights_info

    assert weights_info(None)["kind"].startswith("random") and weights_info(None)["sha256"] is None
    path = tmp_path / "w.safetensors"
    save_file({"x": torch.zeros(2)}, str(path), metadata={"steps": "90", "train_wall_s": "735"})
    info = weights_info(path)
    assert info["kind"] == "trained (90 steps, 12 min)" and len(info["sha256"]) == 64
