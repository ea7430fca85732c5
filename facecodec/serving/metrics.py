"""facecodec's own Prometheus metrics on Triton's /metrics, and their names in one place.

The Kubernetes autoscaler reads these names (k8s/base/prometheusrule.yaml records them per pod,
tests/k8s holds the manifests to these constants). The python backend's metrics API
(`pb_utils.MetricFamily`) exists only inside the backend stub; `SessionGauge` takes that module.
"""

from __future__ import annotations

# live call sessions held by one decoder instance (gauge; labels model, version, instance)
ACTIVE_SESSIONS = "facecodec_decoder_active_sessions"
# Triton's own per-model families the autoscaler uses (always on /metrics, CPU and GPU)
QUEUE_DURATION_US = "nv_inference_queue_duration_us"
REQUEST_SUCCESS = "nv_inference_request_success"


class SessionGauge:
    """The decoder's live-session gauge of one model instance; `set` after every batch."""

    def __init__(self, pb_utils, model: str, version: str, instance: str):
        self.family = pb_utils.MetricFamily(
            name=ACTIVE_SESSIONS,
            description="live call sessions held by this decoder instance",
            kind=pb_utils.MetricFamily.GAUGE,
        )
        self.metric = self.family.Metric(labels={"model": model, "version": version, "instance": instance})

    def set(self, sessions: int) -> None:
        self.metric.set(float(sessions))
