"""The committed Triton configs and the docs' tensor table are the rendering of io_spec (no server)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from facecodec import io_spec
from facecodec.serving import configs
from facecodec.serving.settings import ServingSettings

REPO = Path(__file__).resolve().parents[2]
REPOSITORY = REPO / "model_repository"
DOCS = REPO / "docs" / "serving.md"


@pytest.mark.parametrize("name", list(io_spec.SERVED))
def test_committed_config_is_the_rendering(name):
    text = configs.config_path(REPOSITORY, name).read_text()
    assert text == configs.render(io_spec.SERVED[name], ServingSettings()), (
        f"{name}/config.pbtxt is stale: run `python -m facecodec.serving.configs --write`"
    )


@pytest.mark.parametrize("name", list(io_spec.SERVED))
def test_config_parses_and_matches_io_spec(name):
    config = configs.parse(configs.config_path(REPOSITORY, name).read_text())
    assert config.name == name and config.backend == "python"
    assert configs.contract(config) == configs.expected_contract(io_spec.SERVED[name], "lite")


def test_decoder_is_a_sequence_model_and_networks_batch_dynamically():
    decoder = configs.parse(configs.config_path(REPOSITORY, "decoder").read_text())
    assert decoder.sequence_batching.HasField("oldest")
    assert {c.name for c in decoder.sequence_batching.control_input} == {*configs.CONTROLS, configs.CORRID}
    assert all(t.optional for t in decoder.input)
    settings = ServingSettings()
    assert decoder.sequence_batching.oldest.max_candidate_sequences > int(
        decoder.parameters["max_sessions"].string_value
    )
    assert decoder.sequence_batching.max_sequence_idle_microseconds == settings.session_idle_s * 1e6
    for name in io_spec.NETWORKS:
        config = configs.parse(configs.config_path(REPOSITORY, name).read_text())
        assert config.HasField("dynamic_batching") and config.max_batch_size == settings.max_batch_size


def test_other_settings_render_other_values():
    settings = ServingSettings(preset="vox256", decoder_instances=2, max_sessions=4)
    config = configs.parse(configs.render(io_spec.DECODER, settings))
    assert config.instance_group[0].count == 2
    assert config.parameters["max_sessions"].string_value == "4"
    assert configs.contract(config) == configs.expected_contract(io_spec.DECODER, "vox256")


def test_runtime_and_queue_delay_settings():
    default = configs.parse(configs.render(io_spec.DECODER, ServingSettings()))
    assert default.parameters["runtime"].string_value == "openvino"
    ort = configs.parse(configs.render(io_spec.WARP_DECODER, ServingSettings(runtime="onnxruntime")))
    assert ort.parameters["runtime"].string_value == "onnxruntime"
    gpu = configs.parse(configs.render(io_spec.DECODER, ServingSettings(runtime="openvino"), target="gpu"))
    assert "runtime" not in gpu.parameters and "warp_precision" not in gpu.parameters  # no CPU runtime there
    for spec in (io_spec.DECODER, io_spec.WARP_DECODER):  # the two that run the warp
        rendered = configs.parse(configs.render(spec, ServingSettings()))
        assert rendered.parameters["warp_precision"].string_value == "bf16"
    exact = configs.parse(configs.render(io_spec.DECODER, ServingSettings(warp_precision="f32")))
    assert exact.parameters["warp_precision"].string_value == "f32"
    assert "warp_precision" not in configs.parse(configs.render(io_spec.MOTION_ENCODER, ServingSettings())).parameters
    with pytest.raises(ValueError, match="warp_precision must be one of f32, bf16"):
        ServingSettings(warp_precision="fp16")
    no_wait = configs.parse(configs.render(io_spec.DECODER, ServingSettings(queue_delay_us=0)))
    assert no_wait.sequence_batching.oldest.max_queue_delay_microseconds == 0
    with pytest.raises(ValueError):
        ServingSettings(runtime="tensorflow")
    with pytest.raises(ValueError):
        ServingSettings(queue_delay_us=-1)


def test_docs_tensor_table_is_generated():
    assert configs.tensor_table(ServingSettings()) in DOCS.read_text()
    assert configs.check(REPOSITORY, ServingSettings(), DOCS) == []


@pytest.mark.parametrize("name", list(io_spec.SERVED))
def test_model_py_is_thin(name):
    """initialize/execute/finalize only, each one line delegating to facecodec.serving."""
    source = (REPOSITORY / name / "1" / "model.py").read_text()
    (cls,) = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert cls.name == "TritonPythonModel"
    assert [f.name for f in cls.body] == ["initialize", "execute", "finalize"]
    assert all(len(f.body) == 1 for f in cls.body)
    assert "from facecodec.serving.backend import" in source
