"""The metrics pipeline behind the HPA, with real tools: the recording rules unit-tested by
`promtool test rules`, and evaluated by a real Prometheus scraping a real tritonserver during a call;
every metric the rules (so the adapter and the HPA) name is on the server's /metrics meanwhile, and
the probes' paths answer there."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

from facecodec.client import calls
from facecodec.serving.metrics import ACTIVE_SESSIONS
from facecodec.serving.server import free_ports, model_metric

from .tools import find, rendered, run, tool

HERE = __import__("pathlib").Path(__file__).resolve().parent


def recording_rules(interval: str | None = None) -> dict:
    """The PrometheusRule's groups as a Prometheus rule file (JSON is YAML)."""
    groups = json.loads(json.dumps(find(rendered("cpu"), "PrometheusRule")["spec"]["groups"]))
    for group in groups:
        if interval:
            group["interval"] = interval
    return {"groups": groups}


def raw_metrics() -> set[str]:
    """Metrics of the server the recording rules read (the HPA's and the adapter's, through them)."""
    exprs = " ".join(r["expr"] for g in recording_rules()["groups"] for r in g["rules"])
    return set(re.findall(r"\b((?:nv|facecodec)_[a-z_]+)\b", exprs))


def test_recording_rules_pass_promtool(tmp_path):
    (tmp_path / "rules.yml").write_text(json.dumps(recording_rules()))
    shutil.copy(HERE / "rules_test.yml", tmp_path / "rules_test.yml")
    check = run([tool("promtool"), "check", "rules", tmp_path / "rules.yml"])
    assert check.returncode == 0, check.stdout + check.stderr
    result = run([tool("promtool"), "test", "rules", tmp_path / "rules_test.yml"])
    assert result.returncode == 0 and "SUCCESS" in result.stdout + result.stderr, result.stdout + result.stderr


def test_promtool_test_is_live(tmp_path):
    """A wrong expectation fails: the unit test compares values."""
    (tmp_path / "rules.yml").write_text(json.dumps(recording_rules()))
    (tmp_path / "rules_test.yml").write_text((HERE / "rules_test.yml").read_text().replace("value: 10", "value: 11"))
    assert run([tool("promtool"), "test", "rules", tmp_path / "rules_test.yml"]).returncode != 0


def get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


@pytest.mark.triton
def test_probe_paths_answer_on_the_real_server(triton):
    container = find(rendered("cpu"), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    ports = {"http": triton.http_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = container[probe]["httpGet"]
        status, _ = get(f"http://{triton.host}:{ports[http['port']]}{http['path']}")
        assert status == 200, probe


class Prometheus:
    """A real Prometheus (Debian's) on loopback: scrapes `target` every second with the labels the
    ServiceMonitor's scrape would give, and evaluates the recording rules every second."""

    def __init__(self, tmp_path, target: str):
        (tmp_path / "rules.yml").write_text(json.dumps(recording_rules(interval="1s")))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "rules.yml")],
            "scrape_configs": [{
                "job_name": "facecodec-triton",
                "static_configs": [{"targets": [target], "labels": {"namespace": "facecodec", "pod": "triton-0"}}],
            }],
        }
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))
        (port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(tmp_path / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [str(tool("prometheus")), f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "prometheus exited"
            try:
                if get(self.url + "/-/ready", 1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("prometheus not ready")

    def query(self, expr: str, at: float | None = None) -> dict[str, float]:
        params = {"query": expr, **({"time": f"{at:.3f}"} if at else {})}
        _, body = get(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}")
        data = json.loads(body)["data"]
        return {r["metric"].get("pod", ""): float(r["value"][1]) for r in data["result"]}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


@pytest.mark.triton
def test_prometheus_evaluates_the_rules_on_a_real_server_during_a_call(triton, conn, stream_factory, tmp_path):
    # Triton creates a model's series at its first request: one short call first, so that the rate
    # windows below start from a sample taken before the measured call (a fresh pod's first minute
    # is "missing" to the HPA, which it treats as such)
    calls.decode(conn, stream_factory(0, 2))
    prometheus = Prometheus(tmp_path, f"{triton.host}:{triton.metrics_port}")
    try:
        prometheus.wait_ready()
        deadline = time.monotonic() + 30  # its first scrape comes a few seconds after it is ready
        while not prometheus.query('nv_inference_request_success{model="decoder"}') and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # samples before the call, so the rate windows cover all of it
        before = triton.metrics()
        stream = stream_factory(0, 24)
        done = threading.Event()
        seen_names, sessions_seen = set(), 0.0

        def decode():
            try:
                calls.decode(conn, stream)
            finally:
                done.set()

        t0 = time.time()
        thread = threading.Thread(target=decode, daemon=True)
        thread.start()
        while not done.is_set():
            now = triton.metrics()
            seen_names |= {k.split("{", 1)[0] for k in now}
            sessions_seen = max(sessions_seen, model_metric(now, ACTIVE_SESSIONS, "decoder"))
            time.sleep(0.3)
        thread.join(60)
        after = triton.metrics()

        # every metric the rules read was on /metrics during the call, the session gauge counted it
        assert raw_metrics() == {ACTIVE_SESSIONS, "nv_inference_queue_duration_us", "nv_inference_request_success"}
        assert raw_metrics() <= seen_names
        assert sessions_seen >= 1 and model_metric(after, ACTIVE_SESSIONS, "decoder") == 0  # END freed it

        # queue time per request: Prometheus's recorded series against the server's own counters
        time.sleep(2.5)  # a scrape and a rule evaluation after the last request
        recorded_sessions = prometheus.query("max_over_time(facecodec:active_sessions[1m])")["triton-0"]
        assert recorded_sessions >= 1  # Prometheus recorded the live session per pod
        assert time.time() - t0 < 50, "the call outlived the 1 min window; the comparison below needs it inside"
        delta = {
            name: model_metric(after, name, "decoder") - model_metric(before, name, "decoder")
            for name in ("nv_inference_queue_duration_us", "nv_inference_request_success")
        }
        assert delta["nv_inference_request_success"] == 24
        expected_ms = 1e-3 * delta["nv_inference_queue_duration_us"] / delta["nv_inference_request_success"]
        recorded = prometheus.query("facecodec:decoder_queue_ms")["triton-0"]
        assert math.isfinite(recorded) and recorded > 0
        assert recorded == pytest.approx(expected_ms, rel=0.1, abs=0.5), (recorded, expected_ms)
        print(f"\ndecoder queue per request: {recorded:.1f} ms recorded by Prometheus, {expected_ms:.1f} ms from "
              f"the server's counters; peak live sessions {sessions_seen:.0f}")
    finally:
        prometheus.stop()
