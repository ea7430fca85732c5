"""`scripts/gpu_bench.py`'s full-decode timing (issue 26, acceptance 5) runs its plumbing on the CPU: the
io_spec-shaped inputs, the swap of the 5-D grid sample and back, one decode of the lite preset. The
timing itself needs a GPU (a lease runs `PYTHONPATH=. python3 scripts/gpu_bench.py`)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import gpu_bench  # noqa: E402

from facecodec.models import generator, motion_field  # noqa: E402
from facecodec.models.facevid2vid import FaceVid2Vid  # noqa: E402
from facecodec.presets import get_preset  # noqa: E402


def test_a_lite_decode_runs_through_the_benchmarks_plumbing_and_the_kernel_swap_undoes():
    calls = []

    class Kernel:  # stands in for the CUDA library: records the 5-D samples it is given
        def __call__(self, volume, grid):
            calls.append((tuple(volume.shape), tuple(grid.shape)))
            return motion_field.stock_warp_volume(volume, grid)

    benches = gpu_bench.decode_benchmarks(None, preset="lite", batches=(1, 2), device="cpu", variants=("fp32 eager",))
    assert list(benches) == ["lite decode, fp32 eager, batch 1", "lite decode, fp32 eager, batch 2"]
    fn, frames = benches["lite decode, fp32 eager, batch 2"]
    size = get_preset("lite").image_size
    assert frames == 2 and fn().shape == (2, 3, size, size)
    gpu_bench.use_kernel(Kernel())
    try:
        motion_in, warp_in = gpu_bench.decode_inputs("lite", 1, "cpu", torch.float32)
        assert [tuple(t.shape) for t in motion_in] == [(1, 3, size, size)]
        with torch.inference_mode():
            FaceVid2Vid(get_preset("lite")).eval().warp_decoder()(*warp_in)
        assert len(calls) == 2 and all(len(v) == 5 and len(g) == 5 for v, g in calls)  # both 5-D samples
    finally:
        gpu_bench.use_kernel(None)
    assert motion_field.warp_volume is motion_field.stock_warp_volume is generator.warp_volume
