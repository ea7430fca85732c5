"""Tiny ONNX graphs standing in for the exported networks (no export, no TensorRT needed)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from facecodec.onnx_export import OPSET, to_plugin_variant


def grid_sample_model() -> onnx.ModelProto:
    """Y = GridSample(X, grid) on 5-D input, as the exporter leaves the decoder's warps."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2, 3, 4, 5])
    grid = helper.make_tensor_value_info("grid", TensorProto.FLOAT, ["N", 3, 4, 5, 3])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2, 3, 4, 5])
    node = helper.make_node("GridSample", ["X", "grid"], ["Y"], name="/warp/GridSample", mode="linear",
                            padding_mode="zeros", align_corners=0)
    graph = helper.make_graph([node], "warp", [x, grid], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def identity_model(name: str) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], name, [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


@pytest.fixture
def plugin_model() -> onnx.ModelProto:
    """warp_decoder_trt.onnx in miniature: a GridSample3D plugin node with its local function."""
    return to_plugin_variant(grid_sample_model())


@pytest.fixture
def onnx_dir(tmp_path: Path, plugin_model) -> Path:
    """An export directory with the three files the engines are built from."""
    out = tmp_path / "onnx"
    out.mkdir()
    onnx.save(identity_model("motion_encoder"), str(out / "motion_encoder.onnx"))
    onnx.save(identity_model("appearance_encoder"), str(out / "appearance_encoder.onnx"))
    onnx.save(plugin_model, str(out / "warp_decoder_trt.onnx"))
    return out
