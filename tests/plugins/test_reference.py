"""export/plugins/reference.py against torch.nn.functional.grid_sample on CPU."""

import itertools

import numpy as np
import pytest

from export.plugins.reference import grid_sample_3d

torch = pytest.importorskip("torch")
F = torch.nn.functional

ATOL = 1e-5


def torch_grid_sample(x: np.ndarray, grid: np.ndarray, align_corners: bool) -> np.ndarray:
    return F.grid_sample(
        torch.from_numpy(x), torch.from_numpy(grid), mode="bilinear", padding_mode="zeros", align_corners=align_corners
    ).numpy()


def random_case(rng: np.random.Generator, x_shape, out_spatial, spread: float = 1.3):
    """Features and a grid reaching past [-1, 1] on every axis, so edge corners drop out."""
    x = rng.standard_normal(x_shape, dtype=np.float32)
    grid = rng.uniform(-spread, spread, (x_shape[0], *out_spatial, 3)).astype(np.float32)
    return x, grid


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(
    ("x_shape", "out_spatial"),
    [
        ((2, 3, 5, 6, 7), (4, 5, 6)),  # odd sizes, D != H != W
        ((1, 4, 8, 16, 16), (8, 16, 16)),  # the lite preset's aspect, scaled down
        ((3, 2, 1, 4, 4), (2, 3, 3)),  # a single depth slice
    ],
)
def test_matches_torch(x_shape, out_spatial, align_corners):
    rng = np.random.default_rng(sum(x_shape) + align_corners)
    x, grid = random_case(rng, x_shape, out_spatial)
    expected = torch_grid_sample(x, grid, align_corners)
    np.testing.assert_allclose(grid_sample_3d(x, grid, align_corners=align_corners), expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("align_corners", [False, True])
def test_edges_and_far_points_match_torch(align_corners):
    rng = np.random.default_rng(7)
    x, grid = random_case(rng, (1, 3, 4, 5, 6), (2, 3, 4))
    flat = grid.reshape(-1, 3)  # a view: writes land in grid
    flat[:8] = list(itertools.product([-1.0, 1.0], repeat=3))  # the volume's corners
    flat[8:12] = [[5.0, 0, 0], [0, -7.5, 0], [0, 0, 1e6], [-1e20, 1e20, 0]]
    expected = torch_grid_sample(x, grid, align_corners)
    np.testing.assert_allclose(grid_sample_3d(x, grid, align_corners=align_corners), expected, rtol=0, atol=ATOL)


def test_non_finite_points_sample_nothing():
    # PyTorch's CPU kernel returns 0 there; the CUDA kernel follows it.
    x = np.ones((1, 2, 3, 3, 3), dtype=np.float32)
    grid = np.zeros((1, 1, 1, 4, 3), dtype=np.float32)
    grid[0, 0, 0, :] = [[np.nan, 0, 0], [0, np.inf, 0], [0, 0, -np.inf], [0, 0, 0]]
    out = grid_sample_3d(x, grid)
    np.testing.assert_array_equal(out[..., :3], 0)
    np.testing.assert_allclose(out[..., 3], 1, atol=ATOL)
    np.testing.assert_array_equal(out, torch_grid_sample(x, grid, align_corners=False))


def test_identity_grid_reproduces_input():
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5, 6), dtype=np.float32)
    axes = [np.linspace(-1, 1, size, dtype=np.float32) for size in (4, 5, 6)]  # D, H, W
    z, y, w = np.meshgrid(*axes, indexing="ij")
    grid = np.broadcast_to(np.stack([w, y, z], axis=-1), (2, 4, 5, 6, 3))
    np.testing.assert_allclose(grid_sample_3d(x, grid, align_corners=True), x, atol=ATOL)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        grid_sample_3d(np.zeros((1, 1, 2, 2, 2)), np.zeros((1, 2, 2, 2, 2)))
    with pytest.raises(ValueError):
        grid_sample_3d(np.zeros((2, 1, 2, 2, 2)), np.zeros((1, 2, 2, 2, 3)))
