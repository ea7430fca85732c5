"""Does the GPU target compute what the CPU target computes? Two checks, each ending in PASS or exit 1.

`engines`: TensorRT against ONNX Runtime for each served network, with polygraphy. The reference is
the plain export (warp_decoder.onnx: the stock 5-D GridSample), TensorRT runs the plans as served
(`--plans`) or engines built here exactly as export/engines.py builds them. Needs TensorRT's Python
package, so it runs in NVIDIA's TensorRT container of the serving release (docs/gpu.md):

    pip install polygraphy onnxruntime -e .
    python -m export.compare engines --onnx-dir artifacts/onnx/lite --plugin build/plugins/libfacecodec_plugins.so

`server`: a running GPU server (tritonclient) against the in-process ONNX Runtime pipeline on the same
inputs: every network, and one call on the `decoder` session (START and a few frames):

    python -m export.compare server -u 127.0.0.1:8001 --onnx-dir artifacts/onnx/lite

Inputs are the export's plausible ones (images in [0, 1]); warp_decoder gets f_s and keypoints made by
the encoders from such images, so its inputs have the magnitudes the decoder sees. The tolerances
(`TOLERANCES`) are per output, for fp16 engines against fp32 ONNX Runtime.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecodec import io_spec
from facecodec.commands import run_command
from facecodec.presets import get_preset
from facecodec.serving.settings import ServingSettings, add_arguments, from_arguments

log = logging.getLogger("export.compare")

# The ONNX Runtime reference of each network: the export without plugin nodes.
REFERENCES = {name: f"{name}.onnx" for name in io_spec.NETWORKS}
# output → (atol, rtol), elementwise |trt - ort| <= atol + rtol * |ort|. Starting values for fp16
# engines; not yet measured on a GPU (docs/gpu.md), tighten them after the first run.
TOLERANCES: dict[str, tuple[float, float]] = {
    "rotation": (0.5, 0.01),  # degrees
    "translation": (0.01, 0.01),
    "expression": (0.01, 0.01),
    "source_features": (0.05, 0.02),
    "kp_canonical": (0.01, 0.01),
    "output_image": (0.05, 0.0),  # RGB in [0, 1]
}


@dataclass(frozen=True)
class Finding:
    check: str
    output: str
    max_abs: float
    atol: float
    rtol: float
    passed: bool

    def line(self) -> str:
        verdict = "ok" if self.passed else "FAIL"
        return f"{self.check:<28} {self.output:<16} max|Δ| {self.max_abs:9.3g}  (atol {self.atol:g}, rtol {self.rtol:g})  {verdict}"


def within(got: np.ndarray, ref: np.ndarray, output: str) -> Finding:
    atol, rtol = TOLERANCES[output]
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return Finding("", output, float("inf"), atol, rtol, False)
    diff = np.abs(got - ref)
    ok = bool(np.all(np.isfinite(got)) and np.all(diff <= atol + rtol * np.abs(ref)))
    return Finding("", output, float(diff.max()), atol, rtol, ok)


# --- inputs ----------------------------------------------------------------------------------


def feeds(name: str, onnx_dir: Path, preset: str, batch: int, seed: int) -> dict[str, np.ndarray]:
    """Inputs of one network at `batch`: the export's plausible images; for warp_decoder, f_s and
    keypoints computed from such images by the encoders (ONNX Runtime)."""
    from facecodec.onnx_export import example_inputs

    cfg = get_preset(preset)
    if name != "warp_decoder":
        spec = io_spec.NETWORKS[name]
        return {n: x.numpy() for n, x in zip(spec.input_names, example_inputs(spec, cfg, batch=batch, seed=seed))}
    from facecodec.codec.pipeline import MotionBatch, OrtNetworks, keypoints

    ort = OrtNetworks(onnx_dir)
    source = feeds("appearance_encoder", onnx_dir, preset, batch, seed)["source_image"]
    driving = feeds("motion_encoder", onnx_dir, preset, batch, seed + 1)["image"]
    appearance = ort("appearance_encoder", {"source_image": source})
    motion = lambda image: MotionBatch(**ort("motion_encoder", {"image": image}))  # noqa: E731
    return {
        "source_image": source,
        "source_features": appearance["source_features"],
        "kp_source": keypoints(appearance["kp_canonical"], motion(source)).astype(np.float32),
        "kp_driving": keypoints(appearance["kp_canonical"], motion(driving)).astype(np.float32),
    }


# --- engines: polygraphy, TensorRT vs ONNX Runtime -------------------------------------------


def engine_bytes(name: str, args: argparse.Namespace, settings: ServingSettings) -> bytes:
    """The served plan (--plans) or an engine built here as export/engines.py builds it."""
    from export import engines

    if args.plans:
        return (args.plans / name / "1" / engines.PLAN).read_bytes()
    (job,) = engines.engine_jobs(args.onnx_dir, args.work_dir / "plans", args.work_dir, settings, models=[name])
    engines.prepare(job)
    options = engines.BuildOptions(args.work_dir / "timing.cache", args.plugin, not args.fp32)
    return engines.build_with_tensorrt(job, options)


def compare_engines(args: argparse.Namespace, settings: ServingSettings) -> list[Finding]:
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner
    from polygraphy.comparator import Comparator, CompareFunc

    from export import engines

    if "warp_decoder" in args.models:
        engines.load_plugin(args.plugin)
    findings = []
    for name in args.models:
        spec = io_spec.NETWORKS[name]
        data = [feeds(name, args.onnx_dir, settings.preset, b, seed=b) for b in (1, settings.max_batch_size)]
        reference = OnnxrtRunner(SessionFromOnnx(str(args.onnx_dir / REFERENCES[name]), providers=["cpu"]),
                                 name="onnxruntime")
        trt = TrtRunner(EngineFromBytes(engine_bytes(name, args, settings)), name="tensorrt")
        results = Comparator.run([reference, trt], data_loader=data)
        tolerances = {o: TOLERANCES[o] for o in spec.output_names}
        verdict = Comparator.compare_accuracy(results, compare_func=CompareFunc.simple(
            atol={o: t[0] for o, t in tolerances.items()}, rtol={o: t[1] for o, t in tolerances.items()}))
        for output in spec.output_names:  # our own summary, over both batches
            worst = max((within(trt_out[output], ref_out[output], output) for ref_out, trt_out in
                         zip(results["onnxruntime"], results["tensorrt"])), key=lambda f: f.max_abs)
            findings.append(Finding(name, output, worst.max_abs, worst.atol, worst.rtol, worst.passed and bool(verdict)))
    return findings


# --- server: a running GPU server vs in-process ONNX Runtime ---------------------------------


def compare_server(args: argparse.Namespace, settings: ServingSettings) -> list[Finding]:
    from facecodec.client.remote import DecoderSession, RemoteNetworks
    from facecodec.codec.pipeline import MotionBatch, OrtNetworks
    from facecodec.codec.session import FrameRequest, SessionStore

    from facecodec.client.tls import ClientTls

    tls = ClientTls(args.tls_ca) if args.tls_ca else None
    ort, remote = OrtNetworks(args.onnx_dir), RemoteNetworks(args.url, timeout=args.timeout, tls=tls)
    findings = []
    for name in args.models:
        for batch in (1, settings.max_batch_size):
            data = feeds(name, args.onnx_dir, settings.preset, batch, seed=batch)
            got, ref = remote(name, data), ort(name, data)
            findings += [_named(f"{name} (batch {batch})", within(got[o], ref[o], o)) for o in ref]
    # one call on the decoder session: START with the source, then frames of other motion
    images = feeds("motion_encoder", args.onnx_dir, settings.preset, args.frames + 1, seed=7)["image"]
    motion = MotionBatch(**ort("motion_encoder", {"image": images}))
    requests = [FrameRequest(1, start=True, source_image=images[:1], motion=motion[0])]
    requests += [FrameRequest(1, motion=motion[i]) for i in range(1, args.frames + 1)]
    local = SessionStore(ort, max_sessions=1, idle_s=600)
    with DecoderSession(args.url, timeout=args.timeout, tls=tls) as session:
        served = [session.send(r).result(args.timeout) for r in requests]
    expected = []
    for r in requests:
        (frame,) = local.decode([r])
        if isinstance(frame, Exception):
            raise frame
        expected.append(frame)
    worst = max((within(g, e, "output_image") for g, e in zip(served, expected)), key=lambda f: f.max_abs)
    findings.append(_named(f"decoder ({len(requests)} frames)", worst))
    return findings


def _named(check: str, f: Finding) -> Finding:
    return Finding(check, f.output, f.max_abs, f.atol, f.rtol, f.passed)


# --- CLI -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m export.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="check", required=True)
    e = sub.add_parser("engines", help="TensorRT vs ONNX Runtime per network (polygraphy)")
    e.add_argument("--plugin", type=Path, help="libfacecodec_plugins.so (default $FACECODEC_PLUGIN_LIB)")
    e.add_argument("--plans", type=Path, help="compare the plans of this repository instead of building engines")
    e.add_argument("--work-dir", type=Path, default=Path("build/compare"), help="engines built here (default build/compare)")
    e.add_argument("--fp32", action="store_true", help="build fp32 engines (default fp16, as served)")
    s = sub.add_parser("server", help="a running GPU server vs in-process ONNX Runtime")
    s.add_argument("-u", "--url", default="127.0.0.1:8001", help="Triton gRPC address (default 127.0.0.1:8001)")
    s.add_argument("-t", "--timeout", type=float, default=60.0)
    s.add_argument("--tls-ca", type=Path, help="a server speaking TLS: the CA (PEM) that signed its certificate")
    s.add_argument("--frames", type=int, default=4, help="decoder frames after START (default 4)")
    for q in (e, s):
        q.add_argument("--onnx-dir", type=Path, required=True, help="the export's directory")
        q.add_argument("--models", nargs="+", choices=list(io_spec.NETWORKS), default=list(io_spec.NETWORKS))
        add_arguments(q)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    settings = from_arguments(args)
    findings = (compare_engines if args.check == "engines" else compare_server)(args, settings)
    for f in findings:
        print(f.line())
    passed = bool(findings) and all(f.passed for f in findings)
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(run_command(main, log))
