"""Tiny ONNX graphs standing in for the exported networks (no export, no TensorRT needed)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from facecodec.onnx_export import OPSET, to_plugin_variant


def grid_sample_model() -> onnx.ModelProto:
    """The decoder's two kinds of warp as the exporter leaves them (opset 20 spelling): Y =
    GridSample(X, grid) on 5-D input (the feature volume), and the lite decoder's 4-D image warp,
    warped = GridSample(image, flow) with border padding and align_corners=1."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2, 3, 4, 5])
    grid = helper.make_tensor_value_info("grid", TensorProto.FLOAT, ["N", 3, 4, 5, 3])
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])
    flow = helper.make_tensor_value_info("flow", TensorProto.FLOAT, ["N", 8, 8, 2])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2, 3, 4, 5])
    warped = helper.make_tensor_value_info("warped", TensorProto.FLOAT, ["N", 3, 8, 8])
    nodes = [
        helper.make_node("GridSample", ["X", "grid"], ["Y"], name="/warp/GridSample", mode="linear",
                         padding_mode="zeros", align_corners=0),
        helper.make_node("GridSample", ["image", "flow"], ["warped"], name="/warp/GridSample_1", mode="linear",
                         padding_mode="border", align_corners=1),
    ]
    graph = helper.make_graph(nodes, "warp", [x, grid, image, flow], [y, warped])
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
