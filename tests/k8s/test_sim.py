"""`make k8s-sim`: the HPA algorithm as kube-controller-manager implements it, case by case, and the
day the rendered CPU overlay's HPA scales through (issue 20's acceptance 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facecodec.tools import k8s_sim as sim
from facecodec.tools.k8s_sim import Hpa, HpaController, Policy, Rules, metric_replicas

from .tools import REPO, find, rendered

CAPACITY = REPO / "k8s" / "capacity.json"


def pods(*values):
    return {f"p{i}": v for i, v in enumerate(values)}


def test_desired_is_ready_pods_times_metric_over_target():
    assert metric_replicas(pods(6, 6, 6, 6), target=3, current=4) == 8
    assert metric_replicas(pods(1, 2), target=3, current=2) == 1  # ceil(2 × 1.5 / 3)


def test_no_change_within_the_tolerance():
    assert metric_replicas(pods(3.3, 3.3), target=3, current=2) == 2  # ratio 1.1
    assert metric_replicas(pods(3.4, 3.4), target=3, current=2) == 3


def test_missing_pods_count_as_zero_on_scale_up_and_as_the_target_on_scale_down():
    # scale up: two pods at 6, two starting ones count 0 → ratio 1.0 → no change
    assert metric_replicas(pods(6, 6, None, None), target=3, current=4) == 4
    # ... at 9 the recomputed ratio (18 / 4 / 3 = 1.5) still scales up, on all 4 pods
    assert metric_replicas(pods(9, 9, None, None), target=3, current=4) == 6
    # scale down: idle pods, two missing ones count as the target → ratio 0.5 → 2
    assert metric_replicas(pods(0, 0, None, None), target=3, current=4) == 2
    assert metric_replicas(pods(None, None), target=3, current=2) is None  # nothing to go on


def test_a_recomputed_ratio_that_flips_direction_means_no_change():
    # ratio 1.2 (scale up) but with the missing pod at 0 it is 0.8 (down): unchanged
    assert metric_replicas(pods(3.6, 3.6, None), target=3, current=3) == 3


def hpa(**kw) -> Hpa:
    up = Rules(0, "Max", (Policy("Percent", 100, 60), Policy("Pods", 4, 60)))
    down = Rules(300, "Min", (Policy("Pods", 1, 120),))
    return Hpa(kw.get("min_replicas", 2), kw.get("max_replicas", 20), {"s": 3.0}, kw.get("up", up),
               kw.get("down", down))


def test_scale_up_follows_the_policies_and_their_periods():
    c = HpaController(hpa())
    assert c.desired(0, 2, {"s": pods(30, 30)}) == 6  # max(2 + 4 pods, 2 × 200 %) = 6, not 20
    assert c.desired(15, 6, {"s": pods(30, 30, 30, 30, 30, 30)}) == 6  # the 60 s period is spent
    assert c.desired(61, 6, {"s": pods(30, 30, 30, 30, 30, 30)}) == 12  # a new period: 100 % of 6


def test_scale_down_waits_for_the_stabilisation_window_then_goes_one_pod_per_period():
    c = HpaController(hpa())
    busy, idle = {"s": pods(*[3.0] * 8)}, {"s": pods(*[0.0] * 8)}
    assert c.desired(0, 8, busy) == 8
    assert c.desired(15, 8, idle) == 8  # the window still holds the recommendation of 8
    assert c.desired(299, 8, idle) == 8  # (a recommendation counts while strictly inside the window)
    assert c.desired(316, 8, idle) == 7  # window passed: one pod (selectPolicy Min, 1 pod / 120 s)
    assert c.desired(331, 7, {"s": pods(*[0.0] * 7)}) == 7
    assert c.desired(437, 7, {"s": pods(*[0.0] * 7)}) == 6


def test_bounds_clamp_the_decision():
    c = HpaController(hpa(max_replicas=5))
    assert c.desired(0, 2, {"s": pods(30, 30)}) == 5
    assert HpaController(hpa()).desired(0, 2, {"s": pods(0, 0)}) == 2  # minReplicas


def test_the_simulated_hpa_is_the_rendered_one():
    docs = rendered("cpu")
    manifest = find(docs, "HorizontalPodAutoscaler")
    h = Hpa.from_manifest(manifest)
    spec = manifest["spec"]
    assert (h.min_replicas, h.max_replicas) == (spec["minReplicas"], spec["maxReplicas"])
    assert set(h.targets) == {"facecodec_active_sessions", "facecodec_decoder_queue_ms", "cpu"}
    assert h.down.window_s == spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
    assert h.up.select == spec["behavior"]["scaleUp"]["selectPolicy"]
    cluster = sim.Cluster.from_manifests(list(docs), pod_start_s=90)
    config = find(docs, "ConfigMap", "facecodec-server")["data"]
    assert cluster.drain_s == float(config["FACECODEC_DRAIN_SECONDS"])


def test_capacity_is_one_file_and_the_manifests_agree_with_it():
    figure = json.loads(CAPACITY.read_text())
    capacity = sim.Capacity.load(CAPACITY)
    assert figure["placeholder"] is False and figure["source"].startswith("measured by")  # the measured figure
    docs = list(rendered("cpu"))
    pod = sim.pod_capacity(capacity, docs)
    h = Hpa.from_manifest(find(docs, "HorizontalPodAutoscaler"))
    # the HPA keeps pods below what they hold; the session cap is what they hold
    assert h.targets["facecodec_active_sessions"] <= 0.85 * pod.calls
    assert sim.Cluster.from_manifests(docs, 90).max_sessions <= pod.calls + 1


@pytest.fixture(scope="module")
def day():
    docs = list(rendered("cpu"))
    capacity = sim.Capacity.load(CAPACITY)
    trace = sim.Trace()
    return sim.run(docs, capacity, trace, pod_start_s=90), trace


def test_a_day_holds_the_slo_with_fewer_pod_hours_and_drops_no_call(day, tmp_path):
    result, trace = day
    assert result.queue_ms_p95 <= result.queue_target_ms
    assert result.pod_hours < result.fixed_pod_hours
    assert result.dropped == 0 and result.refused == 0
    assert max(s.replicas for s in result.steps) > min(s.replicas for s in result.steps)  # it did scale
    sim.plot(result, tmp_path / "k8s-sim.png")
    assert (tmp_path / "k8s-sim.png").stat().st_size > 10_000


def test_make_k8s_sim_writes_the_plot_and_the_table(tmp_path):
    manifests = tmp_path / "cpu.json"
    manifests.write_text(json.dumps(list(rendered("cpu"))))
    assert sim.main(["--manifests", str(manifests), "--capacity", str(CAPACITY), "--out", str(tmp_path)]) == 0
    table = (tmp_path / "k8s-sim.md").read_text()
    assert "| pod-hours |" in table and "held" in table
    assert json.loads((tmp_path / "k8s-sim.json").read_text())["dropped"] == 0
    assert Path(tmp_path / "k8s-sim.png").is_file()
