"""The plugin's CUDA/C++ sources compile with nvcc (no GPU needed).

Kernels are built for the data-centre architectures the decoder targets; the C-ABI library
is linked (by nvcc and by CMake) and its argument checks run without a device; the
TensorRT plugin source is compiled against real TensorRT headers where they are installed
(the NGC TensorRT container).
"""

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from export.plugins import capi

NVCC = capi.find_nvcc()
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found (set CUDA_HOME or put nvcc on PATH)")

# <features, grid> instantiations: float/float, __half/__half, __half/float (fp16 features, fp32 grid)
KERNEL_SYMBOLS = ("gridSample3DKernelIffE", "gridSample3DKernelI6__halfS2_E", "gridSample3DKernelI6__halffE")


@functools.cache
def supported_archs() -> frozenset[str]:
    out = subprocess.run([NVCC, "--list-gpu-arch"], capture_output=True, text=True, check=True).stdout
    return frozenset(re.findall(r"compute_(\d+)", out))


def tensorrt_include_dir() -> Path | None:
    roots = [Path(os.environ["TENSORRT_ROOT"]) / "include"] if "TENSORRT_ROOT" in os.environ else []
    roots.append(Path("/usr/include/x86_64-linux-gnu"))
    return next((root for root in roots if (root / "NvInferRuntime.h").is_file()), None)


@pytest.mark.parametrize("arch", ["80", "90"])
def test_kernel_compiles_without_spills(arch, tmp_path):
    if arch not in supported_archs():
        pytest.skip(f"this nvcc cannot target sm_{arch}")
    cubin = tmp_path / f"grid_sample_3d_sm{arch}.cubin"
    log = capi.run_nvcc(
        ["--cubin", "-Xptxas=-v", *capi.arch_flags(arch), "-o", str(cubin), str(capi.KERNEL_SOURCE)], nvcc=NVCC
    )
    assert cubin.stat().st_size > 0
    for symbol in KERNEL_SYMBOLS:
        assert symbol in log, f"{symbol} missing from the ptxas report"
    # The per-voxel stencil (8 offsets + 8 weights) must stay in registers.
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    assert spills and all(stores == loads == "0" for stores, loads in spills), log


@pytest.fixture(scope="module")
def capi_library(tmp_path_factory) -> capi.GridSample3DLibrary:
    if "80" not in supported_archs():
        pytest.skip("this nvcc cannot target sm_80")
    path = capi.build_library(tmp_path_factory.mktemp("capi"), archs=["80"], nvcc=NVCC)
    return capi.GridSample3DLibrary(path)


def test_capi_exports_only_its_functions(capi_library):
    exported = subprocess.run(
        ["nm", "-D", "--defined-only", str(capi_library.path)], capture_output=True, text=True, check=True
    ).stdout
    names = {line.split()[-1] for line in exported.splitlines() if " T " in line}
    assert {"facecodec_grid_sample_3d_f32", "facecodec_grid_sample_3d_f16", "facecodec_grid_sample_3d_f16_f32grid",
            "facecodec_cuda_error_string"} <= names
    assert not [name for name in names if "gridSample3D" in name], "kernel symbols leak out of the library"


@pytest.mark.parametrize("dtype, grid_dtype", [("float32", "float32"), ("float16", "float16"), ("float16", "float32")])
def test_capi_checks_arguments_before_touching_the_device(capi_library, dtype, grid_dtype):
    # Returns cudaErrorInvalidValue (1) or cudaSuccess without a CUDA call, so this runs without a GPU.
    shape, out_spatial = (1, 2, 3, 4, 5), (2, 2, 2)
    call = functools.partial(capi_library.launch, grid_dtype=grid_dtype)
    assert call(dtype, 0, 0, 0, shape, out_spatial, align_corners=False) == 1  # null pointers
    assert call(dtype, 8, 8, 8, (1, -2, 3, 4, 5), out_spatial, align_corners=False) == 1  # negative extent
    assert call(dtype, 8, 8, 8, (1, 2, 2048, 2048, 1024), out_spatial, align_corners=False) == 1  # > 2^31 voxels
    assert call(dtype, 8, 8, 8, shape, out_spatial, align_corners=False, channels_per_thread=-1) == 1
    assert call(dtype, 8, 8, 8, (0, *shape[1:]), out_spatial, align_corners=True) == 0  # empty batch: no-op
    assert capi_library.error_string(1) == "invalid argument"


def test_tensorrt_plugin_compiles(tmp_path):
    include = tensorrt_include_dir()
    if include is None:
        pytest.skip("TensorRT headers not found (set TENSORRT_ROOT; the NGC TensorRT container has them)")
    obj = tmp_path / "grid_sample_3d_plugin.o"
    capi.run_nvcc(["-c", "-isystem", str(include), "-o", str(obj), str(capi.PLUGIN_SOURCE)], nvcc=NVCC)
    assert obj.stat().st_size > 0


PROBE_SOURCE = Path(__file__).with_name("plugin_probe.cpp")


def test_tensorrt_plugin_answers_the_builder(tmp_path):
    # The plugin's build-time API driven as the builder drives it (plugin_probe.cpp): real TensorRT
    # headers, no libnvinfer, no GPU.
    include = tensorrt_include_dir()
    if include is None:
        pytest.skip("TensorRT headers not found (set TENSORRT_ROOT; the NGC TensorRT container has them)")
    if "80" not in supported_archs():
        pytest.skip("this nvcc cannot target sm_80")
    probe = tmp_path / "plugin_probe"
    capi.run_nvcc(["-isystem", str(include), "-I", str(capi.SOURCE_DIR), *capi.arch_flags("80"), "-o", str(probe),
                   str(PROBE_SOURCE), str(capi.KERNEL_SOURCE)], nvcc=NVCC)
    lines = subprocess.run([str(probe)], capture_output=True, text=True, check=True).stdout.splitlines()
    facts = {tuple(line.split()[:-1]): line.split()[-1] for line in lines if not line.startswith("log ")}
    # a timing-cache ID (else TensorRT re-times the plugin on every build), one per attribute set,
    # and the same after the engine's round trip through the serialised fields
    ids = {ac: facts["timing_cache_id", ac] for ac in ("0", "1")}
    assert "(null)" not in ids.values() and ids["0"] != ids["1"]
    assert {ac: facts["deserialised_timing_cache_id", ac] for ac in ("0", "1")} == ids
    # fp16 features may come with an fp32 grid; the output keeps the features' type
    assert {key[1:] + (value,) for key, value in facts.items() if key[0] == "accepts"} == {
        ("FLOAT", "FLOAT", "FLOAT"), ("HALF", "HALF", "HALF"), ("HALF", "FLOAT", "HALF")}
    assert facts["output_type", "HALF", "FLOAT", "0"] == "HALF"
    assert facts["nearest_refused",] == "1"


def test_cmake_builds_the_kernel_library(tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not found")
    if "80" not in supported_archs():
        pytest.skip("this nvcc cannot target sm_80")
    build = tmp_path / "build"
    configure = [
        *(cmake, "-S", str(capi.SOURCE_DIR.parent), "-B", str(build)),
        f"-DCMAKE_CUDA_COMPILER={NVCC}",
        "-DCMAKE_CUDA_ARCHITECTURES=80",
        "-DFACECODEC_BUILD_TRT_PLUGIN=OFF",  # TensorRT is not needed for the kernel library
    ]
    for cmd in (configure, [cmake, "--build", str(build), "-j2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (build / capi.LIBRARY_NAME).is_file()
