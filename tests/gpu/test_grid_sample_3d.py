"""The GridSample3D CUDA kernel against torch.nn.functional.grid_sample on a GPU.

Builds the C-ABI library (the TensorRT plugin's kernel source) with nvcc for the local GPU
and compares at the shapes the decoders run, with sample points beyond the volume's edges.
"""

import numpy as np
import pytest

from export.plugins import capi
from export.plugins.parity import ATOL, MODEL_SHAPES, dtype_name, max_abs_error, random_inputs, tolerance
from export.plugins.reference import grid_sample_3d as reference_grid_sample_3d

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

BATCH = 2
SHAPES = {name: make_shape(BATCH) for name, make_shape in MODEL_SHAPES.items()}


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> capi.GridSample3DLibrary:
    if capi.find_nvcc() is None:
        pytest.skip("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    major, minor = torch.cuda.get_device_capability()
    path = capi.build_library(tmp_path_factory.mktemp("grid_sample_3d"), archs=[f"{major}{minor}"])
    return capi.GridSample3DLibrary(path)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("shape", SHAPES.keys())
def test_matches_torch(library, shape, dtype, align_corners):
    x, grid = random_inputs(*SHAPES[shape], dtype, seed=2 * list(SHAPES).index(shape) + align_corners)
    y = library(x, grid, align_corners=align_corners)
    assert y.dtype == dtype and y.shape == (*x.shape[:2], *grid.shape[1:4])
    err = max_abs_error(y, x, grid, align_corners=align_corners)
    atol = ATOL[dtype_name(dtype)]
    assert err <= atol, f"max abs error {err:.3g} > {atol:g}"


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("shape", SHAPES.keys())
def test_fp16_features_with_an_fp32_grid(library, shape, align_corners):
    # What an fp16 engine gets when the grid stays fp32: the sampling is exact, only the output is rounded.
    seed = 2 * list(SHAPES).index(shape) + align_corners
    x, grid = random_inputs(*SHAPES[shape], torch.float16, seed=seed, grid_dtype=torch.float32)
    y = library(x, grid, align_corners=align_corners)
    assert y.dtype == torch.float16 and y.shape == (*x.shape[:2], *grid.shape[1:4])
    err = max_abs_error(y, x, grid, align_corners=align_corners)  # reference: fp32, at the fp32 grid
    atol = tolerance(torch.float16, torch.float32)
    assert err <= atol, f"max abs error {err:.3g} > {atol:g}"
    rounded = max_abs_error(library(x, grid.half(), align_corners=align_corners), x, grid, align_corners=align_corners)
    assert err < rounded, f"an fp32 grid ({err:.3g}) should beat the fp16-rounded grid ({rounded:.3g})"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_channel_split_gives_identical_results(library, dtype):
    x, grid = random_inputs(*SHAPES["vox256_decoder"], dtype, seed=1)
    full = library(x, grid, channels_per_thread=x.shape[1])
    for channels_per_thread in (0, 1, 3, 5):
        assert torch.equal(library(x, grid, channels_per_thread=channels_per_thread), full)


def test_matches_numpy_reference(library):
    x, grid = random_inputs((2, 3, 5, 6, 7), (4, 5, 6), torch.float32, seed=2)
    for align_corners in (False, True):
        expected = reference_grid_sample_3d(x.cpu().numpy(), grid.cpu().numpy(), align_corners=align_corners)
        y = library(x, grid, align_corners=align_corners).cpu().numpy()
        np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5)


def test_mismatched_types_are_refused(library):
    x, grid = random_inputs((1, 2, 3, 3, 3), (2, 2, 2), torch.float32, seed=4, grid_dtype=torch.float16)
    with pytest.raises(TypeError, match="float16/float32"):
        library(x, grid)


def test_non_finite_points_sample_zero(library):
    # The contract follows PyTorch's CPU kernel (and reference.py): no corner is inside.
    x = torch.ones((1, 2, 3, 3, 3), device="cuda")
    grid = torch.tensor(
        [[float("nan"), 0, 0], [0, float("inf"), 0], [0, 0, -float("inf")], [1e30, 0, 0], [0, 0, 0]], device="cuda"
    ).view(1, 1, 1, 5, 3)
    y = library(x, grid)
    assert torch.equal(y[..., :4], torch.zeros_like(y[..., :4]))
    torch.testing.assert_close(y[..., 4], torch.ones_like(y[..., 4]))


def test_runs_on_the_current_stream(library):
    x, grid = random_inputs(*SHAPES["lite_decoder"], torch.float32, seed=3)
    expected = library(x, grid)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y = library(x, grid)
    torch.cuda.current_stream().wait_stream(stream)
    assert torch.equal(y, expected)
