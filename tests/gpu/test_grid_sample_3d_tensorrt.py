"""GridSample3D through TensorRT: ONNX node -> engine with the plugin -> torch parity.

Needs TensorRT's Python package, torch with CUDA and a built plugin library named by
FACECODEC_PLUGIN_LIB (see export/plugins/README.md: the NGC PyTorch container of the
same release as the Triton container has both). Covers what the CPU tests cannot: the
ONNX parser finding the creator, dynamic batch, fp16, and the serialise/deserialise
round trip of the plugin's fields.
"""

import ctypes
import os

import pytest

from export.plugins import spec
from export.plugins.parity import max_abs_error, random_inputs, tolerance

torch = pytest.importorskip("torch")
trt = pytest.importorskip("tensorrt")
onnx = pytest.importorskip("onnx")

PLUGIN_LIB = os.environ.get("FACECODEC_PLUGIN_LIB")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(not PLUGIN_LIB, reason="set FACECODEC_PLUGIN_LIB to libfacecodec_plugins.so"),
]

C, IN_SPATIAL, OUT_SPATIAL = 16, (8, 32, 32), (8, 32, 32)  # the lite decoder's layout, smaller
MAX_BATCH = 4


@pytest.fixture(scope="module", autouse=True)
def plugin_library():
    # dlopen runs the library's static registration (REGISTER_TENSORRT_PLUGIN).
    library = ctypes.CDLL(PLUGIN_LIB, mode=ctypes.RTLD_GLOBAL)
    creator = trt.get_plugin_registry().get_creator(spec.PLUGIN_NAME, spec.PLUGIN_VERSION, spec.PLUGIN_NAMESPACE)
    assert creator is not None, f"{spec.PLUGIN_NAME} not registered by {PLUGIN_LIB}"
    return library


def _elem(dtype):
    return onnx.TensorProto.FLOAT16 if dtype == torch.float16 else onnx.TensorProto.FLOAT


def onnx_model(dtype, align_corners: bool, grid_dtype=None) -> bytes:
    elem, grid_elem = _elem(dtype), _elem(grid_dtype or dtype)
    x_name, grid_name = spec.INPUT_NAMES
    (y_name,) = spec.OUTPUT_NAMES
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node(
                spec.ONNX_OP_TYPE,
                [x_name, grid_name],
                [y_name],
                domain=spec.ONNX_DOMAIN,
                **spec.node_attributes(align_corners=align_corners),
            )
        ],
        "grid_sample_3d",
        [
            onnx.helper.make_tensor_value_info(x_name, elem, ["N", C, *IN_SPATIAL]),
            onnx.helper.make_tensor_value_info(grid_name, grid_elem, ["N", *OUT_SPATIAL, 3]),
        ],
        [onnx.helper.make_tensor_value_info(y_name, elem, ["N", C, *OUT_SPATIAL])],
    )
    opsets = [onnx.helper.make_opsetid("", 17), onnx.helper.make_opsetid(spec.ONNX_DOMAIN, spec.ONNX_DOMAIN_VERSION)]
    return onnx.helper.make_model(graph, opset_imports=opsets).SerializeToString()


def build_engine(model: bytes):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Strongly typed: the ONNX types (fp32 or fp16) decide the plugin's precision.
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    x_name, grid_name = spec.INPUT_NAMES
    profile.set_shape(x_name, (1, C, *IN_SPATIAL), (2, C, *IN_SPATIAL), (MAX_BATCH, C, *IN_SPATIAL))
    profile.set_shape(grid_name, (1, *OUT_SPATIAL, 3), (2, *OUT_SPATIAL, 3), (MAX_BATCH, *OUT_SPATIAL, 3))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "engine build failed"
    # Deserialising recreates the plugin from getFieldsToSerialize(): the round trip under test.
    return trt.Runtime(logger).deserialize_cuda_engine(serialized)


def run_engine(engine, x, grid):
    context = engine.create_execution_context()
    (x_name, grid_name), (y_name,) = spec.INPUT_NAMES, spec.OUTPUT_NAMES
    context.set_input_shape(x_name, tuple(x.shape))
    context.set_input_shape(grid_name, tuple(grid.shape))
    y = torch.empty(tuple(context.get_tensor_shape(y_name)), dtype=x.dtype, device="cuda")
    for name, tensor in ((x_name, x), (grid_name, grid), (y_name, y)):
        context.set_tensor_address(name, tensor.data_ptr())
    stream = torch.cuda.current_stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    return y


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dtype, grid_dtype", [(torch.float32, torch.float32), (torch.float16, torch.float16),
                                               (torch.float16, torch.float32)], ids=["fp32", "fp16", "fp16-fp32grid"])
def test_engine_matches_torch(dtype, grid_dtype, align_corners):
    engine = build_engine(onnx_model(dtype, align_corners, grid_dtype))
    for batch in (1, 3):  # inside the dynamic-batch profile, off its opt point
        x, grid = random_inputs((batch, C, *IN_SPATIAL), OUT_SPATIAL, dtype, seed=2 * batch + align_corners,
                                grid_dtype=grid_dtype)
        y = run_engine(engine, x, grid)
        assert y.shape == (batch, C, *OUT_SPATIAL) and y.dtype == dtype
        err = max_abs_error(y, x, grid, align_corners=align_corners)
        atol = tolerance(dtype, grid_dtype)
        assert err <= atol, f"batch {batch}: max abs error {err:.3g} > {atol:g}"
