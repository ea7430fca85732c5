"""The served model repository on disk: ONNX files put in place, and staged copies for other settings.

`model_repository/<name>/1/model.onnx` (and the decoder's own `decoder/1/warp_decoder.onnx`) are
build outputs, ignored by git, copied from an export directory. `ensure_export` exports again when
the weights behind an export directory changed, so trained weights drop in without a manual step.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from .. import io_spec
from . import configs
from .configs import WARP_FILE
from .settings import ServingSettings

log = logging.getLogger(__name__)
STAMP = "export.json"  # in the export directory: which weights its ONNX files come from
PLACES = {  # exported file → where the repository expects it
    "motion_encoder.onnx": ("motion_encoder/1/model.onnx",),
    "appearance_encoder.onnx": ("appearance_encoder/1/model.onnx",),
    "warp_decoder.onnx": ("warp_decoder/1/model.onnx", f"decoder/1/{WARP_FILE}"),
}


def weights_identity(preset: str, weights: Path | None = None, checkpoint: Path | None = None) -> dict:
    """What an export is made from: the weights file (path, size, mtime), and the source of the code
    that builds and exports the networks."""
    from ..weights import weights_path

    identity = {"preset": preset, "code": _export_code_digest()}
    path = weights_path(preset, checkpoint=checkpoint, weights=weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    stat = Path(path).stat()
    return {**identity, "weights": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@functools.cache  # the sources do not change under a running process: hashed once, not on every encode
def _export_code_digest() -> str:
    """sha256 of the modules that define the exported graphs (networks, presets, contract, export)."""
    package = Path(__file__).resolve().parent.parent
    files = sorted((package / "models").glob("*.py")) + [
        package / name for name in ("onnx_export.py", "presets.py", "io_spec.py", "kinematics.py")
    ]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_export(onnx_dir: Path, preset: str, *, weights: Path | None = None, checkpoint: Path | None = None) -> Path:
    """ONNX files of `preset` in `onnx_dir`, exported unless they are there and from the same weights."""
    onnx_dir = Path(onnx_dir)
    identity = weights_identity(preset, weights, checkpoint)
    stamp = onnx_dir / STAMP
    if all((onnx_dir / f).is_file() for f in PLACES) and stamp.is_file() and json.loads(stamp.read_text()) == identity:
        return onnx_dir
    from ..onnx_export import export_all
    from ..weights import build_model

    why = "missing" if not stamp.is_file() else "made from other weights or code"
    log.warning("exporting %s to %s: the export there is %s (%s)", preset, onnx_dir, why, identity["weights"])
    export_all(build_model(preset, weights=weights, checkpoint=checkpoint), onnx_dir)
    stamp.write_text(json.dumps(identity, indent=1) + "\n")
    return onnx_dir


def install(onnx_dir: Path, repository: Path) -> list[Path]:
    """Copy the exported files to where `repository` expects them (only those that differ)."""
    placed = []
    for name, targets in PLACES.items():
        src = Path(onnx_dir) / name
        if not src.is_file():
            raise FileNotFoundError(f"{src} is missing; export first (facecodec export --out {onnx_dir})")
        for rel in targets:
            dst = Path(repository) / rel
            if not (dst.is_file() and _same(src, dst)):
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_name(dst.name + ".tmp")
                shutil.copy2(src, tmp)
                os.replace(tmp, dst)  # atomic: a server loading the old file never sees half a file
            placed.append(dst)
    return placed


def _same(a: Path, b: Path) -> bool:
    sa, sb = a.stat(), b.stat()
    return sa.st_size == sb.st_size and sa.st_mtime_ns == sb.st_mtime_ns


def stage(template: Path, out: Path, onnx_dir: Path, settings: ServingSettings) -> Path:
    """A repository at `out` with the `model.py` files of `template`, configs rendered for
    `settings` and the ONNX files of `onnx_dir`."""
    out = Path(out)
    for name in io_spec.SERVED:
        for src in (Path(template) / name).rglob("*.py"):
            dst = out / src.relative_to(template)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    configs.write(out, settings)
    install(onnx_dir, out)
    return out


def missing(repository: Path) -> list[Path]:
    """Files a served repository still lacks (configs, model.py, ONNX)."""
    need = [configs.config_path(Path(repository), n) for n in io_spec.SERVED]
    need += [Path(repository) / n / "1" / "model.py" for n in io_spec.SERVED]
    need += [Path(repository) / rel for targets in PLACES.values() for rel in targets]
    return [p for p in need if not p.is_file()]
