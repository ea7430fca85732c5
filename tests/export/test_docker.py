"""docker/: the GPU image's recipe, and its entrypoint run end to end with stand-ins for the GPU tools
(nvidia-smi, trtexec, tritonserver) on a pre-seeded export."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import onnx
import pytest

from facecodec.serving.repository import PLACES, STAMP, weights_identity
from tests.conftest import REPO
from tests.export.conftest import identity_model

DOCKERFILE = REPO / "docker" / "Dockerfile.gpu"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"


def test_both_stages_come_from_one_pinned_release():
    text = DOCKERFILE.read_text()
    (release,) = re.findall(r"^ARG TRITON_RELEASE=(\d\d\.\d\d)$", text, re.M)
    assert release
    assert re.findall(r"^FROM (\S+)", text, re.M) == [
        "nvcr.io/nvidia/tensorrt:${TRITON_RELEASE}-py3", "nvcr.io/nvidia/tritonserver:${TRITON_RELEASE}-py3"]
    assert 'ENTRYPOINT ["/opt/facecodec/docker/entrypoint.sh"]' in text
    assert "FACECODEC_PLUGIN_LIB=/opt/facecodec/lib/libfacecodec_plugins.so" in text


def test_everything_the_image_copies_is_in_the_checkout():
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.M):
        for path in src.split():
            assert (REPO / path).exists(), path


def test_entrypoint_is_valid_bash():
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True)
    assert os.access(ENTRYPOINT, os.X_OK)


STANDINS = {
    "nvidia-smi": """#!/bin/sh
case "$*" in
  *--query-gpu*) echo "NVIDIA L4, 8.9" ;;
  -L) echo "GPU 0: NVIDIA L4 (UUID: GPU-0)"; echo "GPU 1: NVIDIA L4 (UUID: GPU-1)" ;;
esac
""",
    "trtexec": """#!/bin/sh
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v101100] # trtexec $*"
[ "$1" = "--help" ] && exit 0
for arg in "$@"; do case "$arg" in --saveEngine=*) printf plan > "${arg#--saveEngine=}" ;; esac; done
echo "$*" >> "$(dirname "$0")/trtexec.log"
""",
    "tritonserver": """#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/tritonserver.args"
""",
}


@pytest.fixture
def container(tmp_path, plugin_model):
    """PATH with the stand-ins and this venv's python3; a state directory holding an export."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in STANDINS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    state = tmp_path / "state"
    onnx_dir = state / "onnx" / "lite"
    onnx_dir.mkdir(parents=True)
    for name in PLACES:
        onnx.save(identity_model(name), str(onnx_dir / name))
    onnx.save(plugin_model, str(onnx_dir / "warp_decoder_trt.onnx"))
    (onnx_dir / STAMP).write_text(json.dumps(weights_identity("lite"), indent=1) + "\n")
    plugin = tmp_path / "libfacecodec_plugins.so"
    plugin.write_bytes(b"plugin")
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "FACECODEC_HOME": str(REPO),
        "FACECODEC_STATE": str(state), "FACECODEC_PLUGIN_LIB": str(plugin), "TRT_VERSION": "10.11.0.33",
    }
    return bin_dir, state, env


def _start(env, *args):
    return subprocess.run([str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # two container starts: ~6 python processes importing torch
def test_entrypoint_builds_engines_once_and_starts_triton_with_the_plugin(container):
    bin_dir, state, env = container
    env["FACECODEC_SERVING_ARGS"] = "--max-batch-size 4 --network-instances 2"
    run = _start(env, "--log-verbose=1")
    assert run.returncode == 0, run.stderr
    repo = state / "repository"
    for name in ("motion_encoder", "appearance_encoder", "warp_decoder"):
        assert (repo / name / "1" / "model.plan").read_text() == "plan"
        assert json.loads((repo / name / "1" / "engine.json").read_text())["gpu"] == "NVIDIA L4"
    assert (repo / "decoder" / "1" / "model.py").is_file() and (repo / "decoder" / "config.pbtxt").is_file()
    # the settings reach both the configs and the engines' profiles
    config = (repo / "warp_decoder" / "config.pbtxt").read_text()
    assert "max_batch_size: 4" in config and "count: 2" in config
    builds = (bin_dir / "trtexec.log").read_text().splitlines()
    assert len(builds) == 3 and "--maxShapes=source_image:4x3x256x256" in builds[2]
    args = (bin_dir / "tritonserver.args").read_text().splitlines()
    assert f"--model-repository={repo}" in args
    assert f"--backend-config=tensorrt,plugins={env['FACECODEC_PLUGIN_LIB']}" in args
    assert sum(a.startswith("--cuda-memory-pool-byte-size=") for a in args) == 2  # one per GPU
    assert args[-1] == "--log-verbose=1"  # the container's arguments go to tritonserver

    again = _start(env)  # a restart on the same GPU and TensorRT reuses the plans
    assert again.returncode == 0, again.stderr
    assert len((bin_dir / "trtexec.log").read_text().splitlines()) == 3


@pytest.mark.slow
def test_entrypoint_fails_before_serving_when_an_engine_fails(container):
    bin_dir, state, env = container
    (bin_dir / "trtexec").write_text("#!/bin/sh\n[ \"$1\" = --help ] && exit 0\necho 'parser error'; exit 1\n")
    run = _start(env)
    assert run.returncode != 0 and "trtexec failed" in run.stderr
    assert not (bin_dir / "tritonserver.args").exists()
