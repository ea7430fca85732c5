"""facecodec weights: a safetensors file of the whole `FaceVid2Vid` state dict, fp16 on disk,
with the architecture (`ModelConfig` JSON) in its metadata so weights and config travel together.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .models import FaceVid2Vid, ModelConfig
from .presets import get_preset

WEIGHTS_ENV = "FACECODEC_WEIGHTS"


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
        raise FileNotFoundError(f"weights file not found: {path}")
    model = FaceVid2Vid(read_config(path))
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def default_weights_path(preset: str) -> Path | None:
    """Shipped weights for a preset: $FACECODEC_WEIGHTS, else `weights/<preset>.safetensors` in the
    source tree when it exists (the lite weights ship with the repo)."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env)
    shipped = Path(__file__).resolve().parent.parent / "weights" / f"{preset}.safetensors"
    return shipped if shipped.is_file() else None


def build_model(
    preset: str, *, checkpoint: str | Path | None = None, weights: str | Path | None = None, seed: int = 0
) -> FaceVid2Vid:
    """The model for an export or a run: vox256 from the reference checkpoint, or our weights, or
    (only when neither exists) seeded random weights, which is stated in the log."""
    if checkpoint is not None and weights is not None:
        raise ValueError("give either --checkpoint (vox256 reference file) or --weights, not both")
    if checkpoint is not None:
        from .checkpoint import load_reference_checkpoint

        if preset != "vox256":
            raise ValueError("--checkpoint loads the public face-vid2vid file and needs --preset vox256")
        model = FaceVid2Vid(get_preset(preset))
        load_reference_checkpoint(checkpoint, model)
        return model.eval()
    path = weights if weights is not None else default_weights_path(preset)
    if path is not None:
        model = load_weights(path)
        if model.cfg.name != preset:
            raise ValueError(f"{path} holds preset {model.cfg.name!r}, not {preset!r}")
        return model
    torch.manual_seed(seed)
    return FaceVid2Vid(get_preset(preset)).eval()
