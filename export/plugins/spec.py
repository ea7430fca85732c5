"""Contract of the ``GridSample3D`` custom op, as the plugin sees it.

The ONNX node ``facecodec.plugins::GridSample3D(X, grid) -> Y`` is the 5-D
``torch.nn.functional.grid_sample(X, grid, mode="bilinear", padding_mode="zeros")``:

- ``X``    float (N, C, D, H, W)
- ``grid`` float (N, Do, Ho, Wo, 3), last axis ordered (x -> W, y -> H, z -> D), in [-1, 1]
- ``Y``    float (N, C, Do, Ho, Wo)

The constants are defined once, in ``facecodec.plugin_spec`` (the exporter imports them from
the installed package); this module re-exports them and derives what the plugin needs.
TensorRT's ONNX parser finds the plugin creator by op type, ``plugin_version`` and
``plugin_namespace``, then hands the creator the node's other attributes as fields
(``PLUGIN_FIELDS``). The C++ side repeats these constants in
``grid_sample_3d/grid_sample_3d_plugin.h``; ``tests/plugins`` checks that both agree.
"""

from __future__ import annotations

from facecodec.plugin_spec import (
    ATTRIBUTES,
    ONNX_DOMAIN,
    ONNX_DOMAIN_VERSION,
    PLUGIN_NAME,
    PLUGIN_NAMESPACE,
    PLUGIN_VERSION,
)

__all__ = [
    "ATTRIBUTES",
    "INPUT_NAMES",
    "ONNX_DOMAIN",
    "ONNX_DOMAIN_VERSION",
    "ONNX_OP_TYPE",
    "OUTPUT_NAMES",
    "PARSER_LOOKUP_ATTRIBUTES",
    "PLUGIN_FIELDS",
    "PLUGIN_NAME",
    "PLUGIN_NAMESPACE",
    "PLUGIN_VERSION",
    "SUPPORTED_MODES",
    "SUPPORTED_PADDING_MODES",
    "node_attributes",
]

ONNX_OP_TYPE = PLUGIN_NAME
INPUT_NAMES = ("X", "grid")
OUTPUT_NAMES = ("Y",)

# Attributes the ONNX parser consumes to find the creator; the others are plugin fields.
PARSER_LOOKUP_ATTRIBUTES = ("plugin_version", "plugin_namespace")
# Fields the TensorRT creator reads, with their defaults. Integers travel as INT attributes
# (TensorRT kINT32 fields) and strings as STRING attributes (kCHAR fields).
PLUGIN_FIELDS: dict[str, int | str] = {k: v for k, v in ATTRIBUTES.items() if k not in PARSER_LOOKUP_ATTRIBUTES}

SUPPORTED_MODES = ("bilinear",)
SUPPORTED_PADDING_MODES = ("zeros",)


def node_attributes(*, align_corners: bool = False) -> dict[str, int | str]:
    """Attributes for one ``GridSample3D`` node (the model uses ``align_corners=False``)."""
    return {**ATTRIBUTES, "align_corners": int(align_corners)}
