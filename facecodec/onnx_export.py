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
    """Plausible inputs: images in [0, 1], features ~N(0, 1), keypoints in [-0.8, 0.8], expression
    flows of a few pixels."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in spec.inputs:
        shape = (batch, *t.resolve(cfg))
        if t.name in ("image", "source_image"):
            out.append(torch.rand(shape, generator=gen))
        elif t.name.startswith("kp_"):
            out.append(torch.rand(shape, generator=gen) * 1.6 - 0.8)
        elif t.name == "expression_flow":  # smooth, as a spline's: offsets of a few pixels, a cavity in [0, 1]
            coarse = torch.randn(shape[0], shape[1], 4, 4, generator=gen)
            smooth = torch.nn.functional.interpolate(coarse, size=shape[2:], mode="bicubic", align_corners=True)
            out.append(torch.cat([smooth[:, :2] * 0.02, smooth[:, 2:].clamp(0, 1)], dim=1))
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
    """Replace every 5-D GridSample by a `GridSample3D` plugin node backed by a local function.

    Which GridSamples are 5-D is decided for each one from every rank the graph gives
    (`grid_sample_ranks`); an undecidable one, or a 5-D one left over, fails the export: TensorRT
    has no 5-D GridSample, and the engine build would fail far from here."""
    ranks = grid_sample_ranks(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    replaced = 0
    for i, node in enumerate(out.graph.node):
        if not _is_grid_sample(node) or ranks[i] != 5:
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
    left = [out.graph.node[i].name for i, rank in grid_sample_ranks(out).items() if rank == 5]
    if left:
        raise ValueError(f"5-D GridSample left in the TensorRT variant: {left}")
    return out


def _is_grid_sample(node: onnx.NodeProto) -> bool:
    return node.op_type == "GridSample" and node.domain in ("", "ai.onnx")


def grid_sample_ranks(model: onnx.ModelProto) -> dict[int, int]:
    """Rank (4: image warp, 5: volume warp) of each stock GridSample of the main graph, by node index.

    GridSample's X, grid and Y share one rank, and grid's last axis holds rank - 2 coordinates; the
    rank is whichever of these shape inference (with data propagation) knows, or the length of the
    Transpose that lays out the grid. A GridSample none of them decides, or one whose sources
    disagree, raises: guessing would leave a 5-D GridSample for TensorRT or replace a 4-D one."""
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    types = {v.name: v.type for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    producers = {output: node for node in model.graph.node for output in node.output}
    nested = [n.name for n in model.graph.node for a in n.attribute if a.type in (a.GRAPH, a.GRAPHS)
              and any(_is_grid_sample(m) for g in (a.g, *a.graphs) for m in g.node)]
    if nested:
        raise ValueError(f"GridSample inside the subgraphs of {nested}: not supported by the TensorRT variant")
    ranks = {}
    for i, node in enumerate(model.graph.node):
        if not _is_grid_sample(node):
            continue
        x, grid = node.input[:2]
        known = {"X": _rank(types.get(x)), "grid": _rank(types.get(grid)), "Y": _rank(types.get(node.output[0]))}
        if known["grid"]:
            last = types[grid].tensor_type.shape.dim[-1]
            known["grid's last axis"] = last.dim_value + 2 if last.HasField("dim_value") else None
        layout = producers.get(grid)
        if layout is not None and layout.op_type == "Transpose":
            perm = next((helper.get_attribute_value(a) for a in layout.attribute if a.name == "perm"), None)
            known["grid's Transpose"] = len(perm) if perm else None
        known = {source: rank for source, rank in known.items() if rank is not None}
        if len(set(known.values())) != 1:
            raise ValueError(f"GridSample {node.name or i}: cannot tell whether it is 4-D or 5-D "
                             f"({known or 'no rank known'}); the TensorRT variant needs to know")
        ranks[i] = known.popitem()[1]
    return ranks


def _rank(value_type: onnx.TypeProto | None) -> int | None:
    if value_type is None or not value_type.HasField("tensor_type") or not value_type.tensor_type.HasField("shape"):
        return None
    return len(value_type.tensor_type.shape.dim)


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
