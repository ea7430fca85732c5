"""export/engines.py without TensorRT: sources, profiles, stripping, trtexec command lines, stamps, and
the trtexec build path driven end to end by a stand-in trtexec."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import helper

from export import engines
from facecodec import io_spec, plugin_spec
from facecodec.presets import get_preset
from facecodec.serving.settings import ServingSettings
from tests.conftest import REPO

LITE = ServingSettings()


def test_imports_without_tensorrt():
    for name in ("export.engines", "export.compare", "facecodec.serving.gpu"):
        importlib.import_module(name)
    assert "tensorrt" not in sys.modules and "polygraphy" not in sys.modules


def test_each_network_is_built_from_its_export_and_warp_decoder_from_the_plugin_variant(tmp_path):
    jobs = {j.name: j for j in engines.engine_jobs(tmp_path / "onnx", tmp_path / "repo", tmp_path / "work", LITE)}
    assert set(jobs) == set(io_spec.NETWORKS)
    assert jobs["motion_encoder"].parse_path == tmp_path / "onnx" / "motion_encoder.onnx"
    assert jobs["appearance_encoder"].parse_path == tmp_path / "onnx" / "appearance_encoder.onnx"
    warp = jobs["warp_decoder"]
    assert warp.onnx == tmp_path / "onnx" / "warp_decoder_trt.onnx" and warp.plugin
    assert warp.parse_path == tmp_path / "work" / "warp_decoder_trt.plugin.onnx"
    assert not jobs["motion_encoder"].plugin and not jobs["appearance_encoder"].plugin
    for name, job in jobs.items():
        assert job.plan == tmp_path / "repo" / name / "1" / "model.plan"
        assert job.stamp_path == tmp_path / "repo" / name / "1" / "engine.json"


@pytest.mark.parametrize("settings", [LITE, ServingSettings(preset="vox256", max_batch_size=16)], ids=["lite", "vox256"])
def test_profiles_cover_every_batch_the_config_allows_with_io_spec_shapes(settings):
    cfg = get_preset(settings.preset)
    top = settings.max_batch_size
    for name, spec in io_spec.NETWORKS.items():
        shapes = engines.profile_shapes(name, settings)
        assert list(shapes) == spec.input_names
        for t in spec.inputs:
            lo, opt, hi = shapes[t.name]
            assert lo == (1, *t.resolve(cfg)) and opt == (top, *t.resolve(cfg)) and hi == (top, *t.resolve(cfg))
    c, d, h, w = cfg.feature_shape
    assert engines.profile_shapes("warp_decoder", settings)["source_features"][2] == (top, c, d, h, w)


def test_opt_batch_can_be_chosen_inside_the_served_range():
    shapes = engines.profile_shapes("motion_encoder", LITE, opt=4)["image"]
    assert shapes == ((1, 3, 256, 256), (4, 3, 256, 256), (8, 3, 256, 256))
    for bad in (0, LITE.max_batch_size + 1):
        with pytest.raises(ValueError, match="outside the served range"):
            engines.profile_shapes("motion_encoder", LITE, opt=bad)


def _plugin_nodes(model):
    return [n for n in model.graph.node if n.domain == plugin_spec.ONNX_DOMAIN and n.op_type == plugin_spec.PLUGIN_NAME]


def test_stripping_removes_the_local_function_and_keeps_the_plugin_nodes(plugin_model):
    assert [f.name for f in plugin_model.functions] == [plugin_spec.PLUGIN_NAME]
    stripped = engines.strip_plugin_functions(plugin_model)
    assert list(stripped.functions) == []
    (node,) = _plugin_nodes(stripped)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {k: v.encode() if isinstance(v, str) else v for k, v in plugin_spec.ATTRIBUTES.items()}
    assert (list(node.input), list(node.output)) == (["X", "grid"], ["Y"])
    # the rest of the model is untouched, and the input model is not modified
    assert stripped.graph.input == plugin_model.graph.input and stripped.graph.output == plugin_model.graph.output
    assert {(o.domain, o.version) for o in stripped.opset_import} == {(o.domain, o.version) for o in plugin_model.opset_import}
    assert len(plugin_model.functions) == 1
    onnx.checker.check_model(stripped)


def test_stripping_refuses_graphs_it_does_not_understand(plugin_model):
    from tests.export.conftest import grid_sample_model

    with pytest.raises(ValueError, match="no GridSample3D nodes"):
        engines.strip_plugin_functions(grid_sample_model())
    with pytest.raises(ValueError, match="already stripped"):
        engines.strip_plugin_functions(engines.strip_plugin_functions(plugin_model))
    broken = onnx.ModelProto()
    broken.CopyFrom(plugin_model)
    node = _plugin_nodes(broken)[0]
    kept = [a for a in node.attribute if a.name != "plugin_version"]
    del node.attribute[:]
    node.attribute.extend(kept)
    with pytest.raises(ValueError, match="plugin_version"):
        engines.strip_plugin_functions(broken)


def _modes(model) -> dict[str, str]:
    return {n.name: helper.get_attribute_value(next(a for a in n.attribute if a.name == "mode")).decode()
            for n in model.graph.node if n.op_type == "GridSample"}


def test_tensorrt_model_spells_grid_sample_modes_as_the_parser_knows_them(plugin_model):
    # opset 20's "linear" reaches onnx-tensorrt's GridSample importer as an unknown string: nearest
    assert _modes(plugin_model) == {"/warp/GridSample_1": "linear"}
    parsed = engines.tensorrt_model(plugin_model)
    assert _modes(parsed) == {"/warp/GridSample_1": "bilinear"}
    (warp,) = [n for n in parsed.graph.node if n.op_type == "GridSample"]
    attrs = {a.name: helper.get_attribute_value(a) for a in warp.attribute}
    assert attrs == {"mode": b"bilinear", "padding_mode": b"border", "align_corners": 1}
    assert not parsed.functions and len(_plugin_nodes(parsed)) == 1
    assert _modes(plugin_model) == {"/warp/GridSample_1": "linear"}  # the ONNX Runtime file keeps opset 20's name


@pytest.mark.parametrize("mode, expected", [("linear", "bilinear"), ("cubic", "bicubic"), ("nearest", "nearest"),
                                            ("bilinear", "bilinear"), (None, "bilinear")])
def test_every_grid_sample_mode_gets_tensorrts_name(mode, expected):
    attrs = {"mode": mode} if mode else {}
    node = helper.make_node("GridSample", ["image", "flow"], ["warped"], name="warp", **attrs)
    x = helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 1, 4, 4])
    grid = helper.make_tensor_value_info("flow", onnx.TensorProto.FLOAT, [1, 4, 4, 2])
    y = helper.make_tensor_value_info("warped", onnx.TensorProto.FLOAT, [1, 1, 4, 4])
    model = helper.make_model(helper.make_graph([node], "g", [x, grid], [y]))
    assert _modes(engines.spell_grid_sample_modes(model)) == {"warp": expected}
    del model.graph.node[0].attribute[:]
    model.graph.node[0].attribute.append(helper.make_attribute("mode", "trilinear"))
    with pytest.raises(ValueError, match="'trilinear', which TensorRT's parser does not know"):
        engines.spell_grid_sample_modes(model)


def test_what_tensorrt_would_misread_is_refused(plugin_model):
    with pytest.raises(ValueError, match="local functions"):
        engines.check_tensorrt_model(plugin_model, "warp_decoder_trt.onnx")
    stripped = engines.strip_plugin_functions(plugin_model)
    with pytest.raises(ValueError, match="'linear', which TensorRT's parser reads as nearest"):
        engines.check_tensorrt_model(stripped, "warp_decoder_trt.onnx")
    engines.check_tensorrt_model(engines.spell_grid_sample_modes(stripped), "warp_decoder_trt.onnx")


def test_an_encoder_with_a_misread_grid_sample_is_refused(tmp_path):
    from tests.export.conftest import grid_sample_model

    onnx.save(grid_sample_model(), str(tmp_path / "motion_encoder.onnx"))
    (job,) = engines.engine_jobs(tmp_path, tmp_path / "repo", tmp_path / "w", LITE, models=["motion_encoder"])
    with pytest.raises(ValueError, match="motion_encoder.onnx: GridSample /warp/GridSample has mode 'linear'"):
        engines.prepare(job)


def test_prepare_writes_the_stripped_file_tensorrt_parses(onnx_dir, tmp_path):
    jobs = {j.name: j for j in engines.engine_jobs(onnx_dir, tmp_path / "repo", tmp_path / "work", LITE)}
    assert engines.prepare(jobs["motion_encoder"]) == onnx_dir / "motion_encoder.onnx"
    parsed = onnx.load(str(engines.prepare(jobs["warp_decoder"])))
    assert not parsed.functions and len(_plugin_nodes(parsed)) == 1
    assert _modes(parsed) == {"/warp/GridSample_1": "bilinear"}
    with pytest.raises(FileNotFoundError, match="export first"):
        engines.prepare(engines.engine_jobs(tmp_path / "none", tmp_path, tmp_path, LITE, models=["motion_encoder"])[0])


def _options(tmp_path, **kw):
    return engines.BuildOptions(timing_cache=tmp_path / "t.cache", plugin=Path("/opt/lib/libfacecodec_plugins.so"), **kw)


def test_trtexec_command_lines(tmp_path):
    jobs = {j.name: j for j in engines.engine_jobs(tmp_path / "onnx", tmp_path / "repo", tmp_path / "w", LITE)}
    warp = engines.trtexec_command(jobs["warp_decoder"], _options(tmp_path), "trtexec")
    feats = "source_features:{}x16x8x64x64"
    assert warp == [
        "trtexec",
        f"--onnx={tmp_path}/w/warp_decoder_trt.plugin.onnx",
        f"--saveEngine={tmp_path}/repo/warp_decoder/1/model.plan",
        "--minShapes=source_image:1x3x256x256," + feats.format(1) + ",kp_source:1x15x3,kp_driving:1x15x3"
        ",expression_flow:1x3x128x128",
        "--optShapes=source_image:8x3x256x256," + feats.format(8) + ",kp_source:8x15x3,kp_driving:8x15x3"
        ",expression_flow:8x3x128x128",
        "--maxShapes=source_image:8x3x256x256," + feats.format(8) + ",kp_source:8x15x3,kp_driving:8x15x3"
        ",expression_flow:8x3x128x128",
        "--fp16",
        "--memPoolSize=workspace:2048M",
        f"--timingCacheFile={tmp_path}/t.cache",
        "--staticPlugins=/opt/lib/libfacecodec_plugins.so",
        "--skipInference",
    ]
    motion = engines.trtexec_command(jobs["motion_encoder"], _options(tmp_path, fp16=False, workspace_mib=512))
    assert f"--onnx={tmp_path}/onnx/motion_encoder.onnx" in motion
    assert "--fp16" not in motion and "--memPoolSize=workspace:512M" in motion
    assert not any(a.startswith("--staticPlugins") for a in motion)


def test_print_trtexec_needs_no_tensorrt(onnx_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FACECODEC_PLUGIN_LIB", "/opt/facecodec/lib/libfacecodec_plugins.so")
    rc = engines.main(["--onnx-dir", str(onnx_dir), "--repository", str(tmp_path / "repo"),
                       "--work-dir", str(tmp_path / "w"), "--print-trtexec", "--max-batch-size", "4"])
    out = capsys.readouterr().out
    assert rc == 0
    commands = [line for line in out.splitlines() if line.startswith("trtexec ")]
    assert len(commands) == 3 and all("--maxShapes=" in c and "x" in c for c in commands)
    assert "--staticPlugins=/opt/facecodec/lib/libfacecodec_plugins.so" in commands[2]
    assert ":4x3x256x256" in commands[0]
    assert (tmp_path / "w" / "warp_decoder_trt.plugin.onnx").is_file()
    assert not (tmp_path / "repo").exists()  # nothing built


@pytest.mark.parametrize("banner, version", [
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v101100] # trtexec --help", "10.11.0"),
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec", "10.3.0"),
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec", "8.6.1"),
    ("usage: trtexec", None),
])
def test_trtexec_banner_version(banner, version):
    assert engines.parse_trtexec_version(banner) == version


def test_gpu_query_parsing():
    assert engines.parse_gpu_query("NVIDIA H100 80GB HBM3, 9.0\nNVIDIA H100 80GB HBM3, 9.0\n") == ("NVIDIA H100 80GB HBM3", "9.0")
    assert engines.parse_gpu_query("") is None


def test_plugin_library_comes_from_the_argument_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("FACECODEC_PLUGIN_LIB", raising=False)
    with pytest.raises(FileNotFoundError, match="FACECODEC_PLUGIN_LIB"):
        engines.load_plugin()
    monkeypatch.setenv("FACECODEC_PLUGIN_LIB", str(tmp_path / "missing.so"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        engines.load_plugin()


FAKE_TRTEXEC = """#!/bin/sh
# stands in for trtexec: banner, one log line per call, and the engine file it was asked for
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v101100] # trtexec $*"
[ "$1" = "--help" ] && exit 0
for arg in "$@"; do
  case "$arg" in
    --saveEngine=*) printf 'plan' > "${arg#--saveEngine=}" ;;
    --onnx=*) test -f "${arg#--onnx=}" || exit 3 ;;
  esac
done
echo "$*" >> "$(dirname "$0")/calls.log"
"""


@pytest.fixture
def fake_trtexec(tmp_path, monkeypatch):
    path = tmp_path / "bin" / "trtexec"
    path.parent.mkdir()
    path.write_text(FAKE_TRTEXEC)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(engines, "gpu_identity", lambda: ("NVIDIA L4", "8.9"))
    monkeypatch.delenv("TRT_VERSION", raising=False)
    return path


def _calls(fake_trtexec) -> list[str]:
    log = fake_trtexec.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_trtexec_builds_stamps_and_rebuilds_only_what_changed(onnx_dir, tmp_path, fake_trtexec, monkeypatch):
    plugin = tmp_path / "libfacecodec_plugins.so"
    plugin.write_bytes(b"not really a library")
    jobs = engines.engine_jobs(onnx_dir, tmp_path / "repo", tmp_path / "w", LITE)
    options = engines.BuildOptions(tmp_path / "w" / "timing.cache", plugin)
    build = lambda: engines.build(jobs, options, builder="trtexec", trtexec=str(fake_trtexec), if_stale=True)  # noqa: E731

    assert build().built == list(engines.SOURCES)
    assert len(_calls(fake_trtexec)) == 3
    for job in jobs:
        assert job.plan.read_bytes() == b"plan" and not job.plan.with_name("model.plan.tmp").exists()
        stamp = json.loads(job.stamp_path.read_text())
        assert stamp["gpu"] == "NVIDIA L4" and stamp["compute_capability"] == "8.9" and stamp["tensorrt"] == "10.11.0"
        assert stamp["precision"] == "fp16" and stamp["shapes"] == {k: [list(s) for s in v] for k, v in job.shapes.items()}
    assert "--staticPlugins=" + str(plugin) in _calls(fake_trtexec)[2]

    report = build()
    assert report.built == [] and report.current == list(engines.SOURCES)

    onnx.save(onnx.load(str(onnx_dir / "warp_decoder_trt.onnx")), str(onnx_dir / "warp_decoder_trt.onnx"))
    plugin.write_bytes(b"a rebuilt library")
    assert build().built == ["warp_decoder"]  # the plugin changed

    monkeypatch.setenv("TRT_VERSION", "10.13.3.9")  # names another TensorRT than the builder's: not trusted
    assert build().built == []
    fake_trtexec.write_text(FAKE_TRTEXEC.replace("v101100", "v101303"))
    assert build().built == list(engines.SOURCES)  # another TensorRT builds: every plan
    assert {json.loads(job.stamp_path.read_text())["tensorrt"] for job in jobs} == {"10.13.3"}


def test_the_version_is_the_builders_and_a_different_environment_is_logged(fake_trtexec, monkeypatch, caplog):
    monkeypatch.setenv("TRT_VERSION", "10.11.0.33")
    assert engines.tensorrt_version("trtexec", str(fake_trtexec)) == "10.11.0"
    assert "TRT_VERSION" not in caplog.text  # the same release, written with a build number
    monkeypatch.setenv("TRT_VERSION", "10.9.0.34")
    assert engines.tensorrt_version("trtexec", str(fake_trtexec)) == "10.11.0"
    assert "building with TensorRT 10.11.0, but $TRT_VERSION is 10.9.0.34" in caplog.text


def test_a_new_gpu_rebuilds_and_drops_the_timing_cache(onnx_dir, tmp_path, fake_trtexec, monkeypatch):
    jobs = engines.engine_jobs(onnx_dir, tmp_path / "repo", tmp_path / "w", LITE, models=["motion_encoder"])
    cache = tmp_path / "w" / "timing.cache"
    options = engines.BuildOptions(cache)
    engines.build(jobs, options, builder="trtexec", trtexec=str(fake_trtexec), if_stale=True)
    cache.write_bytes(b"timings of an L4")
    monkeypatch.setattr(engines, "gpu_identity", lambda: ("NVIDIA H100 80GB HBM3", "9.0"))
    assert engines.build(jobs, options, builder="trtexec", trtexec=str(fake_trtexec), if_stale=True).built == ["motion_encoder"]
    assert not cache.exists()


def test_a_rebuilt_plugin_drops_the_timing_cache_that_holds_its_timings(onnx_dir, tmp_path, fake_trtexec):
    plugin = tmp_path / "libfacecodec_plugins.so"
    plugin.write_bytes(b"build 1")
    cache = tmp_path / "w" / "timing.cache"
    everything = engines.engine_jobs(onnx_dir, tmp_path / "repo", tmp_path / "w", LITE)
    build = lambda jobs: engines.build(jobs, engines.BuildOptions(cache, plugin), builder="trtexec",  # noqa: E731
                                       trtexec=str(fake_trtexec))
    build(everything)
    cache.write_bytes(b"timings, the plugin's among them")
    build([j for j in everything if not j.plugin])  # no plugin involved: the cache stays
    assert cache.read_bytes() == b"timings, the plugin's among them"
    build(everything)  # the same plugin build
    assert cache.is_file()
    plugin.write_bytes(b"build 2")
    build(everything)
    assert not cache.exists()


def test_without_a_known_gpu_every_start_rebuilds(onnx_dir, tmp_path, fake_trtexec, monkeypatch):
    monkeypatch.setattr(engines, "gpu_identity", lambda: ("unknown", "unknown"))
    jobs = engines.engine_jobs(onnx_dir, tmp_path / "repo", tmp_path / "w", LITE, models=["appearance_encoder"])
    options = engines.BuildOptions(tmp_path / "w" / "timing.cache")
    for _ in range(2):
        assert engines.build(jobs, options, builder="trtexec", trtexec=str(fake_trtexec), if_stale=True).built


def test_a_failing_trtexec_leaves_no_plan(onnx_dir, tmp_path, fake_trtexec):
    fake_trtexec.write_text("#!/bin/sh\necho 'Error: parser failed'\nexit 1\n")
    jobs = engines.engine_jobs(onnx_dir, tmp_path / "repo", tmp_path / "w", LITE, models=["motion_encoder"])
    with pytest.raises(RuntimeError, match="trtexec failed with exit code 1"):
        engines.build(jobs, engines.BuildOptions(tmp_path / "c"), builder="trtexec", trtexec=str(fake_trtexec))
    assert not jobs[0].plan.exists() and not jobs[0].stamp_path.exists()


def test_no_builder_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(engines.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="neither TensorRT's Python package nor trtexec"):
        engines.resolve_builder("auto", None)
    assert engines.resolve_builder("auto", "/usr/bin/trtexec") == "trtexec"


# --- the plugin library and TensorRT's libnvinfer, with real shared libraries ----------------------
# A wheel-installed TensorRT keeps libnvinfer.so.10 beside its package, off the loader's path, and its
# `import tensorrt` loads it by full path. Stand-ins built here with the system C compiler: a
# libnvinfer.so.10 holding a plugin registry, a plugin library that needs it (DT_NEEDED, no rpath) and
# registers its creator when loaded, and a `tensorrt` package that loads the former as the wheel does.

LIBNVINFER_C = r"""
#include <string.h>
static const char* creators[8];
static int count;
void registerCreator(const char* name) { if (count < 8) creators[count++] = name; }
int hasCreator(const char* name) {
  for (int i = 0; i < count; ++i) if (strcmp(creators[i], name) == 0) return 1;
  return 0;
}
"""
PLUGIN_C = r"""
void registerCreator(const char* name);
__attribute__((constructor)) static void registerGridSample3D(void) { registerCreator("GridSample3D"); }
"""
TENSORRT_PACKAGE = """
import ctypes, os
__version__ = "10.11.0.33"
_nvinfer = ctypes.CDLL(os.environ["STANDIN_NVINFER"])  # by full path, as the wheel loads tensorrt_libs


class _Registry:
    def get_creator(self, name, version, namespace):
        return name if _nvinfer.hasCreator(name.encode()) else None


def get_plugin_registry():
    return _Registry()
"""


@pytest.fixture
def wheel_like_tensorrt(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    libs, site = tmp_path / "tensorrt_libs", tmp_path / "site"
    (site / "tensorrt").mkdir(parents=True)
    libs.mkdir()
    nvinfer, plugin = libs / "libnvinfer.so.10", tmp_path / "libfacecodec_plugins.so"
    (tmp_path / "nvinfer.c").write_text(LIBNVINFER_C)
    (tmp_path / "plugin.c").write_text(PLUGIN_C)
    for cmd in ([cc, "-shared", "-fPIC", "-Wl,-soname,libnvinfer.so.10", "-o", nvinfer, tmp_path / "nvinfer.c"],
                [cc, "-shared", "-fPIC", "-Wl,--no-undefined", "-o", plugin, tmp_path / "plugin.c", nvinfer]):
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True)
    (site / "tensorrt" / "__init__.py").write_text(TENSORRT_PACKAGE)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{site}{os.pathsep}{REPO}", "STANDIN_NVINFER": str(nvinfer),
           "TRT_VERSION": "10.9.0.34"}
    return plugin, env


def test_plugin_is_loaded_after_tensorrt_so_it_links_tensorrts_libnvinfer(wheel_like_tensorrt):
    plugin, env = wheel_like_tensorrt
    code = ("import sys; from export import engines; print(engines.load_plugin(sys.argv[1]).name); "
            "print(engines.tensorrt_version('python', None))")
    run = subprocess.run([sys.executable, "-c", code, str(plugin)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr  # loaded first, the library would not find libnvinfer.so.10
    assert run.stdout.split() == ["libfacecodec_plugins.so", "10.11.0.33"]  # the builder's, not $TRT_VERSION

