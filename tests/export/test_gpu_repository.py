"""The GPU model repository: one contract with the CPU target, TensorRT configs Triton can warm up,
and the committed files equal to their rendering."""

from __future__ import annotations

import pytest

from facecodec import io_spec
from facecodec.serving import configs, gpu
from facecodec.serving.settings import ServingSettings, profile_batches, warmup_batches
from tests.conftest import REPO

GPU_REPOSITORY, CPU_REPOSITORY = REPO / "model_repository_gpu", REPO / "model_repository"
SETTINGS = [
    ServingSettings(),
    ServingSettings(preset="vox256"),
    ServingSettings(max_batch_size=16, network_instances=2, decoder_instances=3, queue_delay_us=500),
]
IDS = ["lite", "vox256", "batch16"]
TARGET_FIELDS = ("backend", "platform", "instance_group", "parameters", "model_warmup")  # what a target may change


def _both(spec, settings):
    return configs.parse(configs.render(spec, settings)), configs.parse(configs.render(spec, settings, "gpu"))


def test_committed_repository_is_the_rendering():
    assert configs.check(GPU_REPOSITORY, ServingSettings(), target="gpu", template=CPU_REPOSITORY) == []
    assert gpu.main(["--check", "--repository", str(GPU_REPOSITORY), "--template", str(CPU_REPOSITORY)]) == 0


@pytest.mark.parametrize("settings", SETTINGS, ids=IDS)
def test_gpu_and_cpu_configs_agree_on_every_tensor(settings):
    for spec in io_spec.SERVED.values():
        cpu, served = _both(spec, settings)
        assert configs.contract(served) == configs.contract(cpu) == configs.expected_contract(spec, settings.preset)
        assert [t.optional for t in served.input] == [t.optional for t in cpu.input]
        assert served.name == cpu.name == spec.name and served.max_batch_size == cpu.max_batch_size


@pytest.mark.parametrize("settings", SETTINGS, ids=IDS)
def test_targets_differ_only_where_a_target_may(settings):
    """Batching, the sequence batcher and everything else come out identical; a field added to the CPU
    configs and not to the GPU ones fails here."""
    for spec in io_spec.SERVED.values():
        cpu, served = _both(spec, settings)
        for config in (cpu, served):
            for name in TARGET_FIELDS:
                config.ClearField(name)
        assert served == cpu, spec.name


@pytest.mark.parametrize("settings", SETTINGS, ids=IDS)
def test_every_tensorrt_model_is_a_gpu_plan_warmed_up_at_both_ends_of_its_profile(settings):
    for name, spec in io_spec.NETWORKS.items():
        _, served = _both(spec, settings)
        assert served.platform == "tensorrt_plan" and not served.backend
        assert _groups(served) == [("KIND_GPU", settings.network_instances)]
        assert served.HasField("dynamic_batching")
        assert not served.parameters  # nothing of ONNX Runtime's
        lo, _, hi = profile_batches(settings)
        assert sorted(w.batch_size for w in served.model_warmup) == sorted({lo, hi})
        expected = {n: (dtype, dims) for n, dtype, dims in configs.expected_contract(spec, settings.preset)["inputs"]}
        for warmup in served.model_warmup:
            got = {k: (_dtype_name(v.data_type), tuple(v.dims)) for k, v in warmup.inputs.items()}
            assert got == expected, (name, warmup.name)
            assert all(v.zero_data for v in warmup.inputs.values())


def _dtype_name(value: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.DataType.Name(value)


def _groups(config) -> list[tuple[str, int]]:
    from tritonclient.grpc import model_config_pb2

    return [(model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind), g.count) for g in config.instance_group]


@pytest.mark.parametrize("settings", SETTINGS, ids=IDS)
def test_the_decoder_session_runs_on_the_gpu_with_the_cpu_sessions_settings(settings):
    cpu, served = _both(io_spec.DECODER, settings)
    assert served.backend == "python" and not served.platform
    assert _groups(served) == [("KIND_GPU", settings.decoder_instances)]
    assert served.sequence_batching == cpu.sequence_batching
    cpu_params = {k: v.string_value for k, v in cpu.parameters.items()}
    assert {k: v.string_value for k, v in served.parameters.items()} == {
        k: v for k, v in cpu_params.items() if k not in configs.CPU_ONLY_PARAMETERS
    }
    assert "max_sessions" in served.parameters and "session_idle_s" in served.parameters


def test_the_decoder_shares_the_cpu_model_file(tmp_path):
    written = configs.write(tmp_path, ServingSettings(), target="gpu", template=CPU_REPOSITORY)
    assert (tmp_path / "decoder" / "1" / "model.py").read_bytes() == (CPU_REPOSITORY / "decoder/1/model.py").read_bytes()
    assert len(written) == len(io_spec.SERVED) + 1
    (tmp_path / "decoder" / "1" / "model.py").write_text("# edited\n")
    (tmp_path / "warp_decoder" / "config.pbtxt").write_text(
        (tmp_path / "warp_decoder" / "config.pbtxt").read_text().replace("KIND_GPU", "KIND_CPU"))
    problems = configs.check(tmp_path, ServingSettings(), target="gpu", template=CPU_REPOSITORY)
    assert any("model.py" in p for p in problems) and any("warp_decoder" in p for p in problems)


def test_profiles_and_warmups_come_from_the_same_settings():
    s = ServingSettings(max_batch_size=4)
    assert profile_batches(s) == (1, 4, 4) and warmup_batches(s) == (1, 4)
    assert warmup_batches(ServingSettings(max_batch_size=1)) == (1,)
    assert profile_batches(s, opt=2) == (1, 2, 4)


def test_server_arguments_load_the_plugin_and_size_the_cuda_pool(tmp_path):
    lite, vox = ServingSettings(), ServingSettings(preset="vox256")
    assert gpu.cuda_pool_bytes(lite) == 64 << 20  # Triton's default is enough for lite
    # vox256 at batch 8: f_s is 8 MiB a frame; the pool holds two full warp_decoder batches
    assert gpu.cuda_pool_bytes(vox) >= 2 * 8 * (8 << 20) and gpu.cuda_pool_bytes(vox) % (64 << 20) == 0
    lib = tmp_path / "libfacecodec_plugins.so"
    lib.write_bytes(b"")
    args = gpu.server_arguments(tmp_path / "repo", gpu.plugin_library(lib), vox, gpus=2)
    assert f"--backend-config=tensorrt,plugins={lib}" in args
    assert f"--model-repository={tmp_path / 'repo'}" in args
    pool = gpu.cuda_pool_bytes(vox)
    assert [a for a in args if a.startswith("--cuda-memory-pool")] == [
        f"--cuda-memory-pool-byte-size=0:{pool}", f"--cuda-memory-pool-byte-size=1:{pool}"]
