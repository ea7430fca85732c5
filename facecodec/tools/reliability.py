"""The catalogue of bad input the receiver is tried with, and what each costs (`docs/reliability.md`).

Every case feeds one hostile or broken input to the part of the receiver that meets it first (the
stream reader, the live decoder, a call session, the decode command, a local file) and returns what a
user sees: the error message, or the outcome. It is run beside a healthy call, which must go on
decoding. The table gives each case's CPU time and peak Python memory; `tests/tools/test_reliability.py`
runs the whole catalogue and holds each case to its expected outcome, to 1 s of CPU and 200 MB.

    python -m facecodec.tools.reliability --out docs/reliability.md
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import logging
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..bitstream import (BitstreamError, Decoder, Encoder, Flags, Packet, PacketType, StreamHeader,
                         decode_stream, scan_packets, stream_bytes)
from ..bitstream.auth import new_key
from ..bitstream.keyframe import encode_face
from ..bitstream.synthetic import random_walk_motion
from ..codec.pipeline import MotionBatch, check_stream
from ..codec.session import FrameRequest, SessionError, SessionStore
from ..commands import run_command
from .. import io_spec
from ..serving.backend import run_batch
from ..expression import NUM_COEFFICIENTS, SOURCE_POINTS, SourceFace

CPU_SECONDS = 1.0
PEAK_BYTES = 200 << 20
# The catalogue crafts legacy packets (16-bit seq, explicit timestamps): its streams are versions 1 and 2, which
# every decoder still reads. Compact packets (version 3, the default) meet the same hostile inputs in
# `facecodec.tools.fuzz` and tests/bitstream/test_compact.py.
HEADER = StreamHeader(height=64, width=64, compact=False)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    where: str  # the part of the receiver that meets it
    run: Callable[[], str]  # → what the user sees (the only part measured)
    expect: str  # a part of it
    setup: Callable[[], None] | None = None  # before, not measured (e.g. other calls starting)
    others: Callable[[], bool] | None = None  # after: does a healthy call beside it still decode


@dataclasses.dataclass(frozen=True)
class Row:
    case: Case
    outcome: str
    cpu_s: float
    peak_mib: float
    others_ok: bool

    @property
    def ok(self) -> bool:
        return (self.case.expect in self.outcome and self.cpu_s < CPU_SECONDS and self.peak_mib * 2**20 < PEAK_BYTES
                and self.others_ok)


# ---------------------------------------------------------------- a clean stream and a healthy call


def _image(size: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    return (np.stack([x, y, 0.5 + 0 * x], -1) * 255).astype(np.uint8)


def _chunks(header: StreamHeader = HEADER, frames: int = 60, key: bytes | None = None, face=None) -> list[bytes]:
    encoder = Encoder(header, key=key)
    encoder.request_keyframe(_image(header.height), face)
    motions = random_walk_motion(frames, header.num_kp, seed=1, num_face=header.num_face)
    return [encoder.encode(m, round(n * header.frame_ms)) for n, m in enumerate(motions)]


def _drops(decoder: Decoder) -> str:
    return ", ".join(f"{reason.value} {n}" for reason, n in sorted(decoder.drops.items())) or "nothing dropped"


def _live(bad: list[bytes], header: StreamHeader = HEADER, *, key: bytes | None = None,
          after: list[bytes] | None = None) -> str:
    """Push `bad` into a live decoder between a clean stream's packets (an intra one at 50): the
    outcome says what was dropped and whether the clean packets after it still decode. (A decoder
    serves one call: other calls have their own.)"""
    decoder = Decoder(header, reorder_window=2, key=key)
    clean = after if after is not None else _chunks(header, key=key)
    frames = [f for data in clean[:5] + bad + clean[5:] for f in decoder.push(data)] + decoder.flush()
    tail = [f for f in frames if f.seq >= 50]
    healthy = bool(tail) and not any(f.concealed for f in tail)
    return f"{_drops(decoder)}; {len(frames)} frames; clean packets after it decode: {healthy}"


def _forge(body: bytes, kind: PacketType = PacketType.MOTION, seq: int = 6, flags: Flags = Flags.INTRA) -> bytes:
    return Packet(kind, seq, 240, flags, body).to_bytes()


def _webp(size: int, lossless: bool = False) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (90, 60, 40)).save(buffer, format="WEBP", lossless=lossless, quality=60)
    return bytes([1]) + buffer.getvalue()


def _header_error(data: bytes) -> str:
    try:
        StreamHeader.parse(data)
    except BitstreamError as err:
        return f"{type(err).__name__}: {err}"
    return "accepted"


def _error(call: Callable[[], object]) -> str:
    try:
        result = call()
    except (BitstreamError, SessionError, ValueError, FileExistsError) as err:
        return f"{type(err).__name__}: {err}"
    return f"accepted ({result})"


# ---------------------------------------------------------------- sessions (the Triton decoder's logic)


class _Sessions:
    """A session store on the shipped networks with one healthy call in it (id 1)."""

    def __init__(self):
        from ..codec.pipeline import TorchNetworks
        from ..weights import build_model

        self.networks = TorchNetworks(build_model("lite"))
        self.source = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
        self.store = SessionStore(self.networks, max_sessions=3, idle_s=60)
        self.store.decode([FrameRequest(1, start=True, source_image=self.source)])
        # the served decoder's store checks session tokens (serving.backend.DecoderModel)
        self.served = SessionStore(self.networks, max_sessions=3, idle_s=60, require_token=True)
        self.owner = "o" * 24

    def motion(self, yaw: float = 3.0) -> MotionBatch:
        return MotionBatch(np.array([[yaw, 0, 0]], np.float32), np.zeros((1, 3), np.float32),
                           np.zeros((1, 15, 3), np.float32))

    def send(self, request: FrameRequest) -> str:
        """Decode one bad request; what its caller gets back (call 41 lives in the served store)."""
        (result,) = (self.served if request.session_id == 41 else self.store).decode([request])
        return f"{type(result).__name__}: {result}" if isinstance(result, Exception) else "a frame"

    def tensors(self, **tensors) -> str:
        try:
            request = FrameRequest.from_tensors({"CORRID": np.array([9]), **tensors})
        except SessionError as err:
            return f"SessionError: {err}"
        return self.send(request)

    def healthy(self) -> bool:
        """The call beside it still decodes a frame."""
        return isinstance(self.store.decode([FrameRequest(1, motion=self.motion())])[0], np.ndarray)


def _session_cases(s: _Sessions) -> list[Case]:
    m = s.motion()
    nan = np.full((1, 3), np.nan, np.float32)
    idle = SessionStore(s.networks, max_sessions=2, idle_s=0.05)

    def start(store: SessionStore, *ids: int) -> Callable[[], None]:
        return lambda: store.decode([FrameRequest(i, start=True, source_image=s.source) for i in ids])

    def idle_frame() -> str:
        time.sleep(0.1)  # past the 0.05 s timeout, on the real clock
        (result,) = idle.decode([FrameRequest(5, motion=m)])
        return f"{type(result).__name__}: {result}"

    def ended() -> None:
        start(s.store, 31)()
        s.store.decode([FrameRequest(31, end=True, motion=m)])

    def owned() -> None:  # call 41, started with its token, in the token-checking store of the server
        if 41 not in s.served.sessions:
            s.served.decode([FrameRequest(41, start=True, source_image=s.source, token=s.owner)])

    def owner_goes_on() -> bool:
        frame = s.served.decode([FrameRequest(41, motion=m, token=s.owner)])[0]
        return isinstance(frame, np.ndarray) and len(s.served) == 1 and s.healthy()

    def end_then_healthy() -> bool:
        s.store.decode([FrameRequest(i, end=True) for i in (21, 22)])
        return s.healthy()

    def network(name: str, bad: np.ndarray) -> tuple[Callable[[], str], Callable[[], bool]]:
        """A served network's batch (backend.run_batch) on a bad image: its error (measured); then, not
        measured, the bad image and a good one in one batch: the good one is still answered."""
        tensor = io_spec.NETWORKS[name].input_names[0]
        infer = lambda f: s.networks(name, f)  # noqa: E731

        def run() -> str:
            (result,) = run_batch([{tensor: bad}], [tensor], infer)
            return f"{type(result).__name__}: {result}" if isinstance(result, Exception) else "outputs (no error)"

        def others() -> bool:
            _, good = run_batch([{tensor: bad}, {tensor: s.source}], [tensor], infer)
            return isinstance(good, dict) and all(np.isfinite(v).all() for v in good.values())

        return run, others

    nan_image = network("motion_encoder", np.full_like(s.source, np.nan))
    inf_source = network("appearance_encoder", np.where(s.source > 0.5, np.inf, s.source).astype(np.float32))
    empty_batch = network("motion_encoder", np.zeros((0, 3, 256, 256), np.float32))
    cases = [
        Case("NaN image to motion_encoder", "served network", nan_image[0], "must be finite", others=nan_image[1]),
        Case("inf in a source image to appearance_encoder", "served network", inf_source[0], "must be finite",
             others=inf_source[1]),
        Case("an empty image batch to motion_encoder", "served network", empty_batch[0], "missing or empty",
             others=empty_batch[1]),
        Case("frame of a call that was never started", "session", lambda: s.send(FrameRequest(77, motion=m)),
             "unknown session"),
        Case("START without a source image", "session", lambda: s.send(FrameRequest(78, start=True, motion=m)),
             "START needs source_image"),
        Case("motion with one of its three tensors missing", "session request",
             lambda: s.tensors(rotation=np.zeros((1, 3), np.float32)), "motion needs all of"),
        Case("NaN motion", "session request",
             lambda: s.tensors(rotation=nan, translation=nan, expression=np.zeros((1, 15, 3), np.float32)),
             "values must be finite"),
        Case("source image of the wrong rank", "session request",
             lambda: s.tensors(source_image=np.zeros((3, 256, 256), np.float32)), "expected 4-dimensional"),
        Case("an empty tensor", "session request", lambda: s.tensors(rotation=np.zeros((1, 0), np.float32)),
             "non-empty"),
        Case("inf in the source image", "session request",
             lambda: s.tensors(source_image=np.full((1, 3, 8, 8), np.inf, np.float32)), "finite"),
        Case("a source face without its code", "session request",
             lambda: s.tensors(source_image=s.source,
                               source_face_points=np.zeros((1, len(SOURCE_POINTS), 2), np.float32),
                               source_face_map=np.zeros((1, 2, 3), np.float32)), "source face needs all"),
        Case("view angle of 90°", "session", lambda: s.send(FrameRequest(1, motion=m, view=_view(90.0))), "90"),
        Case("more calls than the session cap", "session",
             lambda: s.send(FrameRequest(23, start=True, source_image=s.source)), "refused",
             setup=start(s.store, 21, 22), others=end_then_healthy),
        Case("END twice", "session", lambda: s.send(FrameRequest(31, end=True, motion=m)), "unknown session",
             setup=ended),
        Case("a call idle past its timeout (real clock)", "session", idle_frame, "unknown session",
             setup=start(idle, 5)),
        Case("START on a live call's id (taking the call over)", "session (served: tokens)",
             lambda: s.send(FrameRequest(41, start=True, source_image=s.source * 0.5, token="t" * 24)),
             "START refused", setup=owned, others=owner_goes_on),
        Case("a frame on a live call's id without its session token", "session (served: tokens)",
             lambda: s.send(FrameRequest(41, motion=m)), "session token", setup=owned, others=owner_goes_on),
        Case("END of a live call with another session token", "session (served: tokens)",
             lambda: s.send(FrameRequest(41, end=True, motion=m, token="x" * 24)), "session token", setup=owned,
             others=owner_goes_on),
    ]
    return [c if c.others else dataclasses.replace(c, others=s.healthy) for c in cases]


def _view(angle: float):
    from ..codec.pipeline import ViewEdit

    return ViewEdit(override=(angle, None, None))


# ---------------------------------------------------------------- the catalogue


def cases(sessions: _Sessions | None = None) -> list[Case]:
    clean = _chunks()
    (motion,) = list(scan_packets(clean[6]))
    rng = np.random.default_rng(3)
    key = new_key()
    keyed_header = StreamHeader(height=64, width=64, authenticated=True, compact=False)
    keyed = _chunks(keyed_header, key=key)
    face = SourceFace(rng.uniform(0, 63, (len(SOURCE_POINTS), 2)), rng.normal(size=(2, 3)), np.zeros(NUM_COEFFICIENTS))
    face_header = StreamHeader(height=64, width=64, face_basis=7, num_face=NUM_COEFFICIENTS, compact=False)
    face_body = encode_face(face)
    tiny = _webp(64)
    flood = [Packet(PacketType.KEYFRAME, 5 + i % 3, 0, Flags.REFRESH, tiny).to_bytes() for i in range(5000)]
    jumps = [_forge(motion.body, seq=(6 + 32767 * i) % 65536) for i in range(1, 21)]
    flipped = bytearray(clean[7])
    flipped[5] ^= 0x10
    altered = bytearray(motion.body)
    altered[2] ^= 0x01
    (keyed_packet,) = list(scan_packets(keyed[6]))
    keyed_altered = bytearray(keyed_packet.body)
    keyed_altered[0] ^= 0x02
    out = [
        # --- damaged transport
        Case("bit flip inside a packet", "live decoder", lambda: _live([bytes(flipped)]), "bad_framing 1"),
        Case("truncated packet", "live decoder", lambda: _live([clean[7][:9]]), "bad_framing"),
        Case("random bytes instead of a packet", "live decoder", lambda: _live([rng.bytes(300)]), "bad_framing"),
        Case("a packet twice", "live decoder", lambda: _live([clean[5], clean[5]]), "stale"),
        Case("junk glued in front of a packet", "live decoder", lambda: _live([rng.bytes(17) + clean[8]]),
             "bad_framing"),
        Case("empty datagram", "live decoder", lambda: _live([b""]), "nothing dropped"),
        # --- forged packets (valid CRC)
        Case("forged MOTION body (random levels)", "live decoder", lambda: _live([_forge(rng.bytes(40))]), "invalid"),
        Case("forged MOTION decoding beyond the field limits", "live decoder",
             lambda: _live([_forge(bytes([47]) + b"\xff" * 60)]), "invalid"),
        Case("reserved type bits set", "live decoder", lambda: _live([bytes([14, 0xF2]) + clean[6][2:]]),
             "bad_framing"),
        Case("sequence number 30,000 ahead (predicted)", "live decoder",
             lambda: _live([_forge(motion.body, seq=30006, flags=Flags.NONE)]), "too_far 1"),
        Case("20 intra packets jumping 32,767 frames each: re-join, no concealment (unauthenticated: the call "
             "follows the forger; authenticated calls drop them)", "live decoder", lambda: _live(jumps), "frames"),
        Case("a packet of an already emitted frame", "live decoder", lambda: _live([clean[2]]), "stale"),
        Case("a 2²⁸-byte length claim", "live decoder", lambda: _live([b"\xff\xff\xff\x7f\x02" + bytes(40)]),
             "bad_framing"),
        Case("1 MiB crafted to make resynchronisation quadratic", "live decoder",
             lambda: _live([b"\xff\x7f\x02" * (1 << 18)]), "bad_framing"),
        # --- keyframes
        Case("5,000 tiny keyframes", "live decoder", lambda: _live(flood), "stale"),
        Case("keyframe larger than the header says", "live decoder",
             lambda: _live([Packet(PacketType.KEYFRAME, 6, 0, Flags.REFRESH, _webp(96)).to_bytes()]), "invalid"),
        Case("keyframe whose WebP does not decode", "live decoder",
             lambda: _live([Packet(PacketType.KEYFRAME, 6, 0, Flags.REFRESH, _webp(64)[:40]).to_bytes()]), "invalid"),
        Case("keyframe with an unknown image codec", "live decoder",
             lambda: _live([Packet(PacketType.KEYFRAME, 6, 0, Flags.REFRESH, b"\x09" + bytes(50)).to_bytes()]),
             "invalid"),
        Case("keyframe face section: has_face 7", "live decoder (expression channel)",
             lambda: _live([Packet(PacketType.KEYFRAME, 6, 0, Flags.REFRESH, b"\x07" + face_body[1:] + _webp(64))
                            .to_bytes()], face_header), "invalid"),
        Case("keyframe face section cut short", "live decoder (expression channel)",
             lambda: _live([Packet(PacketType.KEYFRAME, 6, 0, Flags.REFRESH, face_body[:30]).to_bytes()], face_header),
             "invalid"),
        Case("keyframe face with NaN in its code", "live decoder (expression channel)",
             lambda: _live([Packet(PacketType.KEYFRAME, 6, 0, Flags.REFRESH,
                                   face_body[:-4] + np.array([np.nan], ">f4").tobytes() + _webp(64)).to_bytes()],
                           face_header), "invalid"),
        # --- headers
        Case("wrong magic", "stream reader", lambda: _header_error(b"XXXX" + HEADER.to_bytes()[4:]), "BadMagicError"),
        Case("unknown version", "stream reader", lambda: _header_error(b"FCDC\x09" + HEADER.to_bytes()[5:]),
             "UnsupportedVersionError"),
        Case("header checksum wrong", "stream reader", lambda: _header_error(HEADER.to_bytes()[:-1] + b"\x00"),
             "ChecksumError"),
        Case("header cut short", "stream reader", lambda: _header_error(HEADER.to_bytes()[:20]), "TruncatedError"),
        Case("quantiser step 1e308", "stream reader",
             lambda: _error(lambda: StreamHeader(steps=dataclasses.replace(HEADER.steps, angle=1e308))),
             "step for angle"),
        Case("a 16383×10000 picture", "stream reader", lambda: _error(lambda: StreamHeader(height=16383, width=10000)),
             "height"),
        Case("unknown feature bits in a version-2 header", "stream reader",
             lambda: _error(lambda: decode_stream(_with_features(0x80))), "features"),
        # --- stream against the decoding networks
        Case("16 keypoints for the lite networks", "decode", lambda: _error(
            lambda: check_stream(StreamHeader(num_kp=16), preset="lite", num_kp=15, image_size=256)), "num_kp is 16"),
        Case("a 300² stream for the lite networks", "decode", lambda: _error(
            lambda: check_stream(StreamHeader(height=300, width=300), preset="lite", num_kp=15, image_size=256)),
             "height is 300"),
        Case("a preset name that is a path", "decode", lambda: _error(lambda: _preset("../../etc/passwd")),
             "unknown preset"),
        Case("an expression basis this decoder does not know", "decode", lambda: _error(
            lambda: check_stream(StreamHeader(face_basis=7, num_face=16), preset="lite", num_kp=15, image_size=256)),
             "expression basis"),
        # --- authenticated calls
        Case("packet injected by a stranger (own key)", "live decoder (authenticated)",
             lambda: _live([_chunks(keyed_header, key=new_key())[6]], keyed_header, key=key, after=keyed), "forged 1"),
        Case("packet altered, CRC recomputed", "live decoder (authenticated)",
             lambda: _live([dataclasses.replace(keyed_packet, body=bytes(keyed_altered)).to_bytes()], keyed_header,
                           key=key, after=keyed), "forged 1"),
        Case("packet replayed after the sequence number wrapped", "live decoder (authenticated)",
             lambda: _replayed(keyed, keyed_header, key), "forged 1"),
        Case("authenticated stream read without its key", "stream reader",
             lambda: _error(lambda: decode_stream(stream_bytes(keyed_header, keyed))), "packet key"),
        # --- local files
        Case('a video named "-y.mp4" (an ffmpeg option)', "local files", _ffmpeg_name("-y.mp4"), "read as a file"),
        Case('a video named "concat:a.mp4" (an ffmpeg protocol)', "local files", _ffmpeg_name("concat:a.mp4"),
             "read as a file"),
        Case("a checkpoint that would run code when unpickled", "local files (training)", _pickled_code,
             "refused"),
        Case("a text file as the source picture", "client (source image)", _picture(b"not a picture\n" * 40),
             "cannot identify image"),
        Case("an 8K picture (7680×4320 PNG) as the source", "client (source image)", _picture(None),
             "(256, 256, 3)", setup=_make_8k),
    ]
    out += _compact_cases(rng)
    if sessions is not None:
        out += _session_cases(sessions)
    return out


def _compact_cases(rng: np.random.Generator) -> list[Case]:
    """The same kinds of hostile input against compact packets (version 3, the default layout)."""
    header = StreamHeader(height=64, width=64)
    keyed_header, key = StreamHeader(height=64, width=64, authenticated=True), new_key()
    clean, keyed = _chunks(header), _chunks(keyed_header, key=key)
    (motion,) = list(scan_packets(clean[6], header.framing))
    flipped = bytearray(clean[7])
    flipped[3] ^= 0x10
    altered = bytearray(keyed[6])
    altered[3] ^= 0x02

    def forge(seq: int, timestamp: int | None, flags: Flags = Flags.INTRA | Flags.QSCALE) -> bytes:
        return header.framing.frame(Packet(PacketType.MOTION, seq, timestamp, flags, motion.body))

    return [
        Case("compact: bit flip inside a packet (CRC-16)", "live decoder", lambda: _live([bytes(flipped)], header),
             "bad_framing 1"),
        Case("compact: random bytes instead of a packet", "live decoder", lambda: _live([rng.bytes(40)], header),
             "bad_framing"),
        Case("compact: anchor 30,000 frames ahead (predicted)", "live decoder",
             lambda: _live([forge(30006, 0, Flags.QSCALE)], header), "too_far 1"),
        Case("compact: intra packet without its qscale", "live decoder",
             lambda: _live([forge(6, 240, Flags.INTRA)], header), "invalid"),
        Case("compact: packet altered (the tag replaces the CRC)", "live decoder (authenticated)",
             lambda: _live([bytes(altered)], keyed_header, key=key, after=keyed), "forged 1"),
    ]


def _with_features(bits: int) -> bytes:
    import struct
    import zlib

    body = bytearray(StreamHeader(authenticated=True).to_bytes()[7:-4])
    body[-1] = bits
    head = b"FCDC" + bytes([2]) + struct.pack(">H", len(body)) + bytes(body)
    return head + struct.pack(">I", zlib.crc32(head))


def _preset(name: str):
    from ..presets import get_preset

    return get_preset(name)


def _replayed(chunks: list[bytes], header: StreamHeader, key: bytes) -> str:
    decoder = Decoder(header, key=key, first_seq=65536 + 6)
    decoder.push(chunks[6])  # the same wire seq 6, but frame 65,542 now
    return _drops(decoder)


def _ffmpeg_name(name: str) -> Callable[[], str]:
    def run() -> str:
        import tempfile

        from ..media import read_video, write_video

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            write_video(path, np.zeros((2, 64, 64, 3), np.uint8), fps=25)
            read_video(path, size=64)
            return "read as a file" if path.is_file() else "not written"

    return run


_BIG = Path("8k.png")  # made by the setup in a temporary folder, removed after the run


def _make_8k() -> None:
    import tempfile

    global _BIG
    _BIG = Path(tempfile.mkdtemp(prefix="facecodec-8k-")) / "8k.png"
    Image.new("RGB", (7680, 4320), (120, 90, 70)).save(_BIG, optimize=False, compress_level=1)


def _picture(data: bytes | None) -> Callable[[], str]:
    """The client's source-picture reader (`media.read_image`) on `data`, or on the 8K file."""
    def run() -> str:
        import shutil
        import tempfile

        from ..media import read_image

        folder = Path(tempfile.mkdtemp(prefix="facecodec-picture-"))
        path = folder / "source.png"
        try:
            if data is None:
                path = _BIG
            else:
                path.write_bytes(data)
            try:
                return f"a {read_image(path, size=256).shape} picture"
            except (OSError, ValueError) as err:
                return f"{type(err).__name__}: {err}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            if data is None:
                shutil.rmtree(_BIG.parent, ignore_errors=True)
    return run


def _pickled_code() -> str:
    import os
    import pickle
    import tempfile


    class Payload:
        def __reduce__(self):
            return os.system, ("echo pwned",)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        path.write_bytes(pickle.dumps({"model": Payload()}))
        from ..train.loop import _initial_weights

        try:
            _initial_weights(path)
        except pickle.UnpicklingError as err:
            return f"refused: {str(err).splitlines()[0]}"
    return "loaded"


# ---------------------------------------------------------------- measuring


def measure(case: Case) -> Row:
    if case.setup is not None:
        case.setup()
    tracemalloc.start()
    cpu = time.process_time()
    outcome = case.run()
    cpu = time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return Row(case, outcome, cpu, peak, case.others() if case.others is not None else True)


def run_all(with_sessions: bool = True) -> list[Row]:
    logging.getLogger("facecodec").setLevel(logging.ERROR)  # drops are the point here
    return [measure(c) for c in cases(_Sessions() if with_sessions else None)]


def table(rows: list[Row]) -> list[str]:
    lines = ["| # | bad input | meets | what the user sees | CPU s | peak MiB | others go on | ok |",
             "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        said = r.outcome.replace("|", "/").replace("\n", " ")
        said = said if len(said) < 160 else said[:157] + "…"
        lines.append(f"| {i} | {r.case.name} | {r.case.where} | {said} | {r.cpu_s:.3f} | {r.peak_mib:.1f} | "
                     f"{'yes' if r.others_ok else 'NO'} | {'✓' if r.ok else '✗'} |")
    return lines


def document(rows: list[Row]) -> list[str]:
    """docs/reliability.md: how the table is made, the table, what is not covered yet."""
    import platform

    return [
        "# Reliability: bad input at the receiver",
        "",
        "Generated by `python -m facecodec.tools.reliability --out docs/reliability.md` (the catalogue is",
        "`facecodec/tools/reliability.py`; `tests/tools/test_reliability.py` runs every row in `make test` and holds",
        f"each to its expected outcome, at most {CPU_SECONDS:g} s of CPU and {PEAK_BYTES >> 20} MB of Python memory).",
        f"Machine of this table: {platform.machine()}, {platform.python_implementation()} {platform.python_version()};",
        "CPU seconds are process time of that input alone; peak MiB is tracemalloc's peak while it ran.",
        "",
        "Each input meets the part of the receiver that reads it first. *Others go on*: for a session, a healthy",
        "call in the same decoder still renders a frame afterwards; a live decoder serves one call, and the row",
        "says whether that call's clean packets after the bad input still decode. `make fuzz` adds random",
        "mutations of the same parsers (its figures: docs/benchmarks.md, *Fuzzing*).",
        "",
        *table(rows),
        "",
        "## On a real server",
        "",
        "These need a running tritonserver (Triton's own checks, TLS, the sequence scheduler, a crash); each row",
        "is a test that `make test` runs against one, started on loopback ports by the test.",
        "",
        *served_table(),
        "",
    ]


# Cases that need a real tritonserver (Triton's own checks, TLS, the scheduler, a crash): each is a test
# in CI, named here with what the user sees; they are not timed here (their cost is the server's).
SERVED = [
    ("NaN or inf image to motion_encoder / appearance_encoder, beside good requests",
     "tests/serving/test_validation.py::test_networks_refuse_non_finite_images_and_answer_the_rest_of_their_batch",
     "`motion_encoder: image: values must be finite (NaN or inf found)`; the good requests get their motion"),
    ("an image of another size (512² instead of 256²; an 8K tensor alike) or rank",
     "tests/serving/test_validation.py::test_triton_refuses_wrong_dims_and_dtypes_before_the_model",
     "Triton: `unexpected shape for input 'image'`, before any model runs"),
    ("an FP64 image", "tests/serving/test_validation.py::test_triton_refuses_wrong_dims_and_dtypes_before_the_model",
     "Triton: `inference input 'image' data-type is 'FP64', but model 'motion_encoder' expects 'FP32'`"),
    ("a full queue (32 concurrent requests, queue of 1)",
     "tests/serving/test_validation.py::test_a_full_queue_sheds_load_at_once_with_a_retryable_error",
     "`ServerBusy: motion_encoder ... is busy (its queue is full; retry later)` within 0.3 s, retryable; "
     "a live call skips that frame"),
    ("more calls than the session cap",
     "tests/serving/test_sessions.py::test_session_cap_refuses_clearly_and_others_keep_going",
     "`refused: this decoder holds its maximum of 12 live sessions; end a call or retry later`"),
    ("a frame before START", "tests/serving/test_sessions.py::test_frame_before_start_is_refused_by_the_scheduler",
     "Triton: `must specify the START flag on the first request of the sequence`"),
    ("another client's frame, new source or START on a live call's id; its END",
     "tests/serving/test_sessions.py::test_a_call_belongs_to_its_token_not_to_its_id",
     "`wrong or missing session token` / `START refused`; the call goes on. The END ends Triton's sequence: "
     "the call re-opens as a fresh session (one frame lost)"),
    ("a plain-text or unverified client on a TLS server; a client without a certificate under mutual TLS",
     "tests/serving/test_security.py::test_mutual_tls_needs_a_client_certificate_and_a_tls_call_decodes",
     "the handshake fails (`failed to connect`); a client with its certificate decodes the call"),
    ("statistics, model control, shared memory, trace or logging without the admin key",
     "tests/serving/test_security.py::test_restricted_protocols_refuse_a_client_without_the_admin_key",
     "`This protocol is restricted, expecting header 'triton-grpc-protocol-facecodec-admin-key'` (HTTP: 403)"),
    ("altered, replayed and injected packets in a live authenticated call",
     "tests/client/test_calls.py::test_an_authenticated_call_rejects_and_counts_forged_packets_and_goes_on",
     "dropped; the call report counts `forged 2, stale 1`; every frame still correct"),
    ("the server killed (SIGKILL) one second into a call, then restarted",
     "tests/serving/test_faults.py::test_sigkill_mid_call_then_restart_on_the_same_port",
     "the frames in flight are lost (≤ 2 s of the call); the call re-opens on the restarted server and completes"),
]


def served_table() -> list[str]:
    lines = ["| # | bad input or fault | what the user sees | test |", "|---|---|---|---|"]
    for i, (name, test, said) in enumerate(SERVED, 1):
        lines.append(f"| S{i} | {name} | {said} | `{test.split('::')[1]}` ({test.split('::')[0]}) |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facecodec.tools.reliability", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="write the table (Markdown) here; else print it")

    def command() -> int:
        args = p.parse_args(argv)
        rows = run_all()
        text = "\n".join(document(rows)) + "\n"
        if args.out:
            args.out.write_text(text)
        print(text)
        return 0 if all(r.ok for r in rows) else 1

    return run_command(command, logging.getLogger("facecodec.reliability"))


if __name__ == "__main__":
    sys.exit(main())
