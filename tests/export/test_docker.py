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


NVIDIA_ENTRYPOINT = "/opt/nvidia/nvidia_entrypoint.sh"
OUR_ENTRYPOINT = "/opt/facecodec/docker/entrypoint.sh"


def instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [i.strip() for i in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines() if i.strip()]


def stages(text: str) -> list[list[str]]:
    out: list[list[str]] = []
    for instruction in instructions(text):
        if instruction.startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


def entrypoint(text: str) -> list[str]:
    (line,) = [i for i in stages(text)[-1] if i.startswith("ENTRYPOINT ")]
    return json.loads(line.removeprefix("ENTRYPOINT "))


def test_both_stages_come_from_one_pinned_release():
    text = DOCKERFILE.read_text()
    (release,) = re.findall(r"^ARG TRITON_RELEASE=(\d\d\.\d\d)$", text, re.M)
    assert release
    assert re.findall(r"^FROM (\S+)", text, re.M) == [
        "nvcr.io/nvidia/tensorrt:${TRITON_RELEASE}-py3", "nvcr.io/nvidia/tritonserver:${TRITON_RELEASE}-py3"]
    assert "FACECODEC_PLUGIN_LIB=/opt/facecodec/lib/libfacecodec_plugins.so" in text


def test_nvidia_entrypoint_runs_first_and_execs_ours():
    # Replacing NVIDIA's entrypoint skips its entrypoint.d scripts (CUDA forward compatibility).
    text = DOCKERFILE.read_text()
    assert entrypoint(text) == [NVIDIA_ENTRYPOINT, OUR_ENTRYPOINT]
    assert f"RUN test -x {NVIDIA_ENTRYPOINT}" in stages(text)[-1]  # the build fails if NVIDIA moves it
    assert not [i for i in stages(text)[-1] if i.startswith("CMD")]  # arguments go to tritonserver


@pytest.mark.parametrize("stage", [0, 1], ids=["plugins", "server"])
def test_pip_may_install_into_the_images_python(stage):
    # Ubuntu 24.04 (the 25.xx images) marks its Python as externally managed: pip refuses without this.
    steps = stages(DOCKERFILE.read_text())[stage]
    installs = [i for i, step in enumerate(steps) if step.startswith("RUN") and "pip install" in step]
    assert installs, "this stage installs nothing with pip"
    allowed = [i for i, step in enumerate(steps) if step.startswith("ENV") and "PIP_BREAK_SYSTEM_PACKAGES=1" in step]
    assert allowed and allowed[0] < installs[0]


def test_everything_the_image_copies_is_in_the_checkout():
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.M):
        for path in src.split():
            assert (REPO / path).exists(), path


def test_entrypoint_is_valid_bash():
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True)
    assert os.access(ENTRYPOINT, os.X_OK)


# Two A100s, the first split into two MIG instances: `nvidia-smi -L` prints 4 lines for 2 GPUs.
NVIDIA_SMI = """#!/bin/sh
case "$*" in
  *--query-gpu=name,compute_cap*) echo "NVIDIA A100-SXM4-80GB, 8.0"; echo "NVIDIA A100-SXM4-80GB, 8.0" ;;
  *--query-gpu=index*) echo 0; echo 1 ;;
  -L) echo "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-0)"
      echo "  MIG 3g.40gb     Device  0: (UUID: MIG-0)"
      echo "  MIG 3g.40gb     Device  1: (UUID: MIG-1)"
      echo "GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-1)" ;;
  *) exit 2 ;;
esac
"""
# What NVIDIA's entrypoint does: run its entrypoint.d scripts in its own shell, then exec the command.
NVIDIA_ENTRYPOINT_STANDIN = """#!/bin/bash
for script in "$(dirname "$0")"/entrypoint.d/*.sh; do source "$script"; done
exec "$@"
"""
FORWARD_COMPAT = 'export LD_LIBRARY_PATH="/usr/local/cuda/compat/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\n'

STANDINS = {
    "nvidia-smi": NVIDIA_SMI,
    "trtexec": """#!/bin/sh
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v101100] # trtexec $*"
[ "$1" = "--help" ] && exit 0
for arg in "$@"; do case "$arg" in --saveEngine=*) printf plan > "${arg#--saveEngine=}" ;; esac; done
echo "$*" >> "$(dirname "$0")/trtexec.log"
""",
    "tritonserver": """#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/tritonserver.args"
printf '%s\\n' "$LD_LIBRARY_PATH" > "$(dirname "$0")/tritonserver.ld_library_path"
""",
}
# The three python3 steps of the entrypoint, recorded; --server-args echoes what it was given.
PYTHON_STANDIN = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/python3.log"
case "$*" in
  *--prepare*) echo /state/onnx/lite ;;
  *--server-args*) printf '%s\\n' "$@" ;;
esac
"""


def _write_bin(bin_dir, scripts: dict[str, str]) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)


@pytest.fixture
def shell_only(tmp_path):
    """The entrypoint's own logic: stand-ins for the GPU tools and for the python3 steps."""
    bin_dir = tmp_path / "bin"
    _write_bin(bin_dir, {**STANDINS, "python3": PYTHON_STANDIN})
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "FACECODEC_HOME": str(REPO),
           "FACECODEC_STATE": str(tmp_path / "state")}
    return bin_dir, env


def test_entrypoint_counts_gpus_not_mig_instances(shell_only):
    bin_dir, env = shell_only
    run = subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    (server_args,) = [line for line in (bin_dir / "python3.log").read_text().splitlines() if "--server-args" in line]
    assert "--gpus 2 " in server_args + " "


def test_the_images_entrypoint_chain_keeps_nvidias_setup_and_the_arguments(shell_only, tmp_path):
    bin_dir, env = shell_only
    nvidia = tmp_path / "opt" / "nvidia"
    _write_bin(nvidia, {"nvidia_entrypoint.sh": NVIDIA_ENTRYPOINT_STANDIN})
    _write_bin(nvidia / "entrypoint.d", {"50-forward-compat.sh": FORWARD_COMPAT})
    where = {NVIDIA_ENTRYPOINT: str(nvidia / "nvidia_entrypoint.sh"), OUR_ENTRYPOINT: str(ENTRYPOINT)}
    command = [where[c] for c in entrypoint(DOCKERFILE.read_text())]
    run = subprocess.run([*command, "--log-verbose=1"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert (bin_dir / "tritonserver.args").read_text().splitlines()[-1] == "--log-verbose=1"
    assert (bin_dir / "tritonserver.ld_library_path").read_text().startswith("/usr/local/cuda/compat/lib")


@pytest.fixture
def container(tmp_path, plugin_model):
    """PATH with the stand-ins and this venv's python3; a state directory holding an export."""
    bin_dir = tmp_path / "bin"
    _write_bin(bin_dir, {**STANDINS, "python3": f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'})
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
        assert json.loads((repo / name / "1" / "engine.json").read_text())["gpu"] == "NVIDIA A100-SXM4-80GB"
    assert (repo / "decoder" / "1" / "model.py").is_file() and (repo / "decoder" / "config.pbtxt").is_file()
    # the settings reach both the configs and the engines' profiles
    config = (repo / "warp_decoder" / "config.pbtxt").read_text()
    assert "max_batch_size: 4" in config and "count: 2" in config
    builds = (bin_dir / "trtexec.log").read_text().splitlines()
    assert len(builds) == 3 and "--maxShapes=source_image:4x3x256x256" in builds[2]
    args = (bin_dir / "tritonserver.args").read_text().splitlines()
    assert f"--model-repository={repo}" in args
    assert f"--backend-config=tensorrt,plugins={env['FACECODEC_PLUGIN_LIB']}" in args
    assert sum(a.startswith("--cuda-memory-pool-byte-size=") for a in args) == 2  # one per GPU, not per MIG line
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
