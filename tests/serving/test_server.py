"""`TritonServer` itself: failures come with the server's log, ports are free, memory is measurable."""

from __future__ import annotations

import os

import pytest

from facecodec.serving.server import ServerError, TritonServer, free_ports, parse_metrics, process_tree_rss

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
