"""`TritonServer`: the real `tritonserver` binary of the nvidia-pytriton wheel, on loopback ports.

The recipe of notes/triton-on-cpu.md, in code: the python backend and its stub are copied once
into a backend directory (never again while a server may use it), the stub finds this venv through
`PATH` and its libraries through `LD_LIBRARY_PATH`, and every wait has a limit. On failure the log
tail is part of the error.

    with TritonServer(repository) as server:      # free ports unless given
        client = grpcclient.InferenceServerClient(server.grpc_url)

Stopping drains: on SIGTERM tritonserver closes its HTTP endpoint (health checks fail, so a
Kubernetes pod turns not-ready), refuses new sequences ("Server is stopping") and keeps serving the
live ones, counting each live call session as in flight, for up to `drain_seconds`
(`--exit-timeout-secs`); it exits a few seconds after the last call ends. `stop` waits that long
and logs the live sessions meanwhile; only then does it kill.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .. import io_spec
from .metrics import ACTIVE_SESSIONS
from .security import ServerTls, restricted_arguments

log = logging.getLogger(__name__)
BACKENDS_ENV = "FACECODEC_TRITON_BACKENDS"
DRAIN_MARGIN_S = 20.0  # after the drain window: the models unload (≈ 4 s measured) and the process exits
# E-level lines and protobuf/loader errors; the CPU-only CUDA/NVML/DCGM complaints are not causes
ERROR_LINE = re.compile(r"^(E\d{4} |\[libprotobuf ERROR|error:)(?!.*(CudaDriverHelper|NVML|DCGM|pinned))")


class ServerError(RuntimeError):
    """The server did not start, did not get ready, or died."""


def pytriton_dir() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("nvidia-pytriton is not installed in this environment (pip install -e '.[serve]')")
    return Path(list(spec.submodule_search_locations)[0])


def default_backend_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(
        os.environ.get(BACKENDS_ENV)
        or cache / "facecodec" / f"triton-backends-py{sys.version_info[0]}.{sys.version_info[1]}"
    )


def ensure_backend_dir(path: Path | None = None) -> Path:
    """A backend directory holding the python backend and the stub for this Python version.

    Set up once, in a temporary sibling renamed into place, so concurrent setups cannot collide and
    a directory in use by a running server is never written to (copying over it crashes the server).
    """
    path = Path(path or default_backend_dir())
    if (path / "python" / "triton_python_backend_stub").is_file():
        return path
    root = pytriton_dir() / "tritonserver"
    stub = root / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}" / "triton_python_backend_stub"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".backends-", dir=path.parent))
    shutil.copytree(root / "backends" / "python", tmp / "python", dirs_exist_ok=True)
    shutil.copy2(stub, tmp / "python" / stub.name)
    try:
        tmp.rename(path)
    except OSError:  # another process finished first; use its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free on `host` right now (bound to port 0 and released)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]


def server_environment() -> dict[str, str]:
    """Environment for the server: this venv first on PATH (the stub picks its Python from there,
    it ignores PYTHONPATH) and the wheel's libraries plus libpython on LD_LIBRARY_PATH (without
    them the stub dies and the model hangs in 'loading')."""
    env = dict(os.environ)
    libs = [str(pytriton_dir().parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR") or ""]
    env["LD_LIBRARY_PATH"] = ":".join(p for p in [*libs, env.get("LD_LIBRARY_PATH", "")] if p)
    env["PATH"] = f"{Path(sys.prefix) / 'bin'}:{env.get('PATH', '')}"
    return env


class TritonServer:
    """Context manager around one `tritonserver` process serving `repository`."""

    def __init__(
        self,
        repository: str | Path,
        *,
        host: str = "127.0.0.1",
        http_port: int = 0,
        grpc_port: int = 0,
        metrics_port: int = 0,
        log_path: str | Path | None = None,
        backend_dir: str | Path | None = None,
        startup_timeout: float = 180.0,
        stop_timeout: float = 30.0,
        models: list[str] | None = None,
        drain_seconds: float | None = None,
        tls: ServerTls | None = None,
        admin_key: str | None = None,
        settle: bool = False,
    ):
        self.repository = Path(repository).resolve()
        self.host = host
        ports = free_ports(3, host)
        self.http_port, self.grpc_port, self.metrics_port = (
            given or free for given, free in zip((http_port, grpc_port, metrics_port), ports, strict=True)
        )
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix="tritonserver-", suffix=".log")
            os.close(fd)
        self.log_path = None if str(log_path) == "-" else Path(log_path)  # "-": our stdout (a pod's log)
        self.backend_dir = backend_dir
        self.startup_timeout, self.stop_timeout = startup_timeout, stop_timeout
        self.settle = settle  # after ready, wait for the background compiles too (`wait_idle`): benchmarks
        # SIGTERM drains live call sessions for this long (Triton's own default is 30 s); the stop
        # waits for it, plus time to unload the models, before it kills
        self.drain_seconds = drain_seconds
        if drain_seconds is not None:
            self.stop_timeout = max(stop_timeout, drain_seconds + DRAIN_MARGIN_S)
        self.models = models if models is not None else list(io_spec.SERVED)
        # gRPC over TLS (security.ServerTls); the admin key restricts model control, shared memory,
        # statistics, trace and logging to requests carrying it (security.restricted_arguments)
        self.tls, self.admin_key = tls, admin_key
        self.process: subprocess.Popen | None = None

    grpc_url = property(lambda self: f"{self.host}:{self.grpc_port}")
    http_url = property(lambda self: f"http://{self.host}:{self.http_port}")
    metrics_url = property(lambda self: f"http://{self.host}:{self.metrics_port}/metrics")

    def __enter__(self) -> "TritonServer":
        self.start()
        try:
            self.wait_ready()
            if self.settle:
                self.wait_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def command(self) -> list[str]:
        return [
            str(pytriton_dir() / "tritonserver" / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={ensure_backend_dir(self.backend_dir)}",
            f"--http-address={self.host}",
            f"--grpc-address={self.host}",  # loopback; the default is 0.0.0.0
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--disable-auto-complete-config",  # serve the committed configs exactly
            "--log-info=true",
            *([f"--exit-timeout-secs={math.ceil(self.drain_seconds)}"] if self.drain_seconds is not None else []),
            *(self.tls.arguments() if self.tls is not None else []),
            *(restricted_arguments(self.admin_key) if self.admin_key is not None else []),
        ]

    def start(self) -> None:
        if self.process is not None:
            raise ServerError("server already started")
        with open(self.log_path, "wb") if self.log_path else contextlib.nullcontext() as out:
            self.process = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=server_environment(),
                start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop it in order
            )
        log.info(
            "tritonserver pid %d: grpc %s, http %s, log %s",
            self.process.pid,
            self.grpc_url,
            self.http_url,
            self.log_path or "stdout",
        )

    def wait_ready(self, timeout: float | None = None) -> None:
        """Until the server, each model and the metrics endpoint answer; ServerError with the log tail if
        it exits or the time runs out."""
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        paths = ["/v2/health/ready", *(f"/v2/models/{m}/ready" for m in self.models)]
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ServerError(f"tritonserver exited with code {code}\n{self.log_tail()}")
            if all(self._get(self.http_url + p) for p in paths) and self._get(self.metrics_url):
                return
            time.sleep(0.25)
        raise ServerError(f"tritonserver not ready after {timeout or self.startup_timeout:.0f} s\n{self.log_tail()}")

    def wait_idle(self, cores: float = 0.2, window_s: float = 0.5, timeout: float = 120.0) -> float:
        """Until the server and its stubs use under `cores` CPU over `window_s` (ready comes before the
        models' larger batches are compiled in the background, `runtime.OpenVinoRunner`): benchmarks
        start on a quiet server. Returns the seconds waited; gives up quietly after `timeout`."""
        start = time.monotonic()
        used = process_tree_cpu_s(self.process.pid)
        while time.monotonic() - start < timeout:
            time.sleep(window_s)
            now = process_tree_cpu_s(self.process.pid)
            if now - used < cores * window_s:
                break
            used = now
        return time.monotonic() - start

    def stop(self) -> int | None:
        """SIGTERM (in-flight requests finish), SIGKILL after `stop_timeout`; returns the exit code."""
        proc, self.process = self.process, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                self._wait_draining(proc, self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver pid %d ignored SIGTERM for %.0f s; killing it", proc.pid, self.stop_timeout)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode

    def kill(self) -> int | None:
        """SIGKILL to the server and its backend stubs (a crash, or the end of a pod's grace period),
        then the python backend's shared-memory regions they leave in /dev/shm are removed (nobody
        else unlinks them: each crash would leak its regions, several MB each)."""
        proc, self.process = self.process, None
        if proc is None:
            return None
        regions = shm_regions(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the group is the server and its stubs
        except ProcessLookupError:
            pass
        proc.wait(30)
        for region in regions:
            with contextlib.suppress(FileNotFoundError):
                region.unlink()
        return proc.returncode

    def _wait_draining(self, proc: subprocess.Popen, timeout: float, every: float = 10.0) -> None:
        """Wait for the exit; while it drains, log the live sessions every `every` s (the metrics
        endpoint stays up until the end)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                proc.wait(min(every, max(deadline - time.monotonic(), 0.0)))
                return
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    raise
            try:
                live = sum(v for k, v in self.metrics().items() if k.startswith(ACTIVE_SESSIONS + "{"))
                log.info("tritonserver pid %d draining: %d live call sessions", proc.pid, live)
            except OSError:
                log.info("tritonserver pid %d draining", proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        """The log's error lines (Triton prints the cause early, the shutdown noise last) and its tail."""
        if self.log_path is None:
            return "(the server logs to stdout)"
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        errors = [line for line in text if ERROR_LINE.match(line)][:20]
        tail = text[-lines:]
        return "\n".join(["--- tritonserver log: errors ---", *errors, "--- tritonserver log tail ---", *tail])

    @staticmethod
    def _get(url: str, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def metrics(self) -> dict[str, float]:
        """Prometheus metrics as {'name{labels}': value}."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return parse_metrics(resp.read().decode())

    def rss_bytes(self) -> int:
        """Resident memory of the server and its backend stubs (all descendants)."""
        if self.process is None:
            raise ServerError("server not running")
        return process_tree_rss(self.process.pid)


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def model_metric(metrics: dict[str, float], name: str, model: str) -> float:
    """Sum of metric `name` over the versions of `model`."""
    return sum(v for k, v in metrics.items() if k.startswith(name + "{") and f'model="{model}"' in k)


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


SHM_REGION = re.compile(r"triton_python_backend_shm_region_[0-9a-f-]+")


def shm_regions(pid: int) -> list[Path]:
    """The /dev/shm regions of the python-backend stubs under server `pid` (named on their command line)."""
    names = set()
    for p in descendants(pid):
        try:
            names.update(SHM_REGION.findall(Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")))
        except OSError:
            continue
    return [Path("/dev/shm") / n for n in sorted(names)]


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and every live descendant (Linux /proc)."""
    total, tick = 0, os.sysconf("SC_CLK_TCK")
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def process_tree_rss(pid: int) -> int:
    """RSS in bytes of `pid` and every descendant (Linux /proc)."""
    total, page = 0, os.sysconf("SC_PAGE_SIZE")
    for p in descendants(pid):
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total
