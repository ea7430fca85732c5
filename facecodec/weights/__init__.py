"""facecodec weights: a safetensors file of the whole `FaceVid2Vid` state dict, fp16 on disk,
with the architecture (`ModelConfig` JSON) in its metadata so weights and config travel together.

Where a model's weights come from (`weights_path`, the one lookup every command uses):
1. `--checkpoint FILE` (vox256: the public face-vid2vid checkpoint) or `--weights FILE`;
2. else `$FACECODEC_WEIGHTS`;
3. else the shipped weights of the preset: package data beside this file
   (`facecodec/weights/lite.safetensors`, in the source tree and in an installed wheel alike).
A preset with none of these (vox256 ships no weights) or a named file that is missing is an error
that says what to pass; nothing falls back to random weights. Seeded random weights are asked for
by name (`build_model(..., random_init=True)`: speed benchmarks and tests only).
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..models import FaceVid2Vid, ModelConfig
from ..presets import get_preset

WEIGHTS_ENV = "FACECODEC_WEIGHTS"
SHIPPED = ("lite",)  # presets whose weights are package data


def save_weights(model: FaceVid2Vid, path: str | Path, *, dtype: torch.dtype = torch.float16, **info: str) -> None:
    """Write the state dict (floating tensors cast to `dtype`) and config to `path`."""
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()
    }
    save_file(state, str(path), metadata={"config": model.cfg.to_json(), **info})


def read_config(path: str | Path) -> ModelConfig:
    with safe_open(str(path), framework="pt") as f:
        return ModelConfig.from_json(f.metadata()["config"])


def load_weights(path: str | Path) -> FaceVid2Vid:
    """Build the model described by the file and load it strictly, in float32, eval mode."""
    path = Path(path)
    if not path.is_file():
        shipped = " (the shipped weights: reinstall facecodec, or name a file)" if path == shipped_path(path.stem) else ""
        raise FileNotFoundError(f"weights file not found: {path}{shipped}")
    model = FaceVid2Vid(read_config(path))
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def shipped_path(preset: str) -> Path:
    """Where the package data of a preset's shipped weights lies (whether or not it is there)."""
    return Path(str(resources.files(__name__) / f"{preset}.safetensors"))


def default_weights_path(preset: str) -> Path | None:
    """The weights a preset loads when no file is named: $FACECODEC_WEIGHTS, else the shipped weights
    (package data) of a preset that has them, else None."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env)
    return shipped_path(preset) if preset in SHIPPED else None


def weights_path(preset: str, *, checkpoint: str | Path | None = None, weights: str | Path | None = None) -> Path:
    """The file a model of `preset` is loaded from (the lookup of the module docstring)."""
    if checkpoint is not None and weights is not None:
        raise ValueError("give either --checkpoint (vox256 reference file) or --weights, not both")
    path = checkpoint or weights or default_weights_path(preset)
    if path is None:
        raise FileNotFoundError(f"no weights for preset {preset!r}: pass --weights FILE (or --checkpoint, the public "
                                f"face-vid2vid file, for vox256) or set {WEIGHTS_ENV}")
    return Path(path)


def build_model(
    preset: str, *, checkpoint: str | Path | None = None, weights: str | Path | None = None,
    random_init: bool = False, seed: int = 0,
) -> FaceVid2Vid:
    """The model for an export or a run: vox256 from the reference checkpoint, or our weights
    (`weights_path`); seeded random weights only when asked for (`random_init`)."""
    if random_init:
        torch.manual_seed(seed)
        return FaceVid2Vid(get_preset(preset)).eval()
    path = weights_path(preset, checkpoint=checkpoint, weights=weights)
    if checkpoint is not None:
        from ..checkpoint import load_reference_checkpoint

        if preset != "vox256":
            raise ValueError("--checkpoint loads the public face-vid2vid file and needs --preset vox256")
        model = FaceVid2Vid(get_preset(preset))
        load_reference_checkpoint(path, model)
        return model.eval()
    model = load_weights(path)
    if model.cfg.name != preset:
        raise ValueError(f"{path} holds preset {model.cfg.name!r}, not {preset!r}")
    return model


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (weights, checkpoints), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
