"""The Kubernetes toolchain of tests/k8s: kubectl (kustomize), kubernetes-validate, checkov and the
prometheus-operator CRD models in their own venv (`make k8s-tools`, .venv-k8s), promtool and
prometheus from Debian. Missing tools skip their tests, unless FACECODEC_K8S_REQUIRED=1 (`make
k8s-check`, CI), where a missing tool fails."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = ("cpu", "gpu")
OVERLAY_IDS = [f"overlays/{o}" for o in OVERLAYS]  # not bare "gpu": conftest skips tests with that keyword
TOOLS_VENV = Path(os.environ.get("FACECODEC_K8S_VENV", REPO / ".venv-k8s"))
REQUIRED = os.environ.get("FACECODEC_K8S_REQUIRED") == "1"


def tool(name: str) -> Path:
    """Path of a tool: the tools venv's bin/ first (never a kubectl of the system), then PATH for the
    Debian ones (promtool, prometheus)."""
    venv = TOOLS_VENV / "bin" / name
    if venv.is_file():
        return venv
    found = shutil.which(name) if name in ("promtool", "prometheus") else None
    if found:
        return Path(found)
    message = f"{name} not installed (make k8s-tools)"
    if REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def run(args: list, *, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], input=input, capture_output=True, text=True, timeout=timeout)


@functools.cache
def rendered_yaml(overlay: str) -> str:
    result = run([tool("kubectl"), "kustomize", K8S / "overlays" / overlay])
    assert result.returncode == 0, result.stderr
    return result.stdout


@functools.cache
def rendered(overlay: str) -> tuple[dict, ...]:
    """The overlay's objects, parsed by the tools venv's PyYAML (the package's venv has none)."""
    code = "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))"
    result = run([tool("python"), "-c", code], input=rendered_yaml(overlay))
    assert result.returncode == 0, result.stderr
    return tuple(json.loads(result.stdout))


def yaml_to_json(text: str):
    code = "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"
    result = run([tool("python"), "-c", code], input=text)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def named(doc: dict, name: str) -> bool:
    """`name`, or a kustomize-generated `name-<hash>` (a ConfigMap from configMapGenerator)."""
    return re.fullmatch(re.escape(name) + r"(-[a-z0-9]{10})?", doc["metadata"]["name"]) is not None


def find(docs, kind: str, name: str | None = None) -> dict:
    matches = [d for d in docs if d["kind"] == kind and (name is None or named(d, name))]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name}"
    return matches[0]
