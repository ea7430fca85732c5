"""Graph rewrites that make ONNX Runtime's CPU run of our networks faster, applied when a session is
made (`runtime.OrtRunner(rewrite=True)`); the exported files stay as they are.

ONNX Runtime's 5-D GridSample (the warp of the appearance volume) runs on one thread, point by
point: for lite it is about a third of a frame. `gather_grid_sample` replaces each 5-D
GridSample whose volume has many channels by the same trilinear sample written with ops that run
on all threads and copy whole channel rows: the 8 corner indices and weights of every output point
(elementwise), one `GatherND` of the channel-last volume, a weighted sum. Same result up to float
rounding (zeros padding, `align_corners=0`, the reference's settings). With few channels (the motion
field's compressed volume, 2) the per-point gather costs more than it saves, so those stay.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIN_CHANNELS = 8


def gather_grid_sample(model: onnx.ModelProto, min_channels: int = MIN_CHANNELS) -> tuple[onnx.ModelProto, int]:
    """(a copy of `model` with each eligible 5-D GridSample rewritten, how many were); `min_channels`
    0: every 5-D GridSample, also where the channel count is not known statically (OpenVINO has no 5-D
    GridSample at all)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: v.type.tensor_type.shape for v in (*inferred.graph.value_info, *inferred.graph.input)}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes, replaced = [], 0
    for node in out.graph.node:
        channels = _dim(shapes.get(node.input[0]), 1) if node.op_type == "GridSample" else None
        if _eligible(node, shapes) and (min_channels == 0 or (channels is not None and channels >= min_channels)):
            nodes += _gather_nodes(f"gs3d{replaced}_", node.input[0], node.input[1], node.output[0])
            replaced += 1
        else:
            nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out, replaced


def _dim(shape, axis: int) -> int | None:
    if shape is None or len(shape.dim) <= axis or not shape.dim[axis].HasField("dim_value"):
        return None
    return shape.dim[axis].dim_value


def _eligible(node: onnx.NodeProto, shapes) -> bool:
    if node.op_type != "GridSample" or node.domain not in ("", "ai.onnx"):
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    x, grid = shapes.get(node.input[0]), shapes.get(node.input[1])
    volume = (x is not None and len(x.dim) == 5) or (grid is not None and len(grid.dim) == 5 and _dim(grid, 4) == 3)
    return (volume and attrs.get("mode", b"linear") == b"linear"
            and attrs.get("padding_mode", b"zeros") == b"zeros" and attrs.get("align_corners", 0) == 0)


def _gather_nodes(p: str, x: str, grid: str, y: str) -> list[onnx.NodeProto]:
    """Nodes computing y = GridSample(x, grid) for x (N, C, D, H, W), grid (N, Do, Ho, Wo, 3) as (x, y, z)
    in [-1, 1], trilinear, zeros padding, align_corners=0. Names are prefixed with `p`."""
    n: list[onnx.NodeProto] = []

    def const(name: str, value, dtype=np.float32) -> str:
        n.append(helper.make_node("Constant", [], [p + name],
                                  value=numpy_helper.from_array(np.array(value, dtype), p + name)))
        return p + name

    def op(kind: str, inputs: list[str], output: str, **attrs) -> str:
        n.append(helper.make_node(kind, inputs, [p + output], **attrs))
        return p + output

    i0, i1, i2, i4, i5 = (const(f"i{v}", [v], np.int64) for v in (0, 1, 2, 4, 5))
    last = const("im1", [-1], np.int64)
    one, half, zero = const("one", 1.0), const("half", 0.5), const("zero", 0.0)
    xs, gs = op("Shape", [x], "xs"), op("Shape", [grid], "gs")
    dhw = op("Slice", [xs, i2, i5], "dhw")  # (D, H, W) int64
    whd = op("Gather", [dhw, const("rev", [2, 1, 0], np.int64)], "whd", axis=0)  # sizes in the grid's (x, y, z) order
    size = op("Cast", [whd], "size", to=TensorProto.FLOAT)
    # pixel coordinates of (x, y, z): ((g + 1) · size − 1) / 2, their lower corner and weights
    pix = op("Mul", [op("Sub", [op("Mul", [op("Add", [grid, one], "g1"), size], "g2"), one], "g3"), half], "pix")
    lo = op("Floor", [pix], "lo")
    w_hi = op("Sub", [pix, lo], "w_hi")
    hi = op("Add", [lo, one], "hi")
    corners = op("Concat", [op("Unsqueeze", [lo, i0], "lo_u"), op("Unsqueeze", [hi, i0], "hi_u")],
                 "corners", axis=0)  # (2, N, Do, Ho, Wo, 3)
    weights = op("Concat", [op("Unsqueeze", [op("Sub", [one, w_hi], "w_lo"), i0], "wl_u"), op("Unsqueeze", [w_hi, i0],
                 "wh_u")], "weights", axis=0)
    top = op("Sub", [size, one], "top")
    inside = op("And", [op("GreaterOrEqual", [corners, zero], "ge"), op("LessOrEqual", [corners, top], "le")], "inside")
    weights = op("Mul", [weights, op("Cast", [inside], "inside_f", to=TensorProto.FLOAT)], "w_in")  # zero outside
    index = op("Cast", [op("Min", [op("Max", [corners, zero], "c0"), top], "c1")], "cidx", to=TensorProto.INT64)
    ix, iy, iz = (p + f"{a}_idx" for a in "xyz")
    n.append(helper.make_node("Split", [index], [ix, iy, iz], axis=-1, num_outputs=3))
    wx, wy, wz = (p + f"{a}_w" for a in "xyz")
    n.append(helper.make_node("Split", [weights], [wx, wy, wz], axis=-1, num_outputs=3))

    def spread(name: str, axis: int) -> str:
        """(2, N, Do, Ho, Wo, 1) → 2 on `axis` of (2|1, 2|1, 2|1, N, Do, Ho, Wo): the 8 corners by broadcasting."""
        others = const(f"ax_{name}", [a for a in range(3) if a != axis], np.int64)
        return op("Unsqueeze", [op("Squeeze", [name, last], name[len(p):] + "_sq"), others], name[len(p):] + "_b")

    h = op("Gather", [dhw, i1], "H", axis=0)
    w = op("Gather", [dhw, i2], "W", axis=0)
    flat = op("Add", [op("Add", [op("Mul", [spread(iz, 0), op("Mul", [h, w], "HW")], "zo"),
                                 op("Mul", [spread(iy, 1), w], "yo")], "zyo"), spread(ix, 2)], "flat")
    wt = op("Mul", [op("Mul", [spread(wz, 0), spread(wy, 1)], "wzy"), spread(wx, 2)], "w8")  # (2, 2, 2, N, ...)
    batch = op("Gather", [gs, i0], "N", axis=0)
    eight = const("eight", [8], np.int64)
    by_corner = op("Concat", [eight, batch, last], "by_corner", axis=0)  # (8, N, P)
    flat = op("Transpose", [op("Reshape", [flat, by_corner], "flat8")], "flat_t", perm=[1, 0, 2])  # (N, 8, P)
    wt = op("Unsqueeze", [op("Transpose", [op("Reshape", [wt, by_corner], "w8r")], "w_t", perm=[1, 0, 2]), last], "w_u")
    rows = op("Unsqueeze", [op("Reshape", [flat, const("n_all", [0, -1], np.int64)], "flat_r"), last], "rows")
    volume = op("Transpose", [op("Reshape", [x, const("ncp", [0, 0, -1], np.int64)], "xf")], "xt", perm=[0, 2, 1])
    channels = op("Gather", [xs, i1], "C", axis=0)
    values = op("Reshape", [op("GatherND", [volume, rows], "vals", batch_dims=1),
                            op("Concat", [batch, eight, last, channels], "n8pc", axis=0)], "vals4")  # (N, 8, P, C)
    summed = op("ReduceSum", [op("Mul", [values, wt], "wv"), i1], "sum", keepdims=0)  # (N, P, C)
    shape = op("Concat", [batch, channels, op("Slice", [gs, i1, i4], "dho")], "yshape", axis=0)
    n.append(helper.make_node("Reshape", [op("Transpose", [summed], "sum_t", perm=[0, 2, 1]), shape], [y]))
    return n
