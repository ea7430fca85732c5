"""`make fuzz`: the receiver's parsers on mutated and random input — the stream file reader, the live
decoder fed damaged datagrams, and the Triton session's request decoding.

Each case starts from a real stream (compact packets, version 3, with the expression channel and packet
tags or without; and the legacy packets of versions 1 and 2) and mutates it: bit flips, byte runs,
truncation, duplication, splicing, random lengths, forged fields with valid checksums, or plain random
bytes. A case passes when the parser either returns frames or
raises a `BitstreamError`/`SessionError` (a reported rejection), its frame count stays bounded by the
bytes it was given, and it costs under `CASE_SECONDS` of CPU (process time: what a crafted input
costs the receiver, whatever else the machine runs). The slowest case and the peak memory of sampled
cases are reported.

    python -m facecodec.tools.fuzz --cases 100000 --seed 1 [--report docs/fuzz.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..bitstream import BitstreamError, Decoder, Encoder, Framing, Packet, PacketType, StreamHeader, decode_stream
from ..bitstream.auth import new_key
from ..bitstream.synthetic import random_walk_motion
from ..codec.session import FrameRequest, SessionError
from ..commands import run_command
from ..expression import NUM_COEFFICIENTS, SOURCE_POINTS, SourceFace

CASE_SECONDS = 1.0  # CPU seconds: no crafted input may cost the receiver more
MEMORY_SAMPLE = 200  # every Nth case runs under tracemalloc
# (compact, expression channel, tags) of the seed streams: the new format first, then the legacy one
COMBINATIONS = ((True, False, False), (True, True, False), (True, True, True),
                (False, False, False), (False, True, False), (False, True, True))
MAX_FRAMES_PER_BYTE = 1.0  # a decoder may emit at most ~one frame per byte it was given (+ a window)


@dataclasses.dataclass
class Seeds:
    """Real streams to mutate: (header, header bytes + packets, packet chunks, key); the first three are
    compact (version 3), the rest legacy (versions 1 and 2)."""

    streams: list[tuple[StreamHeader, bytes, list[bytes], bytes | None]]
    live_rate: float = 0.3  # share of a live case's pushes that are mutated


def seed_streams(frames: int = 40) -> Seeds:
    rng = np.random.default_rng(0)
    image = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    face = SourceFace(rng.uniform(0, 63, (len(SOURCE_POINTS), 2)), rng.normal(size=(2, 3)) * 20,
                      rng.normal(size=NUM_COEFFICIENTS) * 0.1)
    out = []
    for compact, expression, keyed in COMBINATIONS:
        key = new_key() if keyed else None
        header = StreamHeader(height=64, width=64, face_basis=7 if expression else 0,
                              num_face=NUM_COEFFICIENTS if expression else 0, authenticated=keyed, compact=compact)
        encoder = Encoder(header, key=key)
        encoder.request_keyframe(image, face if expression else None)
        motions = random_walk_motion(frames, 15, seed=int(rng.integers(1 << 30)), num_face=header.num_face)
        chunks = [encoder.encode(m, round(n * header.frame_ms)) for n, m in enumerate(motions)]
        out.append((header, header.to_bytes() + b"".join(chunks), chunks, key))
    return Seeds(out)


def mutate(rng: np.random.Generator, data: bytes, framing: Framing = Framing(compact=True)) -> tuple[str, bytes]:
    """One random mutation of `data` → (its kind, the bytes); forged packets are framed by `framing`."""
    buf = bytearray(data)
    kind = ["flip", "run", "truncate", "duplicate", "splice", "length", "forge", "random"][int(rng.integers(8))]
    if kind == "flip" and buf:
        for _ in range(int(rng.integers(1, 9))):
            buf[int(rng.integers(len(buf)))] ^= 1 << int(rng.integers(8))
    elif kind == "run" and buf:
        at = int(rng.integers(len(buf)))
        buf[at:at + int(rng.integers(1, 64))] = rng.bytes(int(rng.integers(1, 64)))
    elif kind == "truncate":
        del buf[int(rng.integers(len(buf) + 1)):]
    elif kind == "duplicate" and buf:
        a = int(rng.integers(len(buf)))
        buf[a:a] = buf[a:a + int(rng.integers(1, 200))] * int(rng.integers(1, 4))
    elif kind == "splice" and buf:
        a, b = sorted(int(x) for x in rng.integers(0, len(buf), 2))
        buf = buf[:a] + buf[b:] + buf[a:b]
    elif kind == "length" and buf:  # a plausible varint claiming a long packet, anywhere
        at = int(rng.integers(len(buf)))
        buf[at:at] = bytes([0xFF, 0xFF, 0x7F, int(rng.choice([1, 2]))])
    elif kind == "forge":  # a packet with a valid CRC but random fields and body
        body = rng.bytes(int(rng.integers(0, 300)))
        timestamp = int(rng.integers(1 << 32)) if not framing.compact or rng.random() < 0.5 else None
        packet = Packet(PacketType(int(rng.choice([1, 2]))), int(rng.integers(1 << 28)), timestamp, _flags(rng), body)
        at = int(rng.integers(len(buf) + 1))
        buf[at:at] = framing.frame(packet)
    else:
        buf = bytearray(rng.bytes(int(rng.integers(0, 2048))))
    return kind, bytes(buf)


def _flags(rng):
    from ..bitstream import Flags

    return Flags(int(rng.choice([0, 4, 8, 12, 0x20, 0x24])))


def _format(header: StreamHeader) -> str:
    return "compact" if header.compact else "legacy"


def _stream_case(seeds: Seeds, rng: np.random.Generator) -> tuple[str, int, int, Counter]:
    header, data, _, key = seeds.streams[int(rng.integers(len(seeds.streams)))]
    kind, mutated = mutate(rng, data, header.framing)
    if rng.random() < 0.5:  # keep the header intact half the time: the packets are the target
        mutated = data[:len(header.to_bytes())] + mutated[len(header.to_bytes()):]
    try:
        frames = len(decode_stream(mutated, key=key).frames)
    except BitstreamError:
        frames = 0
    except ValueError as err:  # a tagged header read without a key, or with one the header does not ask for
        if "packet key" not in str(err):
            raise
        frames = 0
    return f"stream/{kind}", frames, len(mutated), Counter({_format(header): 1})


def _live_case(seeds: Seeds, rng: np.random.Generator) -> tuple[str, int, int, Counter]:
    header, _, chunks, key = seeds.streams[int(rng.integers(len(seeds.streams)))]
    decoder = Decoder(header, reorder_window=int(rng.integers(0, 4)), key=key)
    frames, size, kinds = 0, 0, Counter()
    for chunk in chunks:
        kind, data = mutate(rng, chunk, header.framing) if rng.random() < seeds.live_rate else ("clean", chunk)
        kinds[kind] += 1
        size += len(data)
        frames += len(decoder.push(data))
    frames += len(decoder.flush())
    return "live", frames, size, Counter({_format(header): sum(kinds.values()) - kinds["clean"]})


def _request_case(seeds: Seeds, rng: np.random.Generator) -> tuple[str, int, int, Counter]:
    names = ["source_image", "rotation", "translation", "expression", "face", "source_face_points",
             "source_face_map", "source_face_code", "view_override", "view_offset", "frontalise", "relative"]
    tensors: dict[str, np.ndarray | None] = {"CORRID": np.array([int(rng.integers(1, 1 << 62))])}
    for name in names:
        if rng.random() < 0.4:
            shape = tuple(int(x) for x in rng.integers(0, 5, int(rng.integers(0, 4))))
            value = rng.normal(size=shape) * float(rng.choice([1, 1e3, 1e30]))
            if rng.random() < 0.2:
                value = np.full(shape, float(rng.choice([np.nan, np.inf, -np.inf])))
            tensors[name] = value.astype(np.float32)
    for control in ("START", "END", "READY"):
        if rng.random() < 0.3:
            tensors[control] = np.array([bool(rng.integers(2))])
    try:
        FrameRequest.from_tensors(tensors)
    except (SessionError, ValueError):
        pass
    return "request", 0, 0, Counter()


# a case → (its kind, frames decoded, bytes given, mutations made by stream format)
TARGETS: dict[str, Callable[[Seeds, np.random.Generator], tuple[str, int, int, Counter]]] = {
    "stream": _stream_case, "live": _live_case, "request": _request_case}


def run(cases: int, seed: int = 0, progress: bool = False, *, targets: tuple[str, ...] = tuple(TARGETS),
        compact_only: bool = False, live_rate: float = 0.3) -> dict:
    """Run `cases` cases over `targets` in turn (on the compact-format seeds only with `compact_only`; a live
    case mutates `live_rate` of its pushes);
    raises AssertionError on the first failing case. `mutations` counts the mutated inputs by format."""
    logging.getLogger("facecodec.bitstream").setLevel(logging.ERROR)  # drops are expected, by the thousand
    seeds, rng = seed_streams(), np.random.default_rng(seed)
    seeds = Seeds([s for s in seeds.streams if s[0].compact or not compact_only], live_rate)
    kinds, mutations, slowest, peak = Counter(), Counter(), (0.0, ""), 0
    chosen = [TARGETS[name] for name in targets]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cases, desc="fuzz", unit="case")
    started = time.perf_counter()
    for i in range(cases):
        traced = i % MEMORY_SAMPLE == 0
        if traced:
            tracemalloc.start()
        t0 = time.process_time()
        kind, frames, size, mutated = chosen[i % len(chosen)](seeds, rng)
        mutations += mutated
        seconds = time.process_time() - t0
        if traced:
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        kinds[kind.split("/")[0]] += 1
        slowest = max(slowest, (seconds, kind))
        assert seconds < CASE_SECONDS, f"case {i} ({kind}) took {seconds:.2f} s of CPU"
        assert frames <= MAX_FRAMES_PER_BYTE * size + 64, f"case {i} ({kind}): {frames} frames from {size} bytes"
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return {"cases": cases, "seed": seed, "by_target": dict(kinds), "mutations": dict(mutations),
            "wall_seconds": time.perf_counter() - started,
            "slowest_case_cpu_s": slowest[0], "slowest_case": slowest[1], "peak_traced_mib": peak / 2**20}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facecodec.tools.fuzz", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--report", type=Path, help="write the figures as JSON here")

    def command() -> int:
        args = p.parse_args(argv)
        if args.report:  # the folder made before the run: a long run never ends on a missing folder
            args.report.parent.mkdir(parents=True, exist_ok=True)
        report = run(args.cases, args.seed, progress=True)
        text = json.dumps(report, indent=1)
        print(text)
        if args.report:
            args.report.write_text(text + "\n")
        return 0

    return run_command(command, logging.getLogger("facecodec.fuzz"))


if __name__ == "__main__":
    sys.exit(main())
