"""`TritonServer` itself: failures come with the server's log, ports are free, memory is measurable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from facecodec.serving.server import (
    ServerError,
    TritonServer,
    free_ports,
    parse_metrics,
    process_tree_cpu_s,
    process_tree_rss,
)

pytestmark = pytest.mark.triton


def test_a_broken_repository_fails_fast_with_the_log_tail(tmp_path):
    model = tmp_path / "repo" / "decoder"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text('name: "decoder"\nbackend: "python"\nno_such_field: 1\n')
    server = TritonServer(tmp_path / "repo", models=["decoder"], log_path=tmp_path / "log", startup_timeout=120)
    with pytest.raises(ServerError, match="exited with code 1") as info:
        with server:
            pass
    assert "log tail" in str(info.value) and "no_such_field" in str(info.value)
    assert server.process is None  # stopped and reaped


def test_helpers():
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(p > 0 for p in ports)
    assert process_tree_rss(os.getpid()) > 10 * 2**20
    metrics = parse_metrics('# HELP x\nnv_inference_count{model="decoder",version="1"} 12\n')
    assert metrics == {'nv_inference_count{model="decoder",version="1"}': 12.0}


def test_wait_idle_waits_for_the_busy_processes_then_returns(tmp_path):
    """`settle`: benchmarks start once the stubs' background compiles are done (a busy child here)."""
    busy = "import time\nend = time.monotonic() + 1.5\nwhile time.monotonic() < end: pass\ntime.sleep(60)"
    server = TritonServer(tmp_path, settle=True)
    server.process = subprocess.Popen([sys.executable, "-c", busy])
    try:
        waited = server.wait_idle(window_s=0.25, timeout=20)
        used = process_tree_cpu_s(server.process.pid)
        assert 1.2 <= waited <= 10 and used >= 1.0, (waited, used)
        assert server.process.poll() is None  # still running, now idle
    finally:
        server.process.kill()
        server.process.wait()
