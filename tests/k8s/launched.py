"""A Triton pod's process on loopback: `python -m facecodec.serving serve --prepared REPO`, the
command of the CPU overlay's container, as a subprocess (so SIGTERM reaches it as a kubelet's would)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from facecodec.serving.server import free_ports, parse_metrics


class Launched:
    def __init__(self, repository: Path, log_dir: Path, name: str, *, drain_seconds: float):
        self.name = name
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.out = log_dir / f"{name}.launcher.log"
        args = [
            sys.executable, "-m", "facecodec.serving", "serve", "--prepared", repository,
            "--http-port", self.http_port, "--grpc-port", self.grpc_port, "--metrics-port", self.metrics_port,
            "--drain-seconds", drain_seconds, "--log", log_dir / f"{name}.tritonserver.log",
        ]
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT)
        self.triton_pid: int | None = None

    grpc_url = property(lambda self: f"127.0.0.1:{self.grpc_port}")
    http_url = property(lambda self: f"http://127.0.0.1:{self.http_port}")
    metrics_url = property(lambda self: f"http://127.0.0.1:{self.metrics_port}/metrics")

    def wait_ready(self, timeout: float = 300) -> "Launched":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.out.read_text(errors="replace")
            if "tritonserver is ready" in text:
                self.triton_pid = int(re.search(r"pid\s+(\d+)", text).group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.3)
        raise TimeoutError(f"{self.name} not ready after {timeout} s:\n{self.out.read_text()[-3000:]}")

    def health(self, path: str = "/v2/health/ready") -> int | str:
        try:
            with urllib.request.urlopen(self.http_url + path, timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError as err:
            return type(err).__name__

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return parse_metrics(resp.read().decode())

    def terminate(self) -> None:
        """What the kubelet does after preStop: SIGTERM to the container's main process."""
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """What the kubelet does when the grace period ends: SIGKILL to every process of the container."""
        if self.triton_pid:
            try:
                os.killpg(self.triton_pid, signal.SIGKILL)  # tritonserver and its backend stubs
            except ProcessLookupError:
                pass
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
