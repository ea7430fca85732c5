"""GridSample3D kernel on a GPU: build, parity with F.grid_sample, timings vs PyTorch.

Run from the repository root on a machine with PyTorch (CUDA) and nvcc; no TensorRT needed:

    PYTHONPATH=. python3 scripts/gpu_bench.py --out "$OUT/gpu_bench.json"

Builds the C-ABI library (the TensorRT plugin's kernel source) for the local GPU, checks
fp32/fp16 parity at the decoders' shapes (align_corners 0 and 1, points past the volume's
edges), then times our kernel and F.grid_sample with CUDA events. Prints a markdown table
naming the GPU, writes JSON, prints PASS or FAIL and exits 1 on a parity failure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

try:
    from export.plugins import capi
    from export.plugins.parity import MODEL_SHAPES, dtype_name, max_abs_error, random_inputs, tolerance
except ModuleNotFoundError as exc:
    raise SystemExit("run from the repository root: PYTHONPATH=. python3 scripts/gpu_bench.py") from exc

TIMED_SHAPES = ("vox256_decoder", "vox256_dense_motion")
DTYPES = (torch.float32, torch.float16)
# (features, grid) of the parity check: an fp16 engine keeps its sampling grid in fp32 (issue 26, point 4)
PARITY_DTYPES = ((torch.float32, torch.float32), (torch.float16, torch.float16), (torch.float16, torch.float32))
PARITY_BATCH = 2


def decode_inputs(preset: str, batch: int, device: str, dtype) -> tuple[tuple, tuple]:
    """Inputs of one frame's decode at `batch`, shaped by io_spec: the driving image for the motion
    encoder, and the warp decoder's (source, f_s, keypoints a small move apart, no expression flow)."""
    from facecodec import io_spec
    from facecodec.presets import get_preset

    cfg, gen = get_preset(preset), torch.Generator(device=device).manual_seed(batch)

    def tensor(spec, scale=1.0):
        return (scale * torch.rand((batch, *spec.resolve(cfg)), generator=gen, device=device)).to(dtype)

    (image,) = (tensor(t) for t in io_spec.MOTION_ENCODER.inputs)
    source, features = tensor(io_spec.SOURCE_IMAGE), tensor(io_spec.SOURCE_FEATURES)
    kp_source = tensor(io_spec.KP_SOURCE)
    kp_driving = kp_source + 0.02 * tensor(io_spec.KP_DRIVING)
    flow = torch.zeros((batch, *io_spec.EXPRESSION_FLOW.resolve(cfg)), device=device, dtype=dtype)
    return (image,), (source, features, kp_source * 2 - 1, kp_driving * 2 - 1, flow)


def use_kernel(library: capi.GridSample3DLibrary | None) -> None:
    """Route the networks' 5-D grid samples (`motion_field.warp_volume`) to our kernel, or back to
    `F.grid_sample` (None): what the TensorRT plugin does in an engine."""
    from facecodec.models import generator, motion_field

    fn = motion_field.stock_warp_volume if library is None else (lambda volume, grid: library(volume, grid))
    motion_field.warp_volume = generator.warp_volume = fn


def decode_benchmarks(library: capi.GridSample3DLibrary | None, *, preset: str = "vox256",
                      batches: tuple[int, ...] = (1, 32), device: str = "cuda",
                      variants: tuple[str, ...] = ("fp32 eager", "fp16 eager", "fp16 torch.compile")):
    """{name: (callable, frames per call)} timing one frame's decode (motion_encoder + warp_decoder) of
    `preset` with default-initialised weights (the architecture sets the cost, not the values). fp32
    eager keeps `F.grid_sample` (the baseline); the fp16 variants run the 5-D grid samples on our
    kernel (`library`; `F.grid_sample` when None, e.g. on a CPU check)."""
    from facecodec.models.facevid2vid import FaceVid2Vid
    from facecodec.presets import get_preset

    model = FaceVid2Vid(get_preset(preset)).eval().to(device)
    out = {}
    for variant in variants:
        dtype = torch.float16 if variant.startswith("fp16") else torch.float32
        kernel = library if dtype == torch.float16 else None
        encoder, decoder = model.motion_encoder().to(dtype), model.warp_decoder().to(dtype)
        if "compile" in variant:
            encoder, decoder = torch.compile(encoder), torch.compile(decoder)
        for batch in batches:
            motion_in, warp_in = decode_inputs(preset, batch, device, dtype)

            def decode(encoder=encoder, decoder=decoder, motion_in=motion_in, warp_in=warp_in, kernel=kernel):
                use_kernel(kernel)
                with torch.inference_mode():
                    encoder(*motion_in)
                    return decoder(*warp_in)

            name = f"{preset} decode, {variant}{', our kernel' if kernel is not None else ''}, batch {batch}"
            out[name] = (decode, batch)
    return out


def time_cuda(fn: Callable[[], object], *, warmup: int, iters: int, inner: int) -> dict[str, float]:
    """Milliseconds per call of ``fn`` from CUDA events, after ``warmup`` calls.

    Each of ``iters`` samples times ``inner`` back-to-back calls, so that host launch
    overhead overlaps the previous call's kernel as in a real pipeline.
    """
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(iters):
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / inner)
    samples.sort()
    return {
        "p50_ms": statistics.median(samples),
        "p95_ms": samples[round(0.95 * (len(samples) - 1))],
        "mean_ms": statistics.fmean(samples),
    }


def warp_inputs(x_shape, out_spatial, dtype, seed: int):
    """Timing inputs: a near-identity warp (sub-voxel jitter), like a real motion field."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(x_shape, generator=gen, device="cuda")
    axes = [(torch.arange(s, device="cuda") * 2 + 1) / s - 1 for s in out_spatial]  # voxel centres, D H W
    z, y, w = torch.meshgrid(*axes, indexing="ij")
    identity = torch.stack([w, y, z], dim=-1).expand(x_shape[0], *out_spatial, 3)
    grid = identity + 0.02 * torch.randn(identity.shape, generator=gen, device="cuda")
    return x.to(dtype), grid.to(dtype)


def torch_grid_sample(x, grid):
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def run_parity(library: capi.GridSample3DLibrary) -> list[dict]:
    rows = []
    for shape, make_shape in MODEL_SHAPES.items():
        x_shape, out_spatial = make_shape(PARITY_BATCH)
        for dtype, grid_dtype in PARITY_DTYPES:
            for align_corners in (False, True):
                x, grid = random_inputs(x_shape, out_spatial, dtype, seed=len(rows), grid_dtype=grid_dtype)
                err = max_abs_error(library(x, grid, align_corners=align_corners), x, grid, align_corners=align_corners)
                atol = tolerance(dtype, grid_dtype)
                mixed = "" if grid_dtype == dtype else f", grid {dtype_name(grid_dtype)}"
                rows.append(
                    {
                        "shape": shape,
                        "x": list(x_shape),
                        "dtype": dtype_name(dtype) + mixed,
                        "align_corners": align_corners,
                        "max_abs_err": err,
                        "atol": atol,
                        "passed": err <= atol,
                    }
                )
    return rows


def run_timings(library: capi.GridSample3DLibrary, batches: list[int], **timing) -> list[dict]:
    rows = []
    for shape in TIMED_SHAPES:
        for batch in batches:
            x_shape, out_spatial = MODEL_SHAPES[shape](batch)
            for dtype in DTYPES:
                x, grid = warp_inputs(x_shape, out_spatial, dtype, seed=batch)
                ours = time_cuda(lambda x=x, grid=grid: library(x, grid), **timing)
                # One thread per voxel for all channels: shows what the automatic channel split buys.
                no_split = time_cuda(lambda x=x, grid=grid: library(x, grid, channels_per_thread=x.shape[1]), **timing)
                reference = time_cuda(lambda x=x, grid=grid: torch_grid_sample(x, grid), **timing)
                # Compulsory traffic: read x and grid once, write y.
                elements = x.numel() + grid.numel() + x_shape[0] * x_shape[1] * math.prod(out_spatial)
                traffic_gb = elements * x.element_size() / 1e9
                rows.append(
                    {
                        "shape": shape,
                        "batch": batch,
                        "x": list(x_shape),
                        "dtype": dtype_name(dtype),
                        "torch": reference,
                        "ours": ours,
                        "ours_no_channel_split": no_split,
                        "speedup_p50": reference["p50_ms"] / ours["p50_ms"],
                        "ours_gb_per_s": traffic_gb / (ours["p50_ms"] / 1e3),
                    }
                )
                del x, grid
    return rows


def nvcc_version() -> str:
    nvcc = capi.find_nvcc()
    if nvcc is None:
        return "not found"
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False).stdout
    return next((line for line in out.splitlines() if "release" in line), "unknown")


def print_report(result: dict) -> None:
    print(f"\n## GridSample3D on {result['device']} (sm_{result['capability']}, torch {result['torch']}, "
          f"CUDA {result['cuda']})\n")
    print("| shape | dtype | align_corners | max abs err | atol | ok |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in result["parity"]:
        print(f"| {r['shape']} {tuple(r['x'])} | {r['dtype']} | {int(r['align_corners'])} | "
              f"{r['max_abs_err']:.2e} | {r['atol']:g} | {'yes' if r['passed'] else 'NO'} |")
    if result["timings"]:
        print("\np50 ms per call (CUDA events; near-identity warp grid)\n")
        print("| shape | batch | dtype | F.grid_sample | ours | ours, no channel split | speedup | ours GB/s |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in result["timings"]:
            print(f"| {r['shape']} | {r['batch']} | {r['dtype']} | {r['torch']['p50_ms']:.3f} | "
                  f"{r['ours']['p50_ms']:.3f} | {r['ours_no_channel_split']['p50_ms']:.3f} | "
                  f"{r['speedup_p50']:.2f}x | {r['ours_gb_per_s']:.0f} |")
    if result["extra"]:
        print("\nFull decode (motion_encoder + warp_decoder), default-initialised weights; the H100 bound of")
        print("docs/gpu.md is about 1.2 ms per frame\n")
        print("| what | p50 ms per call | p95 ms | ms per frame |")
        print("| --- | --- | --- | --- |")
        for r in result["extra"]:
            print(f"| {r['name']} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} | {r['ms_per_frame']:.3f} |")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(os.environ["OUT"]) / "gpu_bench.json" if os.environ.get("OUT") else None
    parser.add_argument("--out", type=Path, default=default_out, help="JSON results (default: $OUT/gpu_bench.json)")
    parser.add_argument("--build-dir", type=Path, default=None, help="where to build the library (default: a temp dir)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iters", type=int, default=50, help="timed samples per measurement (p50 over these)")
    parser.add_argument("--inner", type=int, default=5, help="back-to-back calls per timed sample")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--decode-batches", type=int, nargs="*", default=[1, 32],
                        help="time the full vox256 decode at these batches (none: skip)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("FAIL: no CUDA device", file=sys.stderr)
        return 1
    major, minor = torch.cuda.get_device_capability()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        path = capi.build_library(args.build_dir or Path(tmp), archs=[f"{major}{minor}"])
        library = capi.GridSample3DLibrary(path)
        build_s = time.perf_counter() - started

        timing = {"warmup": args.warmup, "iters": args.iters, "inner": args.inner}
        parity = run_parity(library)
        timings = [] if args.skip_timing else run_timings(library, args.batches, **timing)
        extra = []
        if args.decode_batches:
            for name, (fn, frames) in decode_benchmarks(library, batches=tuple(args.decode_batches)).items():
                row = {"name": name, "frames": frames, **time_cuda(fn, **timing)}
                row["ms_per_frame"] = row["p50_ms"] / frames
                extra.append(row)
                print(f"{name}: p50 {row['p50_ms']:.3f} ms, {row['ms_per_frame']:.3f} ms per frame", flush=True)
            use_kernel(None)

    result = {
        "device": torch.cuda.get_device_name(),
        "capability": f"{major}{minor}",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "nvcc": nvcc_version(),
        "build_s": round(build_s, 1),
        "settings": timing,
        "parity": parity,
        "timings": timings,
        "extra": extra,
        "passed": all(r["passed"] for r in parity),
    }
    print_report(result)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.out}")
    print("PASS" if result["passed"] else "FAIL")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
