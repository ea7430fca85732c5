"""Trained state → shipped weights (fp16 safetensors, config and provenance in the metadata)."""

from __future__ import annotations

import json
from pathlib import Path

from ..weights import save_weights
from .loop import State


def export_weights(state: State, run_dir: Path, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    split = json.loads((run_dir / "split.json").read_text())
    save_weights(state.model.cpu().eval(), path, steps=str(state.step), train_wall_s=f"{state.wall_s:.0f}",
                 validation_identities=",".join(split["validation"]))
    return path
