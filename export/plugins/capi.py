"""Build the C-ABI grid-sample library with nvcc and call it on torch CUDA tensors.

This is the path for tests and benchmarks on a machine with nvcc (no TensorRT needed): the
same kernel source as the TensorRT plugin, wrapped by ``grid_sample_3d_capi.h``. Release
builds use ``CMakeLists.txt``. torch is imported only when the library is called.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

# The CUDA/C++ sources ship inside this package, beside this module.
SOURCE_DIR = Path(__file__).resolve().parent / "grid_sample_3d"
KERNEL_SOURCE = SOURCE_DIR / "grid_sample_3d.cu"
CAPI_SOURCE = SOURCE_DIR / "grid_sample_3d_capi.cpp"
PLUGIN_SOURCE = SOURCE_DIR / "grid_sample_3d_plugin.cpp"
LIBRARY_NAME = "libfacecodec_grid_sample.so"

NVCC_FLAGS = (
    "-std=c++17",
    "-O3",
    "-Werror=all-warnings",
    "-Xcompiler=-fPIC,-fvisibility=hidden,-Wall,-Wextra",
)

# (features' dtype, grid's dtype) -> C function
_FUNCTIONS = {
    ("float32", "float32"): "facecodec_grid_sample_3d_f32",
    ("float16", "float16"): "facecodec_grid_sample_3d_f16",
    ("float16", "float32"): "facecodec_grid_sample_3d_f16_f32grid",
}


def find_nvcc() -> str | None:
    """``$CUDA_HOME/bin/nvcc`` if set, else ``nvcc`` on PATH, else None."""
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home and (Path(cuda_home) / "bin" / "nvcc").is_file():
        return str(Path(cuda_home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def arch_flags(arch: int | str) -> list[str]:
    """``-gencode`` for SASS of one compute capability, e.g. ``90``, ``"sm_90"`` or ``"9.0"``."""
    digits = str(arch).removeprefix("sm_").replace(".", "")
    if not digits.isdigit():
        raise ValueError(f"not a CUDA architecture: {arch!r}")
    return ["-gencode", f"arch=compute_{digits},code=sm_{digits}"]


def run_nvcc(args: Sequence[str], *, nvcc: str | None = None) -> str:
    """Run nvcc with ``NVCC_FLAGS`` + ``args``; return its output, raise with it on failure."""
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise FileNotFoundError("nvcc not found: set CUDA_HOME or put nvcc on PATH")
    cmd = [nvcc, *NVCC_FLAGS, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"nvcc failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def build_library(out_dir: Path, archs: Sequence[int | str], *, nvcc: str | None = None) -> Path:
    """Compile kernel + C ABI into ``out_dir/libfacecodec_grid_sample.so`` (static cudart)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    library = out_dir / LIBRARY_NAME
    gencodes = [flag for arch in archs for flag in arch_flags(arch)]
    run_nvcc(["-shared", *gencodes, "-o", str(library), str(KERNEL_SOURCE), str(CAPI_SOURCE)], nvcc=nvcc)
    return library


class GridSample3DLibrary:
    """ctypes binding of ``libfacecodec_grid_sample.so``: 5-D grid sample on torch tensors."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lib = ctypes.CDLL(str(self.path))
        args = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 8 + [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        for name in _FUNCTIONS.values():
            fn = getattr(self._lib, name)
            fn.argtypes = args
            fn.restype = ctypes.c_int
        self._lib.facecodec_cuda_error_string.argtypes = [ctypes.c_int]
        self._lib.facecodec_cuda_error_string.restype = ctypes.c_char_p

    def error_string(self, code: int) -> str:
        return self._lib.facecodec_cuda_error_string(code).decode()

    def launch(
        self,
        dtype: str,
        x_ptr: int,
        grid_ptr: int,
        y_ptr: int,
        x_shape: Sequence[int],
        out_spatial: Sequence[int],
        *,
        align_corners: bool,
        channels_per_thread: int = 0,
        stream: int = 0,
        grid_dtype: str | None = None,
    ) -> int:
        """Raw call: device pointers, x (N, C, D, H, W), (Do, Ho, Wo); returns the CUDA error code.
        `dtype` is x's and y's, `grid_dtype` the grid's (default: `dtype`)."""
        fn = getattr(self._lib, _FUNCTIONS[dtype, grid_dtype or dtype])
        return fn(x_ptr, grid_ptr, y_ptr, *x_shape, *out_spatial, int(align_corners), channels_per_thread, stream)

    def __call__(self, x, grid, *, align_corners: bool = False, channels_per_thread: int = 0):
        """``F.grid_sample(x, grid, "bilinear", "zeros", align_corners)`` for 5-D CUDA tensors: x and
        grid both float32 or both float16, or float16 x with a float32 grid; y has x's dtype."""
        import torch

        if x.dim() != 5 or grid.dim() != 5 or grid.shape[-1] != 3 or grid.shape[0] != x.shape[0]:
            raise ValueError(f"expected x (N, C, D, H, W) and grid (N, Do, Ho, Wo, 3), got {x.shape}, {grid.shape}")
        dtypes = (str(x.dtype).removeprefix("torch."), str(grid.dtype).removeprefix("torch."))
        if dtypes not in _FUNCTIONS:
            raise TypeError(f"x and grid must be float32/float32, float16/float16 or float16/float32, got {dtypes}")
        if not x.is_cuda or grid.device != x.device:
            raise ValueError("x and grid must be on the same CUDA device")
        x, grid = x.contiguous(), grid.contiguous()
        y = torch.empty((*x.shape[:2], *grid.shape[1:4]), dtype=x.dtype, device=x.device)
        with torch.cuda.device(x.device):
            code = self.launch(
                dtypes[0],
                x.data_ptr(),
                grid.data_ptr(),
                y.data_ptr(),
                x.shape,
                grid.shape[1:4],
                align_corners=align_corners,
                channels_per_thread=channels_per_thread,
                stream=torch.cuda.current_stream().cuda_stream,
                grid_dtype=dtypes[1],
            )
        if code != 0:
            raise RuntimeError(f"grid_sample_3d launch failed: {self.error_string(code)}")
        return y
