"""docs/kubernetes.md matches the manifests: every file it lists exists, every number it states is the
rendered one, and its simulated day is what `make k8s-sim` computes now."""

from __future__ import annotations

import re

import pytest

from facecodec.tools import k8s_sim as sim

from .test_manifests import deployment, server_container, skip_annotations
from .tools import K8S, REPO, find, rendered

DOC = " ".join((REPO / "docs" / "kubernetes.md").read_text().split())  # line breaks are not content


def test_every_manifest_is_in_the_table_and_exists():
    listed = set(re.findall(r"`((?:base|monitoring|overlays/[*a-z]+)/[a-z-]+\.(?:yaml|env))`", DOC))
    expanded = {p.replace("overlays/*", f"overlays/{o}") for p in listed for o in ("cpu", "gpu")}
    on_disk = {str(p.relative_to(K8S)) for p in K8S.rglob("*") if p.suffix in (".yaml", ".env")
               and p.name != "kustomization.yaml"}
    assert on_disk <= expanded, f"not in docs/kubernetes.md: {sorted(on_disk - expanded)}"
    assert {p for p in listed if "*" not in p} <= on_disk  # nothing listed that is gone


@pytest.mark.parametrize("overlay", ["cpu", "gpu"], ids=["overlays/cpu", "overlays/gpu"])
def test_the_numbers_are_the_manifests(overlay):
    docs = rendered(overlay)
    spec = deployment(overlay)["spec"]["template"]["spec"]
    config = find(docs, "ConfigMap", "facecodec-server")["data"]
    drain, grace = config["FACECODEC_DRAIN_SECONDS"], spec["terminationGracePeriodSeconds"]
    pre_stop = server_container(overlay)["lifecycle"]["preStop"]["exec"]["command"][1]
    assert f"`FACECODEC_DRAIN_SECONDS` ({drain})" in DOC and f"(`FACECODEC_DRAIN_SECONDS`, {drain} s)" in DOC
    assert f"`terminationGracePeriodSeconds` ({grace} s = preStop {pre_stop} s + drain {drain} s" in DOC
    assert f"`sleep {pre_stop}`" in DOC
    hpa = find(docs, "HorizontalPodAutoscaler")["spec"]
    label = "CPU" if overlay == "cpu" else "GPU"
    assert f"{label} {hpa['minReplicas']}–{hpa['maxReplicas']}" in DOC
    targets = {m["pods"]["metric"]["name"]: m["pods"]["target"]["averageValue"] for m in hpa["metrics"]
               if m["type"] == "Pods"}
    sessions, queue = targets["facecodec_active_sessions"], targets["facecodec_decoder_queue_ms"]
    assert (f"target {sessions}" in DOC) or (f"{sessions} on GPU" in DOC), sessions
    assert f"{queue} ms on {label}" in DOC, queue
    (cpu,) = [m for m in hpa["metrics"] if m["type"] == "Resource"]
    assert f"({cpu['resource']['target']['averageUtilization']} % utilisation)" in DOC
    down = hpa["behavior"]["scaleDown"]
    assert f"{down['stabilizationWindowSeconds']} s: the highest recommendation" in DOC
    args = config["FACECODEC_SERVING_ARGS"].split()
    cap = int(args[args.index("--max-sessions") + 1]) * (
        int(args[args.index("--decoder-instances") + 1]) if "--decoder-instances" in args else 1)
    assert f"{cap} per {label} pod" in DOC


def test_checkov_skips_are_the_documented_ones():
    documented = set(re.findall(r"\*\*(CKV2?_K8S_\d+)\*\*", DOC))
    assert documented == set(skip_annotations(rendered("cpu"))) == set(skip_annotations(rendered("gpu")))


def test_the_simulated_day_is_the_current_one():
    docs = list(rendered("cpu"))
    capacity = sim.Capacity.load(K8S / "capacity.json")
    trace = sim.Trace()
    result = sim.run(docs, capacity, trace, pod_start_s=90)
    table = sim.table(result, sim.pod_capacity(capacity, docs), trace, sim.Cluster.from_manifests(docs, 90))
    rows = [" ".join(line.split()) for line in table.splitlines() if line.startswith("| ")]
    for row in rows:
        assert row in DOC, f"docs/kubernetes.md is stale: rerun `make k8s-sim` and copy its table\n{row}"
