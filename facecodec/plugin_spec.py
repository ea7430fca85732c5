"""Contract of the custom warping node shared by the ONNX exporter and the TensorRT plugin.

The TensorRT variant of `warp_decoder` replaces every 5-D GridSample with this node. ONNX Runtime
runs it through a model-local ONNX function whose body is the standard GridSample; TensorRT's
parser, once that function is stripped (`export/engines.py`), finds the plugin by name, version
and namespace. The CUDA sources in `export/plugins/` are checked against these constants.
"""

PLUGIN_NAME = "GridSample3D"  # ONNX op_type and TensorRT plugin name
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""
ONNX_DOMAIN = "facecodec.plugins"
ONNX_DOMAIN_VERSION = 1
# attribute name → value the model uses (trilinear, zeros padding, align_corners=False)
ATTRIBUTES = {
    "align_corners": 0,
    "mode": "bilinear",
    "padding_mode": "zeros",
    "plugin_version": PLUGIN_VERSION,
    "plugin_namespace": PLUGIN_NAMESPACE,
}
