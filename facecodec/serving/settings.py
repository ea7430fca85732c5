"""Runtime settings of the served model repository, in one dataclass that also produces the CLI flags.

Architecture sizes come from the preset (versioned with the weights); everything here is how the
networks are served: instances, batching, the call-session limits, and ORT threads per instance.
The committed `model_repository/*/config.pbtxt` files are these defaults rendered for `lite`.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from ..runtime import PRECISIONS, RUNTIMES


ZERO_ALLOWED = ("queue_delay_us", "preferred_batch")  # settings for which 0 means "off" / "the default"
CHOICES = {"runtime": RUNTIMES, "warp_precision": PRECISIONS}  # settings with a fixed set of values


@dataclass(frozen=True)
class ServingSettings:
    preset: str = "lite"
    network_instances: int = 1  # instances of motion_encoder / appearance_encoder / warp_decoder
    decoder_instances: int = 1  # instances of the session model; sessions are sticky to one
    max_batch_size: int = 8
    queue_delay_us: int = 2000  # dynamic batching / `oldest` sequence batching wait for a fuller batch (0: none)
    preferred_batch: int = 0  # the decoder's `oldest` preferred batch size (0: max_batch_size)
    # requests one network model queues; beyond it Triton refuses at once ("Exceeds maximum queue
    # size", UNAVAILABLE: retryable) instead of letting every request wait into its timeout. The
    # decoder's queue is bounded by its session cap (max_sessions × a client's window of 8)
    max_queue: int = 64
    max_sessions: int = 32  # live calls per decoder instance; START beyond it gets an error
    session_idle_s: float = 60.0  # a call with no request for this long is dropped (scheduler and model)
    ort_threads: int = 2  # ONNX Runtime (or OpenVINO) intra-op threads per model instance
    runtime: str = "openvino"  # or "onnxruntime": the models' runtime (ONNX Runtime when openvino is missing)
    # the warp decoder's arithmetic on OpenVINO: bf16 on CPUs with bf16 units (1.6× faster on the dev VM for
    # −0.07 dB and +0.3 % LPIPS, docs/benchmarks.md); f32 elsewhere, on ONNX Runtime and for parity checks
    warp_precision: str = "bf16"
    warp_in_decoder: bool = True  # False: warp_decoder by BLS per frame batch, f_s copied each time (measurement)

    def __post_init__(self) -> None:
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"serving setting {name} must be one of {', '.join(choices)}, "
                                 f"got {getattr(self, name)!r}")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            least = 0 if field.name in ZERO_ALLOWED else 1e-9
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < least:
                raise ValueError(f"serving setting {field.name} must be {'≥ 0' if least == 0 else 'positive'}, "
                                 f"got {value}")

    @property
    def max_candidate_sequences(self) -> int:
        """Sequences the `oldest` batcher tracks per instance. Above the session cap so that the cap's
        START reaches the model and gets a clear error instead of waiting in the scheduler's backlog."""
        return 2 * self.max_sessions

    def with_(self, **changes) -> "ServingSettings":
        return dataclasses.replace(self, **changes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--flag` per setting, defaults from the dataclass."""
    group = parser.add_argument_group("serving settings")
    for field in dataclasses.fields(ServingSettings):
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        elif field.name in CHOICES:
            group.add_argument(flag, choices=CHOICES[field.name], default=field.default,
                               help=f"(default {field.default})")
        else:
            group.add_argument(flag, type=type(field.default), default=field.default, help=f"(default {field.default})")


def from_arguments(args: argparse.Namespace) -> ServingSettings:
    return ServingSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ServingSettings)})


def profile_batches(settings: ServingSettings, opt: int | None = None) -> tuple[int, int, int]:
    """(min, opt, max) batch of the TensorRT optimisation profiles.

    max is `max_batch_size`, which Triton may send. opt defaults to the batch the configs prefer:
    the decoder's sequence batcher has `preferred_batch_size: [max_batch_size]` and calls
    warp_decoder with the batch it formed, so under load (where throughput matters) that is the
    batch every engine sees; batch 1 at low load runs well inside the same profile.
    """
    top = settings.max_batch_size
    opt = top if opt is None else opt
    if not 1 <= opt <= top:
        raise ValueError(f"optimisation batch {opt} outside the served range 1..{top}")
    return 1, opt, top


def warmup_batches(settings: ServingSettings) -> tuple[int, ...]:
    """Batches every TensorRT model is warmed up with: both ends of its profile."""
    return tuple(sorted({1, settings.max_batch_size}))
