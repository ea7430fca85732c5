"""PyTorch → ONNX for the three served networks, plus the TensorRT flavour of `warp_decoder`.

Names and dynamic batch axes come from `io_spec`; every file is checked against eager PyTorch in
ONNX Runtime right after export (`check_parity`).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper

from . import io_spec, plugin_spec
from .io_spec import ModelSpec
from .models import FaceVid2Vid, ModelConfig

log = logging.getLogger(__name__)
OPSET = 20  # first opset whose GridSample takes 5-D input
PLUGIN_SUFFIX = "_trt"  # warp_decoder_trt.onnx: 5-D grid samples as plugin nodes


def served_modules(model: FaceVid2Vid) -> dict[str, torch.nn.Module]:
    return {
        "motion_encoder": model.motion_encoder(),
        "appearance_encoder": model.appearance_encoder(),
        "warp_decoder": model.warp_decoder(),
    }


def example_inputs(spec: ModelSpec, cfg: ModelConfig, batch: int = 1, seed: int = 0) -> list[torch.Tensor]:
    """Plausible inputs: images in [0, 1], features ~N(0, 1), keypoints in [-0.8, 0.8]."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in spec.inputs:
        shape = (batch, *t.resolve(cfg))
        if t.name in ("image", "source_image"):
            out.append(torch.rand(shape, generator=gen))
        elif t.name.startswith("kp_"):
            out.append(torch.rand(shape, generator=gen) * 1.6 - 0.8)
        else:
            out.append(torch.randn(shape, generator=gen))
    return out


def export_network(module: torch.nn.Module, spec: ModelSpec, cfg: ModelConfig, path: Path) -> Path:
    """Export one served network with named tensors and a dynamic batch axis."""
    dynamic = {name: {0: "batch"} for name in spec.input_names + spec.output_names}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation notices; parity is checked below
        torch.onnx.export(
            module.eval(),
            tuple(example_inputs(spec, cfg, batch=2)),
            str(path),
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    _stamp_shapes(path, spec, cfg)
    return path


def _stamp_shapes(path: Path, spec: ModelSpec, cfg: ModelConfig) -> None:
    """Write the io_spec shapes onto the graph's inputs and outputs (the tracer leaves some
    reshaped outputs symbolic), so every consumer sees the same contract."""
    model = onnx.load(str(path))
    tensors = {t.name: t for t in (*spec.inputs, *spec.outputs)}
    # The tracer drops inputs a preset ignores (vox256's warp_decoder has no use for the source
    # image); put them back, in order, so every preset serves the same contract.
    present = {v.name: v for v in model.graph.input}
    inputs = [present.get(t.name) or helper.make_tensor_value_info(t.name, onnx.TensorProto.FLOAT, None)
              for t in spec.inputs]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    for value in (*model.graph.input, *model.graph.output):
        shape = value.type.tensor_type.shape
        shape.Clear()
        shape.dim.add().dim_param = "batch"
        for size in tensors[value.name].resolve(cfg):
            shape.dim.add().dim_value = size
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def to_plugin_variant(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every 5-D GridSample by a `GridSample3D` plugin node backed by a local function."""
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {
        v.name: len(v.type.tensor_type.shape.dim)
        for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)
    }
    out = onnx.ModelProto()
    out.CopyFrom(model)
    replaced = 0
    for i, node in enumerate(out.graph.node):
        if node.op_type != "GridSample" or ranks.get(node.input[0]) != 5:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("mode", b"linear") != b"linear" or attrs.get("padding_mode", b"zeros") != b"zeros":
            raise ValueError(f"GridSample {node.name} uses {attrs}; the plugin does trilinear + zeros only")
        plugin_attrs = dict(plugin_spec.ATTRIBUTES, align_corners=int(attrs.get("align_corners", 0)))
        new = helper.make_node(
            plugin_spec.PLUGIN_NAME, list(node.input), list(node.output), name=node.name or f"GridSample3D_{i}",
            domain=plugin_spec.ONNX_DOMAIN, **plugin_attrs,
        )
        out.graph.node[i].CopyFrom(new)
        replaced += 1
    if replaced == 0:
        raise ValueError("no 5-D GridSample found; is this a warp_decoder graph?")
    out.functions.append(_grid_sample_function())
    out.opset_import.append(helper.make_opsetid(plugin_spec.ONNX_DOMAIN, plugin_spec.ONNX_DOMAIN_VERSION))
    onnx.checker.check_model(out)
    return out


def _grid_sample_function() -> onnx.FunctionProto:
    """GridSample3D(X, grid) := GridSample(X, grid), so ONNX Runtime runs the plugin graph as is."""
    body = helper.make_node("GridSample", ["X", "grid"], ["Y"], mode="linear", padding_mode="zeros")
    align = helper.make_attribute_ref("align_corners", onnx.AttributeProto.INT)
    body.attribute.append(align)
    return helper.make_function(
        plugin_spec.ONNX_DOMAIN,
        plugin_spec.PLUGIN_NAME,
        inputs=["X", "grid"],
        outputs=["Y"],
        nodes=[body],
        opset_imports=[helper.make_opsetid("", OPSET)],
        attributes=list(plugin_spec.ATTRIBUTES),
    )


def check_parity(module: torch.nn.Module, spec: ModelSpec, cfg: ModelConfig, path: Path, inputs=None) -> float:
    """Max abs difference of ONNX Runtime vs eager PyTorch over all outputs."""
    from .runtime import OrtRunner

    inputs = inputs if inputs is not None else example_inputs(spec, cfg, batch=1, seed=1)
    with torch.inference_mode():
        expected = module.eval()(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    with OrtRunner(path, threads=2) as runner:
        got = runner.infer({n: x.numpy() for n, x in zip(spec.input_names, inputs)})
    return max(float(np.abs(got[n] - e.numpy()).max()) for n, e in zip(spec.output_names, expected))


def export_all(model: FaceVid2Vid, out_dir: str | Path, *, tolerance: float = 1e-4) -> dict[str, Path]:
    """Write motion_encoder, appearance_encoder, warp_decoder and warp_decoder_trt ONNX files,
    each checked against eager PyTorch (max abs difference ≤ tolerance)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, module in served_modules(model).items():
        spec = io_spec.NETWORKS[name]
        paths[name] = export_network(module, spec, model.cfg, out_dir / f"{name}.onnx")
        if name == "warp_decoder":
            trt = to_plugin_variant(onnx.load(str(paths[name])))
            paths[name + PLUGIN_SUFFIX] = out_dir / f"{name}{PLUGIN_SUFFIX}.onnx"
            onnx.save(trt, str(paths[name + PLUGIN_SUFFIX]))
    for name, path in paths.items():
        base = name.removesuffix(PLUGIN_SUFFIX)
        diff = check_parity(served_modules(model)[base], io_spec.NETWORKS[base], model.cfg, path)
        log.info("%s: ONNX Runtime vs PyTorch max abs diff %.2e", path.name, diff)
        if diff > tolerance:
            raise RuntimeError(f"{path.name}: ONNX Runtime differs from PyTorch by {diff:.2e} > {tolerance:.0e}")
    return paths
