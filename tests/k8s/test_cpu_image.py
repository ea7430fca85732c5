"""docker/Dockerfile.cpu, the CPU overlay's image, read against the overlay (no Docker daemon here to
build it): what it copies exists, it makes the paths the pod's commands use, it runs as the pod's user."""

from __future__ import annotations

import re

from tests.export.test_docker import instructions

from .test_manifests import deployment, server_container
from .tools import REPO

DOCKERFILE = REPO / "docker" / "Dockerfile.cpu"


def test_everything_the_image_copies_is_in_the_checkout():
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.M):
        for path in src.split():
            assert (REPO / path).exists(), path


def test_the_image_makes_what_the_pod_reads():
    steps = instructions(DOCKERFILE.read_text())
    text = "\n".join(steps)
    assert "WORKDIR /opt/facecodec" in steps and "COPY model_repository model_repository" in steps
    assert "ensure_export('onnx/lite', 'lite')" in text  # a stamped export: `prepare` finds it current
    assert "FACECODEC_TRITON_BACKENDS=/opt/triton-backends" in text and "ensure_backend_dir()" in text
    (init,) = deployment("cpu")["spec"]["template"]["spec"]["initContainers"]
    command = " ".join(init["command"])
    assert "--repository /opt/facecodec/model_repository" in command and "--onnx /opt/facecodec/onnx/lite" in command
    assert server_container("cpu")["command"][:3] == ["python", "-m", "facecodec.serving"]
    assert "PATH=/opt/venv/bin:$PATH" in text


def test_the_image_runs_as_the_pods_user():
    (user,) = [s for s in instructions(DOCKERFILE.read_text()) if s.startswith("USER ")]
    uid, gid = user.removeprefix("USER ").split(":")
    context = deployment("cpu")["spec"]["template"]["spec"]["securityContext"]
    assert (int(uid), int(gid)) == (context["runAsUser"], context["runAsGroup"])
