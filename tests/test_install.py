"""What a user installs: the torch-free `facecodec[client]`, and a wheel that finds its own weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .packaging import REPO, requirement_closure


def _run(args, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | kw.pop("env", {})
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, **kw)


def test_the_client_extra_brings_numpy_tritonclient_grpcio_and_no_torch(wheel):
    closure = requirement_closure(wheel, {"client"})
    assert {"numpy", "tritonclient", "grpcio"} <= set(closure)
    assert not {"torch", "onnxruntime", "onnx"} & set(closure)


def test_the_client_runs_in_a_venv_without_torch(torch_free_venv, tmp_path):
    python = torch_free_venv / "bin" / "python"
    assert "No module named 'torch'" in _run([python, "-c", "import torch"], cwd=tmp_path).stderr
    check = ("import sys, facecodec.client.cli, facecodec.codec.sender, facecodec.codec.receiver; "
             "assert 'torch' not in sys.modules; print(facecodec.client.cli.__file__)")
    proc = _run([python, "-c", check], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert str(torch_free_venv) in proc.stdout  # the installed wheel, not the source tree
    proc = _run([torch_free_venv / "bin" / "facecodec-client", "decode", "--help"], cwd=tmp_path)
    assert proc.returncode == 0 and "stream" in proc.stdout, proc.stderr


def test_an_installed_wheel_finds_its_weights_and_a_missing_file_is_a_clear_error(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    env = {"PYTHONPATH": str(target)}
    probe = ("import facecodec.weights as w; m = w.build_model('lite'); "
             "print(w.__file__); print(w.weights_path('lite')); print(m.cfg.name)")
    proc = _run([sys.executable, "-c", probe], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    module, found, preset = proc.stdout.split()
    assert Path(module).is_relative_to(target) and Path(found) == target / "facecodec" / "weights" / "lite.safetensors"
    assert preset == "lite" and not Path(found).is_relative_to(REPO)

    (target / "facecodec" / "weights" / "lite.safetensors").unlink()
    proc = _run([sys.executable, "-m", "facecodec.cli", "export", "--out", tmp_path / "onnx"], cwd=tmp_path, env=env)
    assert proc.returncode == 2
    assert "weights file not found" in proc.stderr and "reinstall facecodec" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "onnx").exists()
