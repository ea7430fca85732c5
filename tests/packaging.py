"""Helpers of the install tests: the wheel built from this tree, and a venv holding `facecodec[client]`
with no torch, put together offline from the distributions already installed beside the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent


def build_wheel(out: Path) -> Path:
    """facecodec's wheel, built from a copy of the package sources (never a stale build/ of the tree)."""
    src = out / "src"
    shutil.copytree(REPO / "facecodec", src / "facecodec", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--wheel-dir", str(out), str(src)], check=True, env=_clean_env())
    (wheel,) = out.glob("facecodec-*.whl")
    return wheel


def requirement_closure(wheel: Path, extras: set[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions that `pip install <wheel>[extras]` needs, by normalised name."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [line.split(":", 1)[1].strip() for line in z.read(meta).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    found: dict[str, metadata.Distribution] = {}
    todo = [(Requirement(r), extras) for r in requires]
    while todo:
        req, active = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (active or {""})):
            continue
        key = _normalise(req.name)
        if key == "facecodec":
            todo += [(Requirement(r), set(req.extras)) for r in requires]
            continue
        dist = metadata.distribution(req.name)  # PackageNotFoundError: the test environment lacks it
        if key in found and not req.extras:
            continue
        found[key] = dist
        todo += [(Requirement(r), set(req.extras)) for r in dist.requires or []]
    return found


def client_venv(root: Path, wheel: Path) -> Path:
    """A venv (no system site-packages) with the wheel installed and its `client` closure linked in."""
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for dist in requirement_closure(wheel, {"client"}).values():
        base = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if not (site / top).exists() and (base / top).exists():
                (site / top).symlink_to(base / top)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, env=_clean_env())
    return root


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH: what is installed is what runs."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
