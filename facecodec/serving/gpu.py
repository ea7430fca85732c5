"""The GPU target's start: its sizes, the server's arguments, and the container's preparation.

    python -m facecodec.serving.gpu --write   # model_repository_gpu/*/config.pbtxt + decoder/1/model.py
    python -m facecodec.serving.gpu --check   # exit 1 if a committed file differs from its rendering
    python -m facecodec.serving.gpu --prepare STATE | --server-args   # the container's start (docker/entrypoint.sh)

The configs are rendered by `configs.render(..., target="gpu")`, the one renderer of both targets;
the decoder's GPU session pieces (DLPack BLS, device arrays) are in `bls`. The TensorRT models need
the GridSample3D plugin library loaded by the server; the launch arguments are `server_arguments`
(used by docker/entrypoint.sh).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

from .. import io_spec
from ..presets import get_preset
from . import configs
from .settings import ServingSettings, add_arguments, from_arguments

PLUGIN_ENV = "FACECODEC_PLUGIN_LIB"  # path of libfacecodec_plugins.so (export/plugins)
MIB = 1 << 20
CUDA_POOL_MIN = 64 * MIB  # Triton's default python-backend CUDA memory pool per GPU


def plugin_library(path: str | Path | None = None) -> Path:
    """The plugin library: `path`, else $FACECODEC_PLUGIN_LIB. Raises if neither names a file."""
    value = path or os.environ.get(PLUGIN_ENV)
    if not value:
        raise FileNotFoundError(f"no plugin library: pass --plugin or set {PLUGIN_ENV} to libfacecodec_plugins.so")
    lib = Path(value)
    if not lib.is_file():
        raise FileNotFoundError(f"plugin library {lib} does not exist (build it: export/plugins/README.md)")
    return lib


def cuda_pool_bytes(settings: ServingSettings) -> int:
    """Python-backend CUDA memory pool per GPU (`--cuda-memory-pool-byte-size`).

    The decoder's GPU tensors reach warp_decoder through this pool; one full batch of its inputs and
    outputs, twice over, rounded up to 64 MiB (vox256 at batch 8 needs more than the 64 MiB default).
    """
    cfg = get_preset(settings.preset)
    frame = sum(4 * math.prod(t.resolve(cfg)) for t in (*io_spec.WARP_DECODER.inputs, *io_spec.WARP_DECODER.outputs))
    need = 2 * settings.max_batch_size * frame
    return max(CUDA_POOL_MIN, -(-need // CUDA_POOL_MIN) * CUDA_POOL_MIN)


def server_arguments(repository: Path, plugin: Path, settings: ServingSettings, gpus: int = 1,
                     admin_key: str | None = None) -> list[str]:
    """tritonserver arguments of the GPU target (the container adds ports, logging and TLS); with
    `admin_key`, the restricted admin protocols (`security.restricted_arguments`)."""
    from .security import restricted_arguments

    pool = cuda_pool_bytes(settings)
    return [
        f"--model-repository={repository}",
        # dlopens the plugin library before any model loads; its creator registers itself
        f"--backend-config=tensorrt,plugins={plugin}",
        *(f"--cuda-memory-pool-byte-size={gpu}:{pool}" for gpu in range(gpus)),
        "--disable-auto-complete-config",  # serve the committed configs exactly, as on CPU
        *(restricted_arguments(admin_key) if admin_key is not None else []),
    ]


def prepare(state: Path, settings: ServingSettings, template: Path) -> Path:
    """A container's start, before the engines: the preset's ONNX in `state/onnx/<preset>` (exported
    unless there from the same weights, $FACECODEC_WEIGHTS or the shipped ones) and the repository
    rendered for `settings` in `state/repository`. Returns the ONNX directory."""
    from .repository import ensure_export

    onnx_dir = ensure_export(Path(state) / "onnx" / settings.preset, settings.preset)
    configs.write(Path(state) / "repository", settings, target="gpu", template=template)
    return onnx_dir


# --- CLI -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m facecodec.serving.gpu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="render the GPU repository")
    mode.add_argument("--check", action="store_true", help="exit 1 if the committed files differ from the rendering")
    mode.add_argument(
        "--prepare",
        type=Path,
        metavar="STATE",
        help="export if needed and render STATE/repository; print the ONNX directory",
    )
    mode.add_argument(
        "--server-args", action="store_true", help="print the tritonserver arguments of this target, one per line"
    )
    parser.add_argument("--repository", type=Path, default=Path("model_repository_gpu"))
    parser.add_argument(
        "--template",
        type=Path,
        default=Path("model_repository"),
        help="CPU repository whose decoder/1/model.py the GPU repository shares",
    )
    parser.add_argument("--plugin", type=Path, help=f"plugin library (default ${PLUGIN_ENV}); --server-args only")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs the server sees; --server-args only")
    parser.add_argument("--admin-key-file", type=Path,
                        help="--server-args only: restrict the admin protocols to requests carrying this key")
    add_arguments(parser)
    args = parser.parse_args(argv)
    settings = from_arguments(args)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if args.write:
        for path in configs.write(args.repository, settings, target="gpu", template=args.template):
            print(path)
        return 0
    if args.prepare:
        print(prepare(args.prepare, settings, args.template))
        return 0
    if args.server_args:
        from .security import read_admin_key

        admin_key = None if args.admin_key_file is None else read_admin_key(args.admin_key_file)
        print("\n".join(server_arguments(args.repository, plugin_library(args.plugin), settings, args.gpus,
                                         admin_key)))
        return 0
    problems = configs.check(args.repository, settings, target="gpu", template=args.template)
    print("\n".join(problems) or "GPU configs match io_spec and the settings")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
