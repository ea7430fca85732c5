"""The decoder's own metrics on Triton's `/metrics`, through the python backend's metrics API, and
the metric names the Kubernetes autoscaler reads, in one place.

Next to Triton's per-model counters and durations, the session model reports what an autoscaler and
an operator need about calls:

| metric | kind | what |
| --- | --- | --- |
| `facecodec_decoder_active_sessions` | gauge | live call sessions in this decoder instance |
| `facecodec_frames_decoded_total` | counter | frames rendered |
| `facecodec_frames_dropped_total` | counter | frames the receivers skipped, newer motion having arrived (1) |
| `facecodec_render_seconds` | histogram | time to decode one batch of frames (the model's `execute`) |
| `facecodec_stage_seconds_total{stage}` | counter | time per stage (2) |

(1) each request carries its receiver's count since its last request in the `dropped` request parameter.
(2) `source` (new sources: the appearance encoder), `keypoints`, `expression_flow`, `warp`.
Every metric carries the labels `model`, `version` and `instance`. The API exists only inside the
backend stub, so `pb_utils` is passed in. k8s/base/prometheusrule.yaml records the autoscaler's
names per pod; tests/k8s holds the manifests to these constants.
"""

from __future__ import annotations

import json

# live call sessions held by one decoder instance (the autoscaler's per-pod metric)
ACTIVE_SESSIONS = "facecodec_decoder_active_sessions"
# Triton's own per-model families the autoscaler uses (always on /metrics, CPU and GPU)
QUEUE_DURATION_US = "nv_inference_queue_duration_us"
REQUEST_SUCCESS = "nv_inference_request_success"

RENDER_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
DROPPED_PARAMETER = "dropped"


def dropped_frames(request) -> int:
    """The `dropped` request parameter (0 when absent or malformed)."""
    try:
        value = json.loads(request.parameters() or "{}").get(DROPPED_PARAMETER, 0)
        return max(int(value), 0)
    except (ValueError, TypeError, AttributeError):
        return 0


class DecoderMetrics:
    """The metric families and their one labelled metric each (families must outlive metrics)."""

    def __init__(self, pb_utils, labels: dict[str, str], stages: tuple[str, ...]):
        family = pb_utils.MetricFamily
        self.families = {
            "sessions": family(ACTIVE_SESSIONS, "Live call sessions held by this decoder instance", family.GAUGE),
            "decoded": family("facecodec_frames_decoded_total", "Frames rendered", family.COUNTER),
            "dropped": family("facecodec_frames_dropped_total",
                              "Frames the receivers skipped because newer motion had arrived", family.COUNTER),
            "render": family("facecodec_render_seconds", "Time to decode one batch of frames", family.HISTOGRAM),
            "stage": family("facecodec_stage_seconds_total", "Decoder time per stage", family.COUNTER),
        }
        self.sessions = self.families["sessions"].Metric(labels=labels)
        self.decoded = self.families["decoded"].Metric(labels=labels)
        self.dropped = self.families["dropped"].Metric(labels=labels)
        self.render = self.families["render"].Metric(labels=labels, buckets=list(RENDER_BUCKETS))
        self.stages = {s: self.families["stage"].Metric(labels={**labels, "stage": s}) for s in stages}
        self._seconds = dict.fromkeys(stages, 0.0)

    def record(self, *, sessions: int, decoded: int, dropped: int, batch_seconds: float,
               stage_seconds: dict[str, float]) -> None:
        """After one `execute`: the live sessions, frames rendered and dropped in it, its duration,
        and the store's running stage totals (only their growth is added)."""
        self.sessions.set(sessions)
        if decoded:
            self.decoded.increment(decoded)
        if dropped:
            self.dropped.increment(dropped)
        self.render.observe(batch_seconds)
        for stage, metric in self.stages.items():
            total = stage_seconds.get(stage, 0.0)
            if total > self._seconds[stage]:
                metric.increment(total - self._seconds[stage])
                self._seconds[stage] = total
