"""k8s/ as an API server and a reviewer would see it: both overlays render (kubectl kustomize), pass
kubernetes-validate --strict on three Kubernetes versions, the prometheus-operator CRD schemas and
checkov (every skip explained), and hold together (selectors, ports, targets) the way only a live
cluster would otherwise tell."""

from __future__ import annotations

import json
import re

import pytest

from facecodec.serving import metrics

from .tools import OVERLAY_IDS, OVERLAYS, find, rendered, rendered_yaml, run, tool

VERSIONS = ("1.31.0", "1.34.0", "1.37.0")
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
POD = ("app.kubernetes.io/component", "triton")


def deployment(overlay):
    return find(rendered(overlay), "Deployment", "facecodec-triton")


def server_container(overlay):
    (c,) = [c for c in deployment(overlay)["spec"]["template"]["spec"]["containers"] if c["name"] == "tritonserver"]
    return c


def selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels", "matchExpressions"}
    assert not selector.get("matchExpressions"), "only matchLabels are used here"
    match = selector.get("matchLabels", selector if "matchLabels" not in selector else {})
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_overlay_renders_every_object(overlay):
    kinds = sorted(d["kind"] for d in rendered(overlay))
    assert kinds == sorted([
        "Namespace", "ServiceAccount", "ConfigMap", "ConfigMap", "Deployment", "Service", "Service",
        "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor", "PrometheusRule",
    ])
    namespaces = {d["metadata"].get("namespace") for d in rendered(overlay) if d["kind"] != "Namespace"}
    assert namespaces == {"facecodec", "monitoring"}  # the adapter's rules live with the adapter


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_kubernetes_validate_strict(overlay, version, tmp_path):
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(rendered_yaml(overlay))
    result = run([tool("kubernetes-validate"), "-k", version, "--strict", "--quiet", path])
    assert result.returncode == 0, result.stdout + result.stderr
    # the only objects it has no schema for are the CRDs, which test_crds_match_their_schemas checks
    unknown = set(re.findall(r"Couldn't find schema for kind (\w+)", result.stdout + result.stderr))
    assert unknown <= CRD_KINDS


def test_kubernetes_validate_rejects_a_typo(tmp_path):
    """The validator is live: a misspelt HPA field fails (strict mode)."""
    path = tmp_path / "typo.yaml"
    path.write_text(rendered_yaml("cpu").replace("averageValue:", "averageValu:", 1))
    result = run([tool("kubernetes-validate"), "-k", VERSIONS[-1], "--strict", "--quiet", path])
    assert result.returncode != 0 and "averageValu" in result.stdout + result.stderr


CRD_CHECK = r"""
import json, sys
from cloudcoil.models.prometheus_operator import v1
problems = []
def walk(given, kept, path):
    if isinstance(given, dict):
        for k, v in given.items():
            if not isinstance(kept, dict) or k not in kept:
                problems.append(f"{path}.{k}: not in the CRD schema")
            else:
                walk(v, kept[k], f"{path}.{k}")
    elif isinstance(given, list):
        for i, (g, k) in enumerate(zip(given, kept)):
            walk(g, k, f"{path}[{i}]")
for doc in json.load(sys.stdin):
    model = getattr(v1, doc["kind"])
    try:
        obj = model.model_validate(doc)
    except Exception as err:
        problems.append(f"{doc['kind']}: {err}")
        continue
    walk(doc, obj.model_dump(by_alias=True, exclude_unset=True, mode="json"), doc["kind"])
print("\n".join(problems))
sys.exit(1 if problems else 0)
"""


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_crds_match_their_schemas(overlay):
    """ServiceMonitor and PrometheusRule against prometheus-operator's CRD schemas (the models of
    cloudcoil-models-prometheus-operator, generated from them): patterns, types, and no unknown field."""
    docs = [d for d in rendered(overlay) if d["kind"] in CRD_KINDS]
    assert {d["kind"] for d in docs} == CRD_KINDS
    result = run([tool("python"), "-c", CRD_CHECK], input=json.dumps(docs))
    assert result.returncode == 0, result.stdout + result.stderr
    typo = json.loads(json.dumps(docs))
    typo[0]["spec"]["endpoints" if typo[0]["kind"] == "ServiceMonitor" else "groups"][0]["intervall"] = "15s"
    assert run([tool("python"), "-c", CRD_CHECK], input=json.dumps(typo)).returncode == 1  # the check is live


def skip_annotations(docs) -> dict[str, str]:
    out = {}
    for d in docs:
        for key, value in d["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                out[check] = reason
    return out


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_checkov_passes_and_every_skip_is_explained(overlay, tmp_path):
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(rendered_yaml(overlay))
    result = run([tool("checkov"), "-f", path, "--framework", "kubernetes", "--quiet", "--skip-download", "-o", "json"])
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report.get("results", {}).get("failed_checks", [])]
    assert result.returncode == 0 and not failed, failed
    summary = report["summary"]
    assert summary["passed"] >= 80 and summary["parsing_errors"] == 0
    skips = skip_annotations(rendered(overlay))
    assert summary["skipped"] == len(skips) == 2
    for check, reason in skips.items():
        assert re.fullmatch(r"CKV2?_K8S_\d+", check) and len(reason.split()) >= 15, (check, reason)


# --- what only an API server (or a running cluster) would catch ---------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_selectors_match_the_pods(overlay):
    docs = rendered(overlay)
    dep = deployment(overlay)
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pod_labels[POD[0]] == POD[1]
    assert selects(dep["spec"]["selector"], pod_labels)
    for service in (d for d in docs if d["kind"] == "Service"):
        assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels), service["metadata"]["name"]
    assert selects(find(docs, "PodDisruptionBudget")["spec"]["selector"], pod_labels)
    assert selects(find(docs, "NetworkPolicy")["spec"]["podSelector"], pod_labels)
    # the ServiceMonitor selects exactly the metrics Service, by its labels, in the app's namespace
    monitor = find(docs, "ServiceMonitor")
    services = [d for d in docs if d["kind"] == "Service"]
    chosen = [s for s in services if selects(monitor["spec"]["selector"], s["metadata"]["labels"])]
    assert [s["metadata"]["name"] for s in chosen] == ["facecodec-metrics"]
    assert monitor["metadata"]["namespace"] == chosen[0]["metadata"]["namespace"]
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in chosen[0]["spec"]["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_service_and_probe_ports_exist_on_the_container(overlay):
    docs = rendered(overlay)
    container = server_container(overlay)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    for service in (d for d in docs if d["kind"] == "Service"):
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (service["metadata"]["name"], port)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    grpc = find(docs, "Service", "facecodec")["spec"]["ports"]
    assert [(p["name"], p["targetPort"]) for p in grpc] == [("grpc", "grpc")]  # clients get gRPC only


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_pdb_and_hpa_target_the_deployment(overlay):
    docs = rendered(overlay)
    dep = deployment(overlay)
    pdb = find(docs, "PodDisruptionBudget")["spec"]
    assert ("minAvailable" in pdb) != ("maxUnavailable" in pdb)
    assert isinstance(pdb.get("maxUnavailable", pdb.get("minAvailable")), int)  # the validator lets "one" pass
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"  # a stuck or draining pod never blocks a node drain
    hpa = find(docs, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (dep["apiVersion"], dep["kind"], dep["metadata"]["name"])
    assert hpa["metadata"]["namespace"] == dep["metadata"]["namespace"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in dep["spec"]  # the HPA owns it; `kubectl apply` would reset it otherwise
    # a PDB that allows one disruption with the HPA's minimum keeps one pod serving
    assert hpa["spec"]["minReplicas"] - pdb["maxUnavailable"] >= 1


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_network_policy_admits_clients_to_grpc_and_monitoring_to_metrics(overlay):
    policy = find(rendered(overlay), "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    rules = {}
    for rule in policy["ingress"]:
        (source,) = rule["from"]
        assert set(source) == {"namespaceSelector"}  # whole namespaces, no pod selector combined
        namespace = source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        rules[namespace] = sorted(p["port"] for p in rule["ports"])
    assert rules == {"facecodec-clients": ["grpc"], "monitoring": ["metrics"]}
    container_ports = {p["name"] for p in server_container(overlay)["ports"]}
    assert {p for ports in rules.values() for p in ports} <= container_ports


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_pod_is_locked_down(overlay):
    spec = deployment(overlay)["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] >= 10000
    assert spec["automountServiceAccountToken"] is False
    for c in spec["containers"] + spec["initContainers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert c["resources"]["requests"] == c["resources"]["limits"], c["name"]  # Guaranteed QoS
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    mounts = {m["mountPath"]: m for m in server_container(overlay)["volumeMounts"]}
    assert mounts["/dev/shm"]["name"] == "dshm"
    assert mounts["/models"]["readOnly"] is True  # the repository the init container rendered
    (init,) = spec["initContainers"]
    assert any(m["mountPath"] == "/models" and not m.get("readOnly") for m in init["volumeMounts"])


TLS_DIR, ADMIN_DIR = "/etc/facecodec/tls", "/etc/facecodec/admin"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_grpc_speaks_tls_and_the_admin_protocols_need_the_key(overlay):
    """The server reads its certificate and the admin key from Secrets mounted read-only (made by the
    operator: no Secret object, no key material in k8s/), and is told to use them."""
    docs = rendered(overlay)
    assert not [d for d in docs if d["kind"] == "Secret"]
    assert "PRIVATE KEY" not in rendered_yaml(overlay)
    spec = deployment(overlay)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "facecodec-tls" and not volumes["tls"]["secret"].get("optional")
    assert volumes["admin-key"]["secret"]["secretName"] == "facecodec-admin"
    container = server_container(overlay)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[TLS_DIR] == {"name": "tls", "mountPath": TLS_DIR, "readOnly": True}
    assert mounts[ADMIN_DIR] == {"name": "admin-key", "mountPath": ADMIN_DIR, "readOnly": True}
    words = container.get("command", []) + container.get("args", [])
    command = " ".join(words)
    if overlay == "cpu":  # the launcher's flags (python -m facecodec.serving serve)
        for flag, path in (("--tls-cert", f"{TLS_DIR}/tls.crt"), ("--tls-key", f"{TLS_DIR}/tls.key"),
                           ("--admin-key-file", f"{ADMIN_DIR}/admin-key")):
            assert words[words.index(flag) + 1] == path, command
    else:  # tritonserver's own flags; the entrypoint turns the key file into the restricted-protocol flags
        assert {"--grpc-use-ssl=true", f"--grpc-server-cert={TLS_DIR}/tls.crt",
                f"--grpc-server-key={TLS_DIR}/tls.key"} <= set(words)
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["FACECODEC_ADMIN_KEY_FILE"] == f"{ADMIN_DIR}/admin-key"
    (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "facecodec"]
    assert all(p.get("appProtocol") != "kubernetes.io/h2c" for p in service["spec"]["ports"])  # not clear text


def test_gpu_overlay_asks_for_a_gpu_and_tolerates_its_nodes():
    spec = deployment("gpu")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    for c in spec["containers"] + spec["initContainers"]:  # the engines are built on the GPU too
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in json.dumps(deployment("cpu"))
    assert "facecodec-gpu" in server_container("gpu")["image"] and "facecodec-cpu" in server_container("cpu")["image"]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_drain_window_fits_the_grace_period(overlay):
    """terminationGracePeriodSeconds covers preStop, the drain window the server is given, and its stop."""
    docs = rendered(overlay)
    config = find(docs, "ConfigMap", "facecodec-server")["data"]
    drain = float(config["FACECODEC_DRAIN_SECONDS"])
    spec = deployment(overlay)["spec"]["template"]["spec"]
    container = server_container(overlay)
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    command = " ".join(container.get("command", []) + container.get("args", []))
    # the server's drain window is the ConfigMap's value, by reference
    assert re.search(r"(--drain-seconds|--exit-timeout-secs=?)\s*\$\(FACECODEC_DRAIN_SECONDS\)", command), command
    generated = find(docs, "ConfigMap", "facecodec-server")["metadata"]["name"]
    assert generated != "facecodec-server"  # a hash in the name: changing a flag rolls the pods
    assert {"configMapRef": {"name": generated}} in container["envFrom"]
    (ref,) = [e["valueFrom"]["configMapKeyRef"] for e in container["env"] if e["name"] == "FACECODEC_DRAIN_SECONDS"]
    assert ref == {"name": generated, "key": "FACECODEC_DRAIN_SECONDS"}  # named for the $(...) expansion
    assert spec["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + drain + 15
    # readiness fails within one period once the server drains
    assert container["readinessProbe"]["failureThreshold"] * container["readinessProbe"]["periodSeconds"] <= 5


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_hpa_metrics_come_from_the_adapter_rules_and_the_recording_rules(overlay):
    docs = rendered(overlay)
    hpa = find(docs, "HorizontalPodAutoscaler")["spec"]
    custom = {m["pods"]["metric"]["name"] for m in hpa["metrics"] if m["type"] == "Pods"}
    assert custom == {"facecodec_active_sessions", "facecodec_decoder_queue_ms"}
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["metrics"])  # the fallback
    from .tools import yaml_to_json

    adapter = yaml_to_json(find(docs, "ConfigMap", "facecodec-adapter-rules")["data"]["config.yaml"])["rules"]
    assert {r["name"]["as"] for r in adapter} == custom
    recorded = {r["record"]: r["expr"] for g in find(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}
    for rule in adapter:
        series = re.match(r"([a-z_:]+)\{", rule["seriesQuery"]).group(1)
        assert series in recorded and re.fullmatch(rule["name"]["matches"], series)
        assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    exprs = " ".join(recorded.values())
    for name in (metrics.ACTIVE_SESSIONS, metrics.QUEUE_DURATION_US, metrics.REQUEST_SUCCESS):
        assert name in exprs
    for expr in recorded.values():
        assert "by (namespace, pod)" in expr  # one series per pod, what the adapter maps
    behavior = hpa["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300 and behavior["scaleUp"]["policies"]
