"""Serving a repository: ONNX files put in place (exported if missing or stale), configs checked,
then a `TritonServer`. `make serve` and `make demo` run this through `python -m facecodec.serving`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from . import configs, repository
from .server import TritonServer
from .settings import ServingSettings, add_arguments

log = logging.getLogger(__name__)


def add_repository_arguments(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """--repository, --onnx and the serving settings: every command that serves (serve, the demo)."""
    p.add_argument("--repository", type=Path, required=required, help="model repository (configs + model.py)")
    p.add_argument("--onnx", type=Path, required=required, help="export directory (exported here if missing or stale)")
    add_arguments(p)


def prepare(
    template: Path, onnx_dir: Path, settings: ServingSettings, out: Path, *, weights: Path | None = None
) -> Path:
    """A servable repository at `out`: the export (made if missing or stale), configs rendered for
    `settings`, the model.py files. A pod's init container runs this; the server mounts `out` read-only."""
    repository.ensure_export(onnx_dir, settings.preset, weights=weights)
    return repository.stage(template, Path(out), onnx_dir, settings)


@contextlib.contextmanager
def prepared_repository(
    template: Path,
    onnx_dir: Path,
    settings: ServingSettings,
    *,
    weights: Path | None = None,
    checkpoint: Path | None = None,
) -> Iterator[Path]:
    """The repository to serve: `template` itself with the default settings (its committed configs
    must match their rendering), else a temporary copy rendered for `settings`."""
    repository.ensure_export(onnx_dir, settings.preset, weights=weights, checkpoint=checkpoint)
    if settings == ServingSettings():
        problems = configs.check(template, settings)
        if problems:
            raise ValueError(
                "committed configs differ from io_spec; run `python -m facecodec.serving.configs "
                "--write`:\n  " + "\n  ".join(problems)
            )
        repository.install(onnx_dir, template)
        yield Path(template)
        return
    with tempfile.TemporaryDirectory(prefix="facecodec-repo-") as tmp:
        yield repository.stage(template, Path(tmp), onnx_dir, settings)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a foreground `serve` the way Ctrl-C does, so the server is stopped in order."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def status_lines(server: TritonServer) -> list[str]:
    """What a started server offers; each line was checked by `wait_ready`."""
    return [
        f"gRPC     {server.grpc_url}" + ("  (TLS" + (", mutual" if server.tls.mutual else "") + ")"
                                          if server.tls is not None else "  (plain text)"),
        f"HTTP     {server.http_url}  (health: /v2/health/ready)",
        f"metrics  {server.metrics_url}",
        "models   " + ", ".join(f"{m} (ready)" for m in server.models),
        f"log      {server.log_path or 'stdout'}",
        "admin    model control, shared memory, statistics, trace, logging: "
        + ("only with the admin key header" if server.admin_key else "open to every client (no --admin-key-file)"),
        f"pid      {server.process.pid if server.process else '-'} (SIGTERM drains for up to "
        f"{server.drain_seconds if server.drain_seconds is not None else 30:g} s)",
    ]


def serve_forever(server: TritonServer) -> int:
    """Block until Ctrl-C/SIGTERM (then stop the server in order) or until the server dies."""
    with sigterm_as_interrupt():
        try:
            code = server.process.wait()
        except KeyboardInterrupt:
            log.info("stopping tritonserver")
            return server.stop() or 0
    raise RuntimeError(f"tritonserver exited with code {code}\n{server.log_tail()}")
