"""The GPU overlay splits docker/entrypoint.sh across the pod: the init container prepares $STATE
(export, repository, engines; FACECODEC_ENTRYPOINT_MODE=prepare) and the server container only
starts tritonserver on it (serve), with the drain window from the manifest. Run with the stand-ins
of tests/export/test_docker.py for the GPU tools and the python3 steps."""

from __future__ import annotations

import subprocess

import pytest

from tests.export.test_docker import ENTRYPOINT, PYTHON_STANDIN, STANDINS, _write_bin

from .test_manifests import deployment, server_container


@pytest.fixture
def pod(tmp_path):
    bin_dir = tmp_path / "bin"
    _write_bin(bin_dir, {**STANDINS, "python3": PYTHON_STANDIN})
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "FACECODEC_HOME": str(tmp_path),
           "FACECODEC_STATE": str(tmp_path / "models"), "FACECODEC_DRAIN_SECONDS": "300"}
    return bin_dir, env


def container_env(container) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}  # not the ConfigMap refs


def test_init_container_prepares_without_serving(pod):
    bin_dir, env = pod
    (init,) = deployment("gpu")["spec"]["template"]["spec"]["initContainers"]
    assert container_env(init)["FACECODEC_ENTRYPOINT_MODE"] == "prepare"
    run = subprocess.run([str(ENTRYPOINT)], env={**env, **container_env(init)}, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    steps = (bin_dir / "python3.log").read_text()
    assert "--prepare" in steps and "export.engines" in steps and "--server-args" not in steps
    assert not (bin_dir / "tritonserver.args").exists()


def test_server_container_serves_the_prepared_state_with_the_drain_window(pod):
    bin_dir, env = pod
    container = server_container("gpu")
    assert container_env(container)["FACECODEC_ENTRYPOINT_MODE"] == "serve"
    args = [a.replace("$(FACECODEC_DRAIN_SECONDS)", env["FACECODEC_DRAIN_SECONDS"]) for a in container["args"]]
    run = subprocess.run([str(ENTRYPOINT), *args], env={**env, **container_env(container)}, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    steps = (bin_dir / "python3.log").read_text()
    assert "--prepare" not in steps and "export.engines" not in steps  # nothing is written in a read-only $STATE
    served = (bin_dir / "tritonserver.args").read_text().splitlines()
    assert "--exit-timeout-secs=300" in served and "--grpc-port=8001" in served
    assert f"--repository {container_env(container)['FACECODEC_STATE']}/repository" in steps  # the read-only volume
    # the admin protocols are restricted with the mounted key; gRPC speaks TLS with the mounted certificate
    assert f"--admin-key-file {container_env(container)['FACECODEC_ADMIN_KEY_FILE']}" in steps
    assert {"--grpc-use-ssl=true", "--grpc-server-cert=/etc/facecodec/tls/tls.crt",
            "--grpc-server-key=/etc/facecodec/tls/tls.key"} <= set(served)


def test_the_gpu_server_arguments_restrict_the_admin_protocols(tmp_path):
    from facecodec.serving.gpu import server_arguments
    from facecodec.serving.security import new_admin_key
    from facecodec.serving.settings import ServingSettings

    key = new_admin_key()
    args = server_arguments(tmp_path, tmp_path / "plugin.so", ServingSettings(), admin_key=key)
    assert any(a.startswith("--grpc-restricted-protocol=") and a.endswith(f":facecodec-admin-key={key}") for a in args)
    assert any(a.startswith("--http-restricted-api=") for a in args)
    assert not any("restricted" in a for a in server_arguments(tmp_path, tmp_path / "p.so", ServingSettings()))


def test_unknown_mode_is_an_error(pod):
    _, env = pod
    run = subprocess.run([str(ENTRYPOINT)], env={**env, "FACECODEC_ENTRYPOINT_MODE": "both"}, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "expected all, prepare or serve" in run.stderr
