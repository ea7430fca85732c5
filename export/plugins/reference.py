"""NumPy reference of the ``GridSample3D`` op (trilinear, zeros padding).

Written as the CUDA kernel is written (float32 arithmetic, the same weight formulas and
corner order as PyTorch), so it documents the kernel's semantics and checks them against
``torch.nn.functional.grid_sample`` on machines without a GPU.
"""

from __future__ import annotations

import numpy as np


def _unnormalize(coord: np.ndarray, size: int, align_corners: bool) -> np.ndarray:
    """[-1, 1] to voxel units: corner centres (align_corners) or corner edges at +-1."""
    size_f = np.float32(size)
    if align_corners:
        return ((coord + np.float32(1)) / np.float32(2)) * (size_f - np.float32(1))
    return ((coord + np.float32(1)) * size_f - np.float32(1)) / np.float32(2)


def _axis(
    coord: np.ndarray, size: int
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Lower tap index, (inside0, inside1) and (weight0, weight1) along one axis.

    Bounds are tested on the float, so NaN, inf and huge coordinates sample nothing.
    """
    lower = np.floor(coord)
    last = np.float32(size - 1)
    with np.errstate(invalid="ignore"):
        inside = ((lower >= 0) & (lower <= last), (lower >= -1) & (lower <= last - 1))
        index = np.nan_to_num(np.clip(lower, -1, last), nan=-1).astype(np.int64)
    weights = ((lower + np.float32(1)) - coord, coord - lower)
    return index, inside, weights


def grid_sample_3d(x: np.ndarray, grid: np.ndarray, *, align_corners: bool = False) -> np.ndarray:
    """``F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros")`` for 5-D arrays.

    x: (N, C, D, H, W); grid: (N, Do, Ho, Wo, 3) ordered (x -> W, y -> H, z -> D).
    Returns float32 (N, C, Do, Ho, Wo).
    """
    if x.ndim != 5 or grid.ndim != 5 or grid.shape[-1] != 3 or grid.shape[0] != x.shape[0]:
        raise ValueError(f"expected x (N, C, D, H, W) and grid (N, Do, Ho, Wo, 3), got {x.shape}, {grid.shape}")
    n, c, d, h, w = x.shape
    out_spatial = grid.shape[1:4]
    x_flat = x.astype(np.float32, copy=False).reshape(n, c, d * h * w)  # (N, C, D*H*W)
    g = grid.astype(np.float32, copy=False).reshape(n, -1, 3)  # (N, S, 3)

    with np.errstate(invalid="ignore", over="ignore"):
        ix, in_x, w_x = _axis(_unnormalize(g[..., 0], w, align_corners), w)  # each (N, S)
        iy, in_y, w_y = _axis(_unnormalize(g[..., 1], h, align_corners), h)
        iz, in_z, w_z = _axis(_unnormalize(g[..., 2], d, align_corners), d)

        out = np.zeros((n, c, g.shape[1]), dtype=np.float32)  # (N, C, S)
        # Corner order (z, y, x) as PyTorch accumulates them: tnw, tne, tsw, tse, bnw, ...
        for dz in (0, 1):
            for dy in (0, 1):
                for dx in (0, 1):
                    inside = in_x[dx] & in_y[dy] & in_z[dz]  # (N, S)
                    flat = np.where(inside, ((iz + dz) * h + (iy + dy)) * w + (ix + dx), 0)
                    values = np.take_along_axis(x_flat, np.broadcast_to(flat[:, None, :], out.shape), axis=2)
                    weight = w_x[dx] * w_y[dy] * w_z[dz]
                    out += np.where(inside[:, None, :], values * weight[:, None, :], np.float32(0))
    return out.reshape(n, c, *out_spatial)
