"""What the stream costs on real clips, packet layout by packet layout, from ONE motion estimate per clip.

For each clip (the shipped sample and the first validation clips), the plain sender's motion (the
shipped weights, expression channel on unless `--no-expression`) is estimated once; every format then
codes that same motion and keyframe (frame 0) with the codec's `Sender`, the `Decoder` reads the bytes
back, and the decoded motion is checked to be identical across formats (the layouts differ in bytes
only). Rates are kbit/s (1000 bit/s) over the clip's duration at its frame rate:

- `motion_kbps`: MOTION packets (framing included): the long-call rate, keyframe amortised away;
- `kbps`: the whole stream (header, keyframe packet, motion packets) over the clip.

    python -m facecodec.tools.stream_rate --manifest ../shared/data/faces/MANIFEST.tsv --clips 3 \\
        --max-frames 300 [--json out.json]

With `--streams DIR` it re-packs streams already written (e.g. an evaluation report's `streams/*.fcdc`, whose
motion came from a slow sender such as the motion search) into every format, the same decoded motion, and checks
that each format decodes to it.

With `--settings webp:90/legacy,avif:75,avif:75/dz0.2,...` it sweeps sender settings instead (`Setting`: the
keyframe's codec and quality, the motion coder's dead zone and steps, the packet layout), same motion: each is
coded, decoded and the whole call rendered by the receiver, then measured against the original frames (PSNR
every frame, stLPIPS per `--lpips`, e.g. alex:2,vgg:10; mouth and eye opening followed, `eval.metrics`): the
rate–distortion data the defaults are chosen from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from ..bitstream import StreamHeader, decode_stream, stream_bytes
from ..commands import run_command

FORMATS = {"legacy": {"compact": False}, "compact": {"compact": True}}
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "talking_00086_4s.mp4"


def _every_format(base: StreamHeader, motion, expression, frames: np.ndarray | None,
                  reference: np.ndarray | None = None):
    """(name, header, bytes, decoded stream) of `motion` (and `frames`' keyframe, unless None) coded in each
    of `FORMATS`; raises if one decodes to other motion than `reference` (default: the first format's)."""
    from ..codec.sender import Sender

    for name, options in FORMATS.items():
        header: StreamHeader = dataclasses.replace(base, **options)
        data = stream_bytes(header, Sender(None, header, expression=expression).send(frames, motion))
        decoded = decode_stream(data)
        vectors = np.stack([f.motion.to_vector() for f in decoded.frames])
        if reference is not None and not np.array_equal(vectors, reference):
            raise RuntimeError(f"the {name} stream decodes to other motion than the reference")
        reference = vectors
        yield name, header, data, decoded


def measure_clip(networks, path: Path, *, preset: str, num_kp: int, max_frames: int, expression) -> dict:
    """{format: rates and byte counts} for one clip; the same motion and keyframe in every format."""
    from ..codec.sender import stream_header

    frames, fps, motion = _sender_side(networks, path, max_frames=max_frames, expression=expression)
    base = stream_header(preset, num_kp, frames.shape[1], fps, expression=expression)
    seconds, out = len(frames) / fps, {}
    for name, header, data, decoded in _every_format(base, motion, expression, frames):
        stats = decoded.stats
        out[name] = {"version": header.version, "frames": len(frames), "seconds": seconds,
                     "motion_kbps": stats.kbps(keyframes=False), "kbps": 8 * len(data) / seconds / 1000,
                     "keyframe_bytes": stats.keyframe_bytes, "header_bytes": len(header.to_bytes()),
                     "motion_bytes_per_frame": (stats.intra_bytes + stats.predicted_bytes) / stats.frames}
    return out


def repack(data: bytes) -> dict:
    """{format: motion_kbps, version} of a stream's own decoded motion re-packed into every format (motion
    packets only: the keyframe is not re-coded), with "as_sent" the stream's own motion rate; raises if a
    format decodes to other motion than the stream did."""
    from ..codec.pipeline import MotionBatch
    from ..expression import ExpressionSender

    sent = decode_stream(data)
    motion = MotionBatch.from_motions([f.motion for f in sent.frames])
    reference = np.stack([f.motion.to_vector() for f in sent.frames])
    expression = ExpressionSender() if sent.header.num_face else None  # its basis; no frame's landmarks are read
    out = {"as_sent": {"version": sent.header.version, "motion_kbps": sent.stats.kbps(keyframes=False)}}
    for name, header, _, decoded in _every_format(sent.header, motion, expression, None, reference):
        out[name] = {"version": header.version, "motion_kbps": decoded.stats.kbps(keyframes=False)}
    return out


def _sender_side(networks, path: Path, *, max_frames: int, expression):
    from ..media import probe_fps, read_video
    from ..rd.neural import sender_motion

    frames = read_video(path, max_frames=max_frames)
    motion = sender_motion(networks, frames)
    if expression is not None:
        motion = motion.with_face(expression.encode(frames))
    return frames, probe_fps(path), motion


@dataclasses.dataclass(frozen=True)
class Setting:
    """One sender setting of a sweep: keyframe codec and quality, and the motion coder's dead zone and base
    steps of the expression values and channel (None: the defaults). Label: `avif:75[/dz0.2][/exp0.006]
    [/face0.02][/legacy]` (legacy: the same, coded in legacy packets)."""

    codec: str
    quality: int
    dead_zone: float = 0.0
    exp: float | None = None
    face: float | None = None
    legacy: bool = False

    @classmethod
    def parse(cls, label: str) -> Setting:
        head, *options = label.split("/")
        codec, quality = head.split(":")
        values = {}
        for option in options:
            if option == "legacy":
                values["legacy"] = True
            else:
                name = option.rstrip("0123456789.")
                values[{"dz": "dead_zone"}.get(name, name)] = float(option[len(name):])
        return cls(codec, int(quality), **values)

    def header(self, base: StreamHeader) -> StreamHeader:
        steps = {k: v for k, v in (("exp", self.exp), ("face", self.face)) if v is not None}
        return dataclasses.replace(base, steps=dataclasses.replace(base.steps, **steps), compact=not self.legacy)


def sweep(networks, path: Path, labels: list[str], plan, lpips, landmarker, *, preset: str, num_kp: int,
          max_frames: int, expression) -> dict:
    """{label: bytes, rates and the decoded call's quality, mouth and eye measures} for one clip: each
    setting is coded, decoded and rendered by the receiver, then measured against the original frames."""
    from ..bitstream import ImageCodec
    from ..codec.receiver import receive
    from ..codec.sender import Sender, stream_header
    from ..eval.metrics import eye_opening, follows, mouth_opening
    from ..media import to_frames
    from ..rd.quality import QualityMeter

    frames, fps, motion = _sender_side(networks, path, max_frames=max_frames, expression=expression)
    base = stream_header(preset, num_kp, frames.shape[1], fps, expression=expression)
    meter, out = QualityMeter(frames, plan, lpips=lpips), {}
    original = landmarker.detect(frames)
    measured = {}  # decodes that draw the same call (a layout change alone) are rendered and measured once
    for label in labels:
        setting = Setting.parse(label)
        header = setting.header(base)
        sender = Sender(None, header, expression=expression, keyframe_quality=setting.quality,
                        keyframe_codec=ImageCodec[setting.codec.upper()])
        sender.encoder.dead_zone = setting.dead_zone
        data = stream_bytes(header, sender.send(frames, motion))
        decoded = decode_stream(data)
        key = (decoded.frames[0].keyframe.tobytes(), np.stack([f.motion.to_vector() for f in decoded.frames]).tobytes())
        if key not in measured:
            rendered = to_frames(receive(networks, decoded.frames))
            landmarks = landmarker.detect(rendered)
            quality = meter.summary(rendered)
            for part, measure in (("mouth", mouth_opening), ("eye", eye_opening)):
                quality[f"{part}_corr"], quality[f"{part}_amp"] = follows(measure(original), measure(landmarks))
            measured[key] = quality
        seconds = len(frames) / fps
        row = {"keyframe_bytes": decoded.stats.keyframe_bytes, "kbps": 8 * len(data) / seconds / 1000,
               "motion_kbps": decoded.stats.kbps(keyframes=False), **measured[key]}
        out[label] = row
        print(path.stem, label, {k: round(v, 4) for k, v in row.items()}, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facecodec.tools.stream_rate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, help="the clips' manifest (not with --streams)")
    p.add_argument("--streams", type=Path, help="re-pack the .fcdc streams of this folder into every format")
    p.add_argument("--clips", type=int, default=3, help="validation clips, after the shipped sample")
    p.add_argument("--max-frames", type=int, default=300)
    p.add_argument("--no-sample", dest="sample", action="store_false", help="validation clips only")
    p.add_argument("--preset", default="lite")
    p.add_argument("--no-expression", dest="expression", action="store_false")
    p.add_argument("--json", type=Path)
    p.add_argument("--settings", help="sweep sender settings, rendering each decoded call: comma-separated "
                   "`Setting` labels, e.g. webp:90/legacy,avif:75,avif:75/dz0.2/face0.02")
    p.add_argument("--lpips", default="alex:2,vgg:10", help="with --settings: stLPIPS nets and frame strides")

    def command() -> int:
        args = p.parse_args(argv)
        if args.streams is not None:
            return _repack_folder(args.streams, args.json)
        if args.manifest is None:
            raise ValueError("--manifest (or --streams) is required")
        from ..codec.pipeline import TorchNetworks
        from ..eval.run import validation_clips
        from ..expression import expression_sender
        from ..weights import build_model

        model = build_model(args.preset)
        networks, expression = TorchNetworks(model), expression_sender(args.expression)
        clips = [SAMPLE] * args.sample + validation_clips(args.manifest)[: args.clips]
        started, results = time.perf_counter(), {}
        if args.settings:
            return _sweep(args, model, networks, expression, clips, started)
        for path in clips:
            results[path.stem] = measure_clip(networks, path, preset=model.cfg.name, num_kp=model.cfg.num_kp,
                                              max_frames=args.max_frames, expression=expression)
            print(path.stem, {k: round(v["motion_kbps"], 3) for k, v in results[path.stem].items()}, flush=True)
        mean = {name: {key: float(np.mean([r[name][key] for r in results.values()]))
                       for key in ("motion_kbps", "kbps", "keyframe_bytes")} for name in FORMATS}
        report = {"clips": results, "mean": mean, "expression": args.expression, "max_frames": args.max_frames,
                  "wall_seconds": time.perf_counter() - started}
        print(json.dumps(mean, indent=1))
        if args.json:
            args.json.write_text(json.dumps(report, indent=1) + "\n")
        return 0

    return run_command(command, logging.getLogger("facecodec.stream_rate"))


def _repack_folder(folder: Path, json_out: Path | None) -> int:
    paths = sorted(folder.glob("*.fcdc"))
    if not paths:
        raise FileNotFoundError(f"no .fcdc stream in {folder}")
    results = {}
    for path in paths:
        results[path.stem] = repack(path.read_bytes())
        print(path.stem, {k: round(v["motion_kbps"], 3) for k, v in results[path.stem].items()}, flush=True)
    mean = {name: float(np.mean([r[name]["motion_kbps"] for r in results.values()])) for name in ("as_sent", *FORMATS)}
    print("mean motion kbit/s", {k: round(v, 3) for k, v in mean.items()})
    if json_out:
        doc = {"streams": str(folder), "clips": results, "mean_motion_kbps": mean}
        json_out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def _sweep(args, model, networks, expression, clips, started) -> int:
    from ..eval.metrics import Lpips
    from ..landmarks import FaceLandmarker
    from ..rd.quality import LpipsPlan

    labels = args.settings.split(",")
    plan = LpipsPlan.parse(args.lpips)
    lpips = Lpips(plan.nets)
    with FaceLandmarker() as landmarker:
        results = {path.stem: sweep(networks, path, labels, plan, lpips, landmarker, preset=model.cfg.name,
                                    num_kp=model.cfg.num_kp, max_frames=args.max_frames, expression=expression)
                   for path in clips}
    keys = next(iter(results.values()))[labels[0]].keys()
    mean = {label: {k: float(np.nanmean([r[label][k] for r in results.values()])) for k in keys} for label in labels}
    print(json.dumps(mean, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"clips": results, "mean": mean, "lpips": args.lpips,
                                         "max_frames": args.max_frames, "expression": args.expression,
                                         "wall_seconds": time.perf_counter() - started}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
