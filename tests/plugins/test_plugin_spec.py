"""The GridSample3D contract: spec.py (imported by the ONNX exporter) vs the C++ plugin."""

import re

import pytest

from export.plugins import capi, spec

PLUGIN_HEADER = capi.SOURCE_DIR / "grid_sample_3d_plugin.h"
PLUGIN_SOURCE = capi.PLUGIN_SOURCE


def cpp_constants() -> dict[str, str | int]:
    """``constexpr ... kNAME{value};`` lines of the plugin header."""
    pattern = re.compile(r'constexpr\s+(?:char const\*|int32_t)\s+(k[A-Z_]+)\{("?)([^"}]*)\2\};')
    return {
        name: value if quote else int(value)
        for name, quote, value in pattern.findall(PLUGIN_HEADER.read_text())
    }


def test_plugin_identity_matches_spec():
    constants = cpp_constants()
    assert constants["kPLUGIN_NAME"] == spec.PLUGIN_NAME == spec.ONNX_OP_TYPE == "GridSample3D"
    assert constants["kPLUGIN_VERSION"] == spec.PLUGIN_VERSION == "1"
    assert constants["kPLUGIN_NAMESPACE"] == spec.PLUGIN_NAMESPACE == ""
    assert spec.ONNX_DOMAIN == "facecodec.plugins"


def test_plugin_fields_match_spec():
    constants = cpp_constants()
    fields = {
        value: constants[name.replace("kFIELD_", "kDEFAULT_")]
        for name, value in constants.items()
        if name.startswith("kFIELD_")
    }
    assert fields == spec.PLUGIN_FIELDS


def creator_fields() -> set[str]:
    """The constants naming the fields the creator's constructor advertises (getFieldNames)."""
    source = PLUGIN_SOURCE.read_text()
    constructor = re.search(r"GridSample3DPluginCreator::GridSample3DPluginCreator\(\)(.*?)\n\{", source, re.S)
    assert constructor is not None
    return set(re.findall(r"PluginField\{(kFIELD_[A-Z_]+)", constructor.group(1)))


def creator_field_names() -> set[str]:
    """The attribute names the creator reads, as the C++ source spells them."""
    constants = cpp_constants()
    return {constants[name] for name in creator_fields()}


def test_creator_advertises_every_field():
    # The ONNX parser hands the creator only the attributes getFieldNames() lists.
    assert creator_fields() == {name for name in cpp_constants() if name.startswith("kFIELD_")}
    assert creator_field_names() == set(spec.PLUGIN_FIELDS)
    assert "REGISTER_TENSORRT_PLUGIN(GridSample3DPluginCreator)" in PLUGIN_SOURCE.read_text()


def test_attributes_cover_plugin_lookup_and_fields():
    assert spec.ATTRIBUTES == {
        "align_corners": 0,
        "mode": "bilinear",
        "padding_mode": "zeros",
        "plugin_version": "1",
        "plugin_namespace": "",
    }
    assert spec.SUPPORTED_MODES == (spec.PLUGIN_FIELDS["mode"],)
    assert spec.SUPPORTED_PADDING_MODES == (spec.PLUGIN_FIELDS["padding_mode"],)
    assert spec.INPUT_NAMES == ("X", "grid") and spec.OUTPUT_NAMES == ("Y",)


@pytest.mark.parametrize("align_corners", [False, True])
def test_onnx_node_attribute_types(align_corners):
    # TensorRT's ONNX parser maps INT attributes to kINT32 fields and STRING to kCHAR,
    # which is what the creator parses.
    onnx = pytest.importorskip("onnx")
    node = onnx.helper.make_node(
        spec.ONNX_OP_TYPE,
        list(spec.INPUT_NAMES),
        list(spec.OUTPUT_NAMES),
        domain=spec.ONNX_DOMAIN,
        **spec.node_attributes(align_corners=align_corners),
    )
    attributes = {a.name: a for a in node.attribute}
    types = {name: a.type for name, a in attributes.items()}
    assert types == {
        "align_corners": onnx.AttributeProto.INT,
        "mode": onnx.AttributeProto.STRING,
        "padding_mode": onnx.AttributeProto.STRING,
        "plugin_version": onnx.AttributeProto.STRING,
        "plugin_namespace": onnx.AttributeProto.STRING,
    }
    assert onnx.helper.get_attribute_value(attributes["align_corners"]) == int(align_corners)
    assert node.domain == spec.ONNX_DOMAIN and node.op_type == spec.PLUGIN_NAME
