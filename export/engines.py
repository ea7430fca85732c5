"""ONNX → TensorRT plans for the GPU model repository (`model_repository_gpu/<name>/1/model.plan`).

    python -m export.engines --onnx-dir artifacts/onnx/lite [--plugin build/plugins/libfacecodec_plugins.so]
    python -m export.engines --onnx-dir ... --print-trtexec   # the same builds as trtexec command lines
    python -m export.engines --onnx-dir ... --if-stale        # rebuild only what changed (the container's start)

One fp16 engine per served network, each with one optimisation profile over every batch its Triton
config allows (1 .. max_batch_size, opt from the settings; `gpu.profile_batches`) and the io_spec
shapes of the preset, sharing one timing cache. warp_decoder is built from warp_decoder_trt.onnx,
whose 5-D grid samples are `GridSample3D` plugin nodes backed by a model-local ONNX function (so ONNX
Runtime can run that file): TensorRT's parser would inline the function, so it is stripped first and
the parser falls back to the plugin registered by libfacecodec_plugins.so. The stock (4-D) GridSample
left in that file gets its mode in the spelling TensorRT's parser knows (`tensorrt_model`).

Engines are specific to the GPU model and the TensorRT version that built them. Each plan gets a
stamp (`engine.json`: ONNX and plugin digests, shapes, precision, GPU, TensorRT) that `--if-stale`
compares. Two builders make the same engine: TensorRT's Python API (`tensorrt`, imported only when
building) and `trtexec`, which the Triton image has without TensorRT's Python bindings.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib.util
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx
from onnx import helper

from facecodec import io_spec, plugin_spec
from facecodec.commands import run_command
from facecodec.presets import get_preset
from facecodec.serving.gpu import PLUGIN_ENV, plugin_library
from facecodec.serving.settings import ServingSettings, add_arguments, from_arguments, profile_batches

log = logging.getLogger("export.engines")

# Which exported file each engine is built from (facecodec.onnx_export writes all of them).
SOURCES = {
    "motion_encoder": "motion_encoder.onnx",
    "appearance_encoder": "appearance_encoder.onnx",
    "warp_decoder": "warp_decoder_trt.onnx",  # the plugin variant (facecodec.onnx_export.PLUGIN_SUFFIX)
}
PLAN, STAMP = "model.plan", "engine.json"
STRIPPED_SUFFIX = ".plugin.onnx"  # the plugin variant without its local function, as TensorRT parses it
# GridSample mode → the name TensorRT's ONNX parser knows. Opset 20 renamed bilinear/bicubic to
# linear/cubic; the parser (onnx-tensorrt's GridSample importer) still compares against the opset-16
# names and samples nearest-neighbour for any other string, without a warning (NVIDIA/TensorRT#4646).
# An absent mode is linear interpolation in every opset.
TENSORRT_GRID_SAMPLE_MODES = {"linear": "bilinear", "bilinear": "bilinear", "cubic": "bicubic", "bicubic": "bicubic",
                              "nearest": "nearest"}
TRTEXEC_ENV = "FACECODEC_TRTEXEC"
TRTEXEC_PATHS = ("/usr/src/tensorrt/bin/trtexec", "/opt/tensorrt/bin/trtexec")  # NVIDIA's containers

Shape = tuple[int, ...]


@dataclass(frozen=True)
class EngineJob:
    """One engine to build: from `onnx` (as parsed: `parse_path`) to `plan`, with its profile."""

    name: str
    onnx: Path
    parse_path: Path
    plan: Path
    shapes: dict[str, tuple[Shape, Shape, Shape]]  # input → (min, opt, max), batch axis first
    plugin: bool  # needs the GridSample3D plugin

    @property
    def stamp_path(self) -> Path:
        return self.plan.with_name(STAMP)


@dataclass(frozen=True)
class BuildOptions:
    timing_cache: Path
    plugin: Path | None = None
    fp16: bool = True
    workspace_mib: int = 2048


@dataclass(frozen=True)
class Target:
    """What an engine is specific to."""

    gpu: str
    compute_capability: str
    tensorrt: str


# --- pure parts: sources, profiles, stripping, command lines, stamps -------------------------


def profile_shapes(name: str, settings: ServingSettings, opt: int | None = None) -> dict[str, tuple[Shape, Shape, Shape]]:
    """Optimisation profile of one network: (min, opt, max) shape of every input, from io_spec."""
    cfg = get_preset(settings.preset)
    batches = profile_batches(settings, opt)
    return {t.name: tuple((b, *t.resolve(cfg)) for b in batches) for t in io_spec.NETWORKS[name].inputs}


def engine_jobs(onnx_dir: Path, repository: Path, work_dir: Path, settings: ServingSettings, *,
                opt: int | None = None, models: list[str] | None = None) -> list[EngineJob]:
    jobs = []
    for name in models or list(SOURCES):
        source = Path(onnx_dir) / SOURCES[name]
        plugin = name == "warp_decoder"
        parse_path = Path(work_dir) / (Path(SOURCES[name]).stem + STRIPPED_SUFFIX) if plugin else source
        plan = Path(repository) / name / "1" / PLAN
        jobs.append(EngineJob(name, source, parse_path, plan, profile_shapes(name, settings, opt), plugin))
    return jobs


def strip_plugin_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without its local `GridSample3D` function; the plugin nodes and their attributes
    (plugin_version, plugin_namespace, the creator's fields) stay, so TensorRT's parser, finding no
    function and no built-in importer, builds them from the registered plugin creator."""
    nodes = [n for n in model.graph.node if n.domain == plugin_spec.ONNX_DOMAIN and n.op_type == plugin_spec.PLUGIN_NAME]
    if not nodes:
        raise ValueError(f"no {plugin_spec.PLUGIN_NAME} nodes: is this warp_decoder_trt.onnx?")
    for node in nodes:
        missing = set(plugin_spec.ATTRIBUTES) - {a.name for a in node.attribute}
        if missing:
            raise ValueError(f"{node.name} lacks plugin attributes {sorted(missing)}")
    is_plugin = lambda f: f.domain == plugin_spec.ONNX_DOMAIN and f.name == plugin_spec.PLUGIN_NAME  # noqa: E731
    if not any(is_plugin(f) for f in model.functions):
        raise ValueError(f"no local {plugin_spec.PLUGIN_NAME} function to strip (already stripped?)")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [f for f in out.functions if not is_plugin(f)]
    del out.functions[:]
    out.functions.extend(kept)
    return out


def _nodes(graph: onnx.GraphProto):
    """Every node of `graph`, those of its subgraphs (If, Loop, Scan bodies) included."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in (attr.g, *attr.graphs) if attr.HasField("g") else attr.graphs:
                yield from _nodes(sub)


def _grid_samples(model: onnx.ModelProto):
    return [n for n in _nodes(model.graph) if n.op_type == "GridSample" and n.domain in ("", "ai.onnx")]


def spell_grid_sample_modes(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every stock GridSample's `mode` written as TensorRT's parser knows it
    (`TENSORRT_GRID_SAMPLE_MODES`): opset 20's "linear" would otherwise become nearest-neighbour.
    Only for the file TensorRT parses: ONNX Runtime rejects the old names at opset 20."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in _grid_samples(out):
        modes = [a for a in node.attribute if a.name == "mode"]
        mode = helper.get_attribute_value(modes[0]).decode() if modes else "linear"
        if mode not in TENSORRT_GRID_SAMPLE_MODES:
            raise ValueError(f"GridSample {node.name} has mode {mode!r}, which TensorRT's parser does not know")
        for attr in modes:
            node.attribute.remove(attr)
        node.attribute.append(helper.make_attribute("mode", TENSORRT_GRID_SAMPLE_MODES[mode]))
    return out


def tensorrt_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """warp_decoder_trt.onnx as TensorRT's parser must receive it: without the local plugin function
    (`strip_plugin_functions`) and with TensorRT's GridSample mode names (`spell_grid_sample_modes`)."""
    from facecodec.onnx_export import grid_sample_ranks  # imports torch: only when a plugin variant is prepared

    volumes = [model.graph.node[i].name for i, rank in grid_sample_ranks(model).items() if rank == 5]
    if volumes:
        raise ValueError(f"warp_decoder_trt.onnx: 5-D GridSample {volumes} not replaced by the plugin; re-export")
    out = spell_grid_sample_modes(strip_plugin_functions(model))
    check_tensorrt_model(out, "warp_decoder_trt.onnx")
    return out


def check_tensorrt_model(model: onnx.ModelProto, name: str) -> None:
    """Refuse what TensorRT's parser would build wrongly: a model-local function (the parser inlines
    it) or a GridSample whose mode it does not know (it would sample nearest-neighbour)."""
    if model.functions:
        raise ValueError(f"{name}: local functions {[f.name for f in model.functions]} would be inlined by TensorRT")
    for node in _grid_samples(model):
        mode = next((helper.get_attribute_value(a).decode() for a in node.attribute if a.name == "mode"), None)
        if mode is not None and mode not in set(TENSORRT_GRID_SAMPLE_MODES.values()):
            raise ValueError(f"{name}: GridSample {node.name} has mode {mode!r}, which TensorRT's parser reads as "
                             f"nearest (spell_grid_sample_modes writes the name it knows)")


def prepare(job: EngineJob) -> Path:
    """The file TensorRT parses for `job`: the plugin variant goes through `tensorrt_model`; the other
    exports are parsed as they are, once checked (`check_tensorrt_model`)."""
    if not job.onnx.is_file():
        raise FileNotFoundError(f"{job.onnx} is missing; export first (facecodec export --out {job.onnx.parent})")
    if job.plugin:
        job.parse_path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(tensorrt_model(onnx.load(str(job.onnx))), str(job.parse_path))
    else:
        check_tensorrt_model(onnx.load(str(job.onnx), load_external_data=False), job.onnx.name)
    return job.parse_path


def _dims(shape: Shape) -> str:
    return "x".join(map(str, shape))


def trtexec_command(job: EngineJob, options: BuildOptions, trtexec: str = "trtexec") -> list[str]:
    """The trtexec command line that builds the same engine as `build_with_tensorrt`."""
    shapes = {
        flag: ",".join(f"{name}:{_dims(s[i])}" for name, s in job.shapes.items())
        for i, flag in enumerate(("--minShapes", "--optShapes", "--maxShapes"))
    }
    cmd = [trtexec, f"--onnx={job.parse_path}", f"--saveEngine={job.plan}"]
    cmd += [f"{flag}={value}" for flag, value in shapes.items()]
    cmd += ["--fp16"] if options.fp16 else []
    cmd += [f"--memPoolSize=workspace:{options.workspace_mib}M", f"--timingCacheFile={options.timing_cache}"]
    if job.plugin:
        # the library registers its creator when loaded (no getCreators): static, not --dynamicPlugins
        cmd.append(f"--staticPlugins={options.plugin}")
    cmd.append("--skipInference")
    return cmd


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def engine_stamp(job: EngineJob, options: BuildOptions, target: Target) -> dict:
    """Everything the plan depends on; a plan whose stamp differs is rebuilt by --if-stale."""
    return {
        "model": job.name,
        "onnx": job.onnx.name,
        "onnx_sha256": file_digest(job.onnx),
        "plugin_sha256": file_digest(options.plugin) if job.plugin and options.plugin else None,
        "shapes": {n: [list(s) for s in mom] for n, mom in job.shapes.items()},
        "precision": "fp16" if options.fp16 else "fp32",
        "gpu": target.gpu,
        "compute_capability": target.compute_capability,
        "tensorrt": target.tensorrt,
    }


def stale_reason(job: EngineJob, expected: dict) -> str | None:
    """Why the plan must be (re)built, or None when it is there and its stamp matches."""
    if not job.plan.is_file():
        return "no plan"
    if "unknown" in (expected["gpu"], expected["compute_capability"], expected["tensorrt"]):
        return "GPU or TensorRT version unknown"
    try:
        stamp = json.loads(job.stamp_path.read_text())
    except (OSError, ValueError):
        return "no stamp"
    changed = sorted(k for k in expected if stamp.get(k) != expected[k])
    return f"changed: {', '.join(changed)}" if changed else None


def parse_trtexec_version(text: str) -> str | None:
    """'10.11.0' from trtexec's banner `[TensorRT v101100]` (8.x banners are `v8601`)."""
    m = re.search(r"\[TensorRT v(\d+)\]", text)
    if not m:
        return None
    n = int(m.group(1))
    major, rest = (n // 10000, n % 10000) if n >= 100000 else (n // 1000, n % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def parse_gpu_query(text: str) -> tuple[str, str] | None:
    """(name, compute capability) of the first GPU from
    `nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`."""
    for line in text.splitlines():
        parts = [p.strip() for p in line.rsplit(",", 1)]
        if len(parts) == 2 and all(parts):
            return parts[0], parts[1]
    return None


# --- the machine: GPU, TensorRT, plugin ------------------------------------------------------


def gpu_identity() -> tuple[str, str]:
    """(name, compute capability) of GPU 0, from nvidia-smi; ("unknown", "unknown") without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", "unknown"
    return parse_gpu_query(out) or ("unknown", "unknown")


def find_trtexec(explicit: str | None = None) -> str | None:
    for candidate in (explicit, os.environ.get(TRTEXEC_ENV), shutil.which("trtexec"), *TRTEXEC_PATHS):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def tensorrt_version(builder: str, trtexec: str | None) -> str:
    """The TensorRT that builds the plans, as the builder reports it: the Python module's version, or
    trtexec's banner. $TRT_VERSION (set by NVIDIA's containers for their own TensorRT) names the
    server's TensorRT, not necessarily the builder's: a difference is logged, never trusted."""
    if builder == "python":
        version = _import_tensorrt().__version__
    else:
        try:
            out = subprocess.run([trtexec, "--help"], capture_output=True, text=True, timeout=60)
            version = parse_trtexec_version(out.stdout + out.stderr) or "unknown"
        except (OSError, subprocess.SubprocessError):
            version = "unknown"
    container = os.environ.get("TRT_VERSION")
    if container and version != "unknown" and not _same_release(container, version):
        log.warning("building with TensorRT %s, but $TRT_VERSION is %s: a server on TensorRT %s refuses these "
                    "plans", version, container, container)
    return version


def _same_release(a: str, b: str) -> bool:
    """'10.11.0.33' and '10.11.0' (trtexec's banner has three fields) name the same release."""
    x, y = a.split("."), b.split(".")
    n = min(len(x), len(y))
    return x[:n] == y[:n]


def _import_tensorrt():
    """TensorRT's Python package; importing it loads its own libnvinfer (a wheel's lies beside the
    package, off the loader's path), which a plugin library loaded afterwards then links against."""
    try:
        import tensorrt as trt
    except ImportError as err:
        raise RuntimeError(f"TensorRT's Python package is not importable ({err}); build with trtexec") from err
    return trt


def load_plugin(path: str | Path | None = None) -> Path:
    """Load the GridSample3D plugin library into this process (RTLD_GLOBAL; loading runs its creator's
    static registration) and check that TensorRT now finds the creator. The path is `path` or
    $FACECODEC_PLUGIN_LIB. This is the only place the library is loaded from Python.

    TensorRT is imported first: the library needs libnvinfer, and only the copy TensorRT's package
    loaded is the one whose registry the builder reads (loaded first, the library would find no
    libnvinfer under a wheel install, or another copy on the loader's path)."""
    lib = plugin_library(path)
    trt = _import_tensorrt()
    ctypes.CDLL(str(lib.resolve()), mode=ctypes.RTLD_GLOBAL)
    creator = trt.get_plugin_registry().get_creator(
        plugin_spec.PLUGIN_NAME, plugin_spec.PLUGIN_VERSION, plugin_spec.PLUGIN_NAMESPACE
    )
    if creator is None:
        raise RuntimeError(f"{lib} loaded but TensorRT {trt.__version__} has no {plugin_spec.PLUGIN_NAME} creator")
    return lib


# --- builders --------------------------------------------------------------------------------


def build_with_tensorrt(job: EngineJob, options: BuildOptions) -> bytes:
    """Serialized engine of `job` built with TensorRT's Python API (the plugin must be loaded)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(job.parse_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{job.name}: TensorRT cannot parse {job.parse_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if options.fp16:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise RuntimeError(f"TensorRT {trt.__version__} has no weakly typed fp16 flag; build with --fp32")
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in job.shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    cache_bytes = options.timing_cache.read_bytes() if options.timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{job.name}: TensorRT engine build failed (see the log above)")
    _write_atomic(options.timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))


def build_with_trtexec(job: EngineJob, options: BuildOptions, trtexec: str) -> None:
    tmp = job.plan.with_name(job.plan.name + ".tmp")
    cmd = trtexec_command(replace(job, plan=tmp), options, trtexec)
    log.info("%s", shlex.join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not tmp.is_file():
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise RuntimeError(f"{job.name}: trtexec failed with exit code {result.returncode}\n{tail}")
    os.replace(tmp, job.plan)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a server (re)loading the model never sees half a plan


def resolve_builder(requested: str, trtexec: str | None) -> str:
    if requested == "python" or (requested == "auto" and importlib.util.find_spec("tensorrt") is not None):
        return "python"
    if trtexec is None:
        raise RuntimeError(
            f"neither TensorRT's Python package nor trtexec found (set {TRTEXEC_ENV} or use NVIDIA's containers)"
        )
    return "trtexec"


@dataclass
class BuildReport:
    built: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)


def build(jobs: list[EngineJob], options: BuildOptions, *, builder: str = "auto", trtexec: str | None = None,
          if_stale: bool = False) -> BuildReport:
    """Build (or with `if_stale`, rebuild what changed) every job's plan and write its stamp."""
    trtexec = find_trtexec(trtexec)
    builder = resolve_builder(builder, trtexec)
    target = Target(*gpu_identity(), tensorrt_version(builder, trtexec))
    log.info("building with %s for %s (sm %s), TensorRT %s", builder, target.gpu, target.compute_capability,
             target.tensorrt)
    _reset_timing_cache(options.timing_cache, target, options.plugin if any(j.plugin for j in jobs) else None)
    report = BuildReport()
    if builder == "python" and any(j.plugin for j in jobs):
        load_plugin(options.plugin)
    for job in jobs:
        expected = engine_stamp(job, options, target)
        reason = stale_reason(job, expected) if if_stale else "requested"
        if reason is None:
            log.info("%s: %s is current", job.name, job.plan)
            report.current.append(job.name)
            continue
        log.info("%s: building %s (%s)", job.name, job.plan, reason)
        prepare(job)
        job.plan.parent.mkdir(parents=True, exist_ok=True)
        if builder == "python":
            _write_atomic(job.plan, build_with_tensorrt(job, options))
        else:
            build_with_trtexec(job, options, trtexec)
        job.stamp_path.write_text(json.dumps(expected, indent=1) + "\n")
        report.built.append(job.name)
    return report


def _reset_timing_cache(path: Path, target: Target, plugin: Path | None = None) -> None:
    """Timing caches are per GPU and TensorRT version, and hold the plugin's timings too (it has a
    timing-cache ID): drop one made for another target or another plugin build. A build without the
    plugin keeps the plugin build the cache was made with."""
    owner = path.with_name(path.name + ".json")
    try:
        theirs = json.loads(owner.read_text())
    except (OSError, ValueError):
        theirs = None
    mine = dict(target.__dict__)
    mine["plugin_sha256"] = file_digest(plugin) if plugin else (theirs or {}).get("plugin_sha256")
    if path.is_file() and theirs != mine:
        log.info("timing cache %s was made for another GPU, TensorRT or plugin build; starting a new one", path)
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    owner.write_text(json.dumps(mine, sort_keys=True))


# --- CLI -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m export.engines", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx-dir", type=Path, required=True, help="the export's directory (facecodec export --out)")
    p.add_argument("--repository", type=Path, default=Path("model_repository_gpu"),
                   help="model repository receiving <name>/1/model.plan (default model_repository_gpu)")
    p.add_argument("--work-dir", type=Path, default=Path("build/engines"),
                   help="stripped ONNX and the timing cache (default build/engines)")
    p.add_argument("--plugin", type=Path, help="libfacecodec_plugins.so (default $FACECODEC_PLUGIN_LIB)")
    p.add_argument("--models", nargs="+", choices=list(SOURCES), help="build only these (default all)")
    p.add_argument("--opt-batch", type=int, help="profile's opt batch (default: the configs' preferred batch)")
    p.add_argument("--workspace-mib", type=int, default=2048, help="builder workspace limit (default 2048)")
    p.add_argument("--fp32", action="store_true", help="build fp32 engines (default fp16)")
    p.add_argument("--timing-cache", type=Path, help="timing cache file (default <work-dir>/timing.cache)")
    p.add_argument("--builder", choices=("auto", "python", "trtexec"), default="auto",
                   help="TensorRT's Python API or trtexec (auto: Python API when importable)")
    p.add_argument("--trtexec", help=f"trtexec binary (default ${TRTEXEC_ENV}, PATH, NVIDIA's container paths)")
    p.add_argument("--if-stale", action="store_true", help="rebuild only plans whose stamp differs")
    p.add_argument("--print-trtexec", action="store_true",
                   help="write the stripped ONNX and print the equivalent trtexec commands; build nothing")
    add_arguments(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    settings = from_arguments(args)
    jobs = engine_jobs(args.onnx_dir, args.repository, args.work_dir, settings, opt=args.opt_batch, models=args.models)
    timing_cache = args.timing_cache or args.work_dir / "timing.cache"
    if args.print_trtexec:
        plugin = args.plugin or os.environ.get(PLUGIN_ENV) or "libfacecodec_plugins.so"
        options = BuildOptions(timing_cache, Path(plugin), not args.fp32, args.workspace_mib)
        for job in jobs:
            prepare(job)
            print(f"# {job.name}" + (f": {job.onnx.name} without its local function" if job.plugin else ""))
            print(f"mkdir -p {shlex.quote(str(job.plan.parent))}")
            print(shlex.join(trtexec_command(job, options)))
        return 0
    needs_plugin = any(j.plugin for j in jobs)
    options = BuildOptions(timing_cache, plugin_library(args.plugin) if needs_plugin else None, not args.fp32,
                           args.workspace_mib)
    report = build(jobs, options, builder=args.builder, trtexec=args.trtexec, if_stale=args.if_stale)
    print(f"built: {', '.join(report.built) or 'none'}; current: {', '.join(report.current) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main, log))
