"""`facecodec` command line: thin argument parsing; the work lives in the package modules."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .commands import run_command
from .presets import PRESETS

log = logging.getLogger("facecodec")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS), default="lite")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="public face-vid2vid checkpoint (vox256 only)")
    src.add_argument("--weights", type=Path, help="facecodec .safetensors weights (default: shipped weights)")


def cmd_export(args: argparse.Namespace) -> int:
    from .onnx_export import export_all
    from .weights import build_model

    model = build_model(args.preset, checkpoint=args.checkpoint, weights=args.weights)
    paths = export_all(model, args.out, tolerance=args.tolerance)
    for path in paths.values():
        print(path)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .tools.bench import HEADER, bench_model, decode_rate, machine_description, peak_rss_gib
    from .onnx_export import export_all
    from .weights import build_model, default_weights_path

    lines = [f"Machine: {machine_description(args.threads)}", "", HEADER]
    summaries = []
    for preset in args.presets:
        model = build_model(preset, random_init=default_weights_path(preset) is None)  # speed: any weights do
        onnx_dir = args.work / preset
        export_all(model, onnx_dir, tolerance=1e-3)
        rows = bench_model(model, onnx_dir, batches=args.batches, threads=args.threads, repeats=args.repeats)
        lines += [r.markdown() for r in rows]
        summaries.append(decode_rate(rows, preset))
        summaries.append(f"peak RSS of the benchmark process after {preset}: {peak_rss_gib():.1f} GiB")
    text = "\n".join(lines + [""] + [f"- {s}" for s in summaries]) + "\n"
    print(text)
    if args.append:
        with open(args.append, "a") as f:
            f.write(f"\n### `make bench` ({' '.join(sys.argv[1:])})\n\n{text}")
    return 0


DEFAULT_ONNX_ROOT = Path("artifacts/onnx")  # the Makefile's `export` target writes <root>/<preset>


def local_networks(preset: str, args: argparse.Namespace):
    """ONNX Runtime networks of `preset` for `encode`/`decode`: `--onnx`, else artifacts/onnx/<preset>,
    exported first when missing or made from other weights (said in the log)."""
    from .codec.pipeline import OrtNetworks
    from .serving.repository import ensure_export

    onnx_dir = ensure_export(args.onnx or DEFAULT_ONNX_ROOT / preset, preset, weights=args.weights,
                             checkpoint=args.checkpoint)
    return OrtNetworks(onnx_dir)


def cmd_encode(args: argparse.Namespace) -> int:
    from .bitstream import RefreshPolicy
    from .codec.sender import encode_file
    from .presets import get_preset

    networks = local_networks(args.preset, args)
    search = None
    if args.refine > 0:  # the search runs eager PyTorch: it needs gradients
        from .codec.pipeline import TorchNetworks
        from .codec.refine import RefineConfig, motion_search
        from .weights import build_model

        model = build_model(args.preset, checkpoint=args.checkpoint, weights=args.weights).eval()
        search = motion_search(TorchNetworks(model), RefineConfig(steps=args.refine))
    from .bitstream.auth import read_key
    from .expression import expression_sender

    cfg = get_preset(args.preset)
    key = read_key(args.key_file) if args.key_file else None
    sender = encode_file(networks, args.video, args.out, preset=args.preset, num_kp=cfg.num_kp, size=cfg.image_size,
                         max_frames=args.max_frames, target_kbps=args.kbps, refresh=RefreshPolicy.from_arguments(args),
                         search=search, keyframe_quality=args.keyframe_quality,
                         expression=expression_sender(args.expression), key=key)
    refreshes = f", {sender.stats.keyframes - 1} refresh keyframes" if args.refresh else ""
    print(f"{args.out}: {sender.stats.frames} frames, {sender.stats.kbps():.1f} kbit/s{refreshes}")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from .bitstream import read_stream
    from .codec.receiver import decode_file

    from .codec.pipeline import check_stream
    from .presets import get_preset

    from .bitstream.auth import read_key

    key = read_key(args.key_file) if args.key_file else None
    decoded = read_stream(args.stream, key=key)  # read and parsed once; its header names the preset
    cfg = get_preset(decoded.header.preset)  # a known name before it goes anywhere near a path
    check_stream(decoded.header, preset=cfg.name, num_kp=cfg.num_kp, image_size=cfg.image_size)
    frames = decode_file(local_networks(cfg.name, args), decoded, args.out)
    print(f"{args.out}: {len(frames)} frames")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from .bitstream.auth import write_key

    if args.out.exists():
        raise FileExistsError(f"{args.out} exists: a key is not overwritten (remove it first)")
    write_key(args.out)
    print(f"{args.out}: a 256-bit packet key, readable by you only")
    return 0


def _add_codec_parsers(sub) -> None:
    from .bitstream.keyframe import add_keyframe_quality_argument
    from .bitstream.refresh import RefreshPolicy
    from .codec.refine import add_refine_argument
    from .bitstream.auth import add_key_argument
    from .expression import add_expression_argument

    p = sub.add_parser("encode", help="video → stream file, in-process (ONNX Runtime)")
    _add_model_args(p)
    p.add_argument("video", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--onnx", type=Path, help="exported networks (default artifacts/onnx/<preset>, exported if missing)")
    p.add_argument("--max-frames", type=int)
    p.add_argument("--kbps", type=float, help="target motion bit rate (default: fixed quantiser)")
    add_keyframe_quality_argument(p)
    RefreshPolicy.add_arguments(p)
    add_refine_argument(p)
    add_expression_argument(p)
    add_key_argument(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="stream file → MP4, in-process (ONNX Runtime); preset from the stream")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="public face-vid2vid checkpoint (vox256 only)")
    src.add_argument("--weights", type=Path, help="facecodec .safetensors weights (default: shipped weights)")
    p.add_argument("stream", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--onnx", type=Path, help="exported networks (default artifacts/onnx/<preset>, exported if missing)")
    add_key_argument(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("keygen", help="write a new random packet key (hex) for --key-file")
    p.add_argument("out", type=Path)
    p.set_defaults(func=cmd_keygen)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facecodec", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="export the served networks to ONNX (+ TensorRT plugin variant)")
    _add_model_args(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tolerance", type=float, default=1e-3, help="max abs ORT vs PyTorch difference allowed")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="PyTorch eager vs ONNX Runtime speed per network")
    p.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=["lite", "vox256"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--work", type=Path, default=Path("artifacts/bench"))
    p.add_argument("--append", type=Path, help="append the table to this markdown file")
    p.set_defaults(func=cmd_bench)

    _add_profile_parser(sub)

    from .train.cli import add_train_parser

    add_train_parser(sub)

    from .eval.cli import add_eval_parsers

    add_eval_parsers(sub, _add_model_args)
    _add_codec_parsers(sub)

    from .rd.cli import add_rd_parser

    add_rd_parser(sub)
    return parser


def _add_profile_parser(sub) -> None:
    """`facecodec profile`; it needs the client and the server (facecodec[serve]), which a `local`
    install lacks: there the command says so."""
    try:
        from .tools import profile
    except ImportError as err:
        def unavailable(args, err=err) -> int:
            raise ImportError(f"facecodec profile needs facecodec[serve]: {err}")

        sub.add_parser("profile", help="latency profile (needs facecodec[serve])").set_defaults(func=unavailable)
        return
    p = sub.add_parser("profile", help="latency profile against a real tritonserver (make profile)",
                       description=profile.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    profile.add_arguments(p)
    p.set_defaults(func=profile.cmd_profile)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_command(lambda: args.func(args), log)


if __name__ == "__main__":
    sys.exit(main())
