"""The vox256 preset loads the public face-vid2vid checkpoint layout strictly."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from facecodec.checkpoint import (
    CheckpointError,
    convert_reference_state,
    expected_reference_shapes,
    fold_spectral_norm,
    load_reference_checkpoint,
)
from facecodec.models import FaceVid2Vid
from facecodec.presets import VOX256

REFERENCE_TSV = Path(__file__).parent / "data" / "osfv_vox256_state_dict.tsv"


def reference_shapes() -> dict[tuple[str, str], tuple[int, ...]]:
    rows = csv.DictReader(REFERENCE_TSV.open(), delimiter="\t")
    return {
        (r["module"], r["key"]): () if r["shape"] == "scalar" else tuple(int(x) for x in r["shape"].split("x"))
        for r in rows
    }


def synthetic_checkpoint(seed: int = 0) -> dict:
    """Random values with exactly the reference keys and shapes, in the file's top-level layout."""
    g = torch.Generator().manual_seed(seed)
    ckpt = {m: {} for m in ("generator", "kp_detector", "he_estimator", "discriminator")}
    shapes = reference_shapes()
    for (module, key), shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            value = torch.tensor(1000, dtype=torch.int64)
        elif key.endswith("running_var"):
            value = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith(".weight") and len(shape) == 1:  # batch-norm scale
            value = 1 + 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("weight_u") or key.endswith("weight_v"):
            continue  # filled below from weight_orig, as power iteration leaves them
        elif key == "down.weight":
            value = torch.full(shape, 1 / (13 * 13))
        else:
            fan_in = max(1, torch.Size(shape[1:]).numel())
            value = torch.randn(shape, generator=g) / fan_in**0.5
        ckpt[module][key] = value
    for (module, key), shape in shapes.items():
        if key.endswith("weight_v"):
            # u, v as the reference's power iteration leaves them (σ ≈ largest singular value)
            base = key[: -len("weight_v")]
            w = ckpt[module][base + "weight_orig"].reshape(shapes[(module, base + "weight_u")][0], -1)
            v = torch.nn.functional.normalize(torch.randn(shape, generator=g), dim=0)
            for _ in range(20):
                u = torch.nn.functional.normalize(w @ v, dim=0)
                v = torch.nn.functional.normalize(w.T @ u, dim=0)
            ckpt[module][base + "weight_u"], ckpt[module][base + "weight_v"] = u, v
    ckpt["discriminator"] = {"discs.1.conv.weight": torch.zeros(1)}
    ckpt["optimizer_generator"] = {"state": {}, "param_groups": []}
    ckpt["epoch"] = 189
    return ckpt


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "00000189-checkpoint.pth.tar"
    torch.save(synthetic_checkpoint(), path)
    return path


def test_expected_keys_are_exactly_the_reference_table():
    expected = expected_reference_shapes(FaceVid2Vid(VOX256).state_dict())
    assert expected == reference_shapes()
    assert len(expected) == 863


def test_strict_load_maps_names_and_conventions(checkpoint_file):
    model = FaceVid2Vid(VOX256)
    load_reference_checkpoint(checkpoint_file, model)
    ckpt = torch.load(checkpoint_file, weights_only=True)
    he, gen = ckpt["he_estimator"], ckpt["generator"]
    # the reference's fc_roll layer produces yaw and fc_yaw produces roll
    assert torch.equal(model.head_pose.fc_yaw.weight, he["fc_roll.weight"])
    assert torch.equal(model.head_pose.fc_roll.weight, he["fc_yaw.weight"])
    assert torch.equal(model.head_pose.fc_pitch.bias, he["fc_pitch.bias"])
    assert torch.equal(model.motion.mask.weight, gen["dense_motion_network.mask.weight"])
    assert torch.equal(model.appearance.resblocks_3d[0].conv1.weight, gen["resblocks_3d.3dr0.conv1.weight"])
    assert torch.equal(model.keypoints.down.weight, ckpt["kp_detector"]["down.weight"])


def test_spectral_norm_fold_matches_torch_eval_mode():
    conv = torch.nn.utils.spectral_norm(torch.nn.Conv2d(8, 4, 3))
    for _ in range(3):
        conv(torch.randn(1, 8, 5, 5))  # power iterations in training mode
    conv.eval()
    with torch.no_grad():
        conv(torch.randn(1, 8, 5, 5))
        folded = fold_spectral_norm(conv.weight_orig, conv.weight_u, conv.weight_v)
    assert torch.allclose(folded, conv.weight, atol=1e-6)


def test_missing_key_is_named():
    ckpt = synthetic_checkpoint()
    del ckpt["he_estimator"]["fc_exp.bias"]
    with pytest.raises(CheckpointError, match=r"missing key he_estimator\.fc_exp\.bias"):
        convert_reference_state(ckpt, FaceVid2Vid(VOX256).state_dict())


def test_wrong_shape_and_unexpected_key_are_named():
    ckpt = synthetic_checkpoint()
    ckpt["kp_detector"]["kp.weight"] = torch.zeros(10, 32, 3, 3, 3)
    ckpt["generator"]["decoder.extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as err:
        convert_reference_state(ckpt, FaceVid2Vid(VOX256).state_dict())
    assert "shape of kp_detector.kp.weight is (10, 32, 3, 3, 3), expected (15, 32, 3, 3, 3)" in str(err.value)
    assert "unexpected key generator.decoder.extra.weight" in str(err.value)


def test_missing_state_dict_and_bad_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"lacks the state dict\(s\) \['kp_detector'\]"):
        ckpt = synthetic_checkpoint()
        del ckpt["kp_detector"]
        convert_reference_state(ckpt, FaceVid2Vid(VOX256).state_dict())
    with pytest.raises(CheckpointError, match="not found"):
        load_reference_checkpoint(tmp_path / "nope.pth.tar", FaceVid2Vid(VOX256))
    junk = tmp_path / "junk.pth.tar"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_reference_checkpoint(junk, FaceVid2Vid(VOX256))
