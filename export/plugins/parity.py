"""What "the GridSample3D kernel matches F.grid_sample" means: shapes, inputs, tolerances.

Shared by ``tests/gpu`` and ``scripts/gpu_bench.py`` so that both check the same thing.
torch is imported by the functions that need it.
"""

from __future__ import annotations

from collections.abc import Callable

Shape = tuple[tuple[int, int, int, int, int], tuple[int, int, int]]

# Batch size B -> (x (N, C, D, H, W), grid extent (Do, Ho, Wo)) where the networks warp.
MODEL_SHAPES: dict[str, Callable[[int], Shape]] = {
    "vox256_decoder": lambda b: ((b, 32, 16, 64, 64), (16, 64, 64)),
    "vox256_dense_motion": lambda b: ((b * 16, 4, 16, 64, 64), (16, 64, 64)),  # B * (K + 1) deformed copies
    "lite_decoder": lambda b: ((b, 16, 8, 64, 64), (8, 64, 64)),
}

# Max abs error against fp32 F.grid_sample on the same (for fp16: fp16-rounded) inputs,
# with features in [-1, 1]. "float16/float32": fp16 features with an fp32 grid; the reference
# samples at the fp32 grid, so only the output's fp16 rounding (<= 2^-11 here) is left.
ATOL = {"float32": 1e-5, "float16": 2e-3, "float16/float32": 1e-3}


def dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def tolerance(dtype, grid_dtype=None) -> float:
    """ATOL for features of `dtype` sampled at a grid of `grid_dtype` (default: the same)."""
    x, grid = dtype_name(dtype), dtype_name(grid_dtype or dtype)
    return ATOL[x if x == grid else f"{x}/{grid}"]


def random_inputs(x_shape, out_spatial, dtype, *, seed: int, device: str = "cuda", grid_dtype=None):
    """x in [-1, 1]; grid in [-1.1, 1.1] with every 97th point scaled 3x, so that sample
    points fall past the volume's edges (some corners outside) and far outside (all).
    x is `dtype`, the grid `grid_dtype` (default: `dtype`)."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    x = torch.rand(x_shape, generator=gen, device=device) * 2 - 1
    grid = (torch.rand((x_shape[0], *out_spatial, 3), generator=gen, device=device) * 2 - 1) * 1.1
    grid.view(-1, 3)[::97] *= 3
    return x.to(dtype), grid.to(grid_dtype or dtype)


def max_abs_error(y, x, grid, *, align_corners: bool) -> float:
    """Max |y - F.grid_sample(x, grid)|, the reference computed in fp32."""
    import torch.nn.functional as F

    expected = F.grid_sample(
        x.float(), grid.float(), mode="bilinear", padding_mode="zeros", align_corners=align_corners
    )
    return (y.float() - expected).abs().max().item()
