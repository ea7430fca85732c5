"""Serving benchmark: aggregate decoded frames/s through Triton at 1, 2, 4, 8 concurrent calls, next
to the in-process ONNX Runtime decode and to the layouts that move f_s every frame, in one run.

    python -m facecodec.tools.serving_bench [--frames 16] [--write docs/serving.md] [--runtime openvino]
                                            [--no-expression] [--served-only]

Rows (all lite, 256², one machine, the same stream):
- in-process: `SessionStore` on ONNX Runtime (and on the served runtime, when another), one call (batch 1) and
  8 calls batched (batch 8);
- Triton `decoder`, warp in the session's process (the served layout), at each concurrency;
- Triton `decoder` with `warp_in_decoder=False`: warp_decoder by BLS, f_s through shared memory per batch;
- Triton `warp_decoder` called over gRPC with f_s in every request (a stateless receiver).
Each figure is steady-state frames decoded / wall time (every call's START, which runs the
appearance encoder once, is sent and answered before the clock starts), after a warm-up round. The
decoder's average batch is Triton's inference count / execution count over the measured frames.
The stream carries the expression channel (its flow is part of each frame) unless `--no-expression`;
`--runtime` picks the served models' runtime (default: the serving default); `--served-only` leaves out
the two layouts that move f_s per frame.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..bitstream import DecodedFrame, decode_stream, stream_bytes
from ..client.remote import DecoderSession, RemoteNetworks
from ..codec.pipeline import MotionBatch, OrtNetworks, Receiver
from ..codec.receiver import frame_requests
from ..codec.sender import Sender, stream_header
from ..codec.session import SessionStore
from ..media import read_video
from ..runtime import RUNTIMES, make_runner, quiet_helper_threads
from ..serving import repository
from ..serving.bls import RoutedNetworks
from ..serving.server import TritonServer, model_metric
from ..serving.settings import ServingSettings

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
CONCURRENCY = (1, 2, 4, 8)


@dataclass
class Row:
    path: str
    calls: int
    frames: int
    seconds: float
    batch: float | None = None

    def markdown(self) -> str:
        batch = "" if self.batch is None else f"{self.batch:.1f}"
        fps = self.frames / self.seconds
        return f"| {self.path} | {self.calls} | {fps:.1f} | {1e3 / fps:.0f} | {batch} |"


HEADER = (
    "| path | concurrent calls | decoded frames/s (all calls) | ms per frame | avg decoder batch |\n"
    "| --- | --- | --- | --- | --- |"
)


def in_process_rows(networks, frames: list[DecodedFrame], label: str = "ONNX Runtime") -> list[Row]:
    rows = []
    for calls in (1, 8):
        store = SessionStore(networks, max_sessions=calls, idle_s=1e9)
        per_call = [list(frame_requests(frames, session_id=c + 1)) for c in range(calls)]
        store.decode([reqs[0] for reqs in per_call])  # START: sources set, not timed
        start = time.perf_counter()
        for i in range(1, len(frames)):
            store.decode([reqs[i] for reqs in per_call])
        rows.append(
            Row(f"in-process {label}, batch {calls}", calls, calls * (len(frames) - 1), time.perf_counter() - start)
        )
    return rows


def _decode_calls(url: str, frames: list[DecodedFrame], calls: int, pool: ThreadPoolExecutor) -> float:
    """`calls` sessions decode `frames` at once; seconds for the frames after START (not counted:
    a call's START runs the appearance encoder once, which is not steady-state decoding)."""

    sessions = [DecoderSession(url, timeout=600) for _ in range(calls)]
    requests = [list(frame_requests(frames, s.session_id)) for s in sessions]
    try:
        for s, reqs in zip(sessions, requests, strict=True):
            s.send(reqs[0]).result(600)

        def rest(i: int) -> None:
            for f in [sessions[i].send(r) for r in requests[i][1:]]:
                f.result(600)

        start = time.perf_counter()
        list(pool.map(rest, range(calls)))
        return time.perf_counter() - start
    finally:
        for s in sessions:
            s.close()


def triton_rows(server: TritonServer, frames: list[DecodedFrame], label: str, levels=CONCURRENCY) -> list[Row]:
    rows = []
    for calls in levels:
        with ThreadPoolExecutor(calls) as pool:
            _decode_calls(server.grpc_url, frames[:3], calls, pool)  # warm-up
            before = server.metrics()
            seconds = _decode_calls(server.grpc_url, frames, calls, pool)
        after = server.metrics()
        delta = {
            k: model_metric(after, k, "decoder") - model_metric(before, k, "decoder")
            for k in ("nv_inference_count", "nv_inference_exec_count")
        }
        batch = (delta["nv_inference_count"] - calls) / max(delta["nv_inference_exec_count"] - calls, 1)
        rows.append(Row(label, calls, calls * (len(frames) - 1), seconds, batch))
    return rows


def stateless_row(server: TritonServer, networks: OrtNetworks, frames: list[DecodedFrame]) -> Row:
    """warp_decoder over gRPC, the receiver holding f_s and sending it with every frame."""
    first = next(frame_requests(frames, session_id=1))
    rx = Receiver(networks)
    rx.set_source(first.source_image, first.motion)
    feeds = [
        {
            "source_image": rx.source_image,
            "source_features": rx.features,
            "kp_source": rx.kp_source,
            "kp_driving": rx.driving_keypoints(MotionBatch.from_motions([f.motion])),
        }
        for f in frames
    ]
    remote = RemoteNetworks(server.grpc_url, timeout=600)
    remote("warp_decoder", feeds[0])
    start = time.perf_counter()
    for f in feeds:
        remote("warp_decoder", f)
    seconds = time.perf_counter() - start
    remote.close()
    mb = sum(v.nbytes for v in feeds[0].values()) / 2**20
    return Row(f"Triton `warp_decoder` over gRPC, f_s sent per frame ({mb:.1f} MiB/request)", 1, len(feeds), seconds)


def run(video: Path, frames_per_call: int, work: Path, template: Path, *, runtime: str = "onnxruntime",
        expression: bool = True, served_only: bool = False) -> tuple[list[Row], str]:
    onnx = repository.ensure_export(work / "onnx", "lite")
    networks = OrtNetworks(onnx)
    quiet_helper_threads()  # as the served decoder does: the in-process receiver on equal terms
    sender_expression = None
    if expression:
        from ..expression import ExpressionSender

        sender_expression = ExpressionSender()
    header = stream_header("lite", 15, 256, 25.0, expression=sender_expression)
    chunks = Sender(networks, header, expression=sender_expression).send(read_video(video, max_frames=frames_per_call))
    frames = decode_stream(stream_bytes(header, chunks)).frames
    local, settings = networks, ServingSettings(runtime=runtime)
    if runtime != "onnxruntime":  # in-process on the served runtime too, at the served warp precision
        runner = make_runner(onnx / "warp_decoder.onnx", runtime, precision=settings.warp_precision)
        runner.activate()
        local = RoutedNetworks({"warp_decoder": runner.infer}, networks)
    load = [os.getloadavg()[0]]
    label = {"onnxruntime": "ONNX Runtime", "openvino": f"OpenVINO, warp in {settings.warp_precision}"}[runtime]
    rows = in_process_rows(networks, frames, "ONNX Runtime")  # the baseline, whatever the served runtime
    if runtime != "onnxruntime":
        rows += in_process_rows(local, frames, label)
    served = repository.stage(template, work / "repo", onnx, settings)
    with TritonServer(served, log_path=work / "served.log", settle=True) as server:
        rows += triton_rows(server, frames, f"Triton `decoder` session, warp in its process ({label})")
        if not served_only:
            rows.append(stateless_row(server, networks, frames))
    if not served_only:
        bls = repository.stage(template, work / "repo_bls", onnx, settings.with_(warp_in_decoder=False))
        with TritonServer(bls, log_path=work / "bls.log", settle=True) as server:
            rows += triton_rows(server, frames, "Triton `decoder`, warp by BLS (f_s copied per batch)", levels=(1, 8))
    load.append(os.getloadavg()[0])
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {label} with "
        f"{ServingSettings().ort_threads} threads per instance; expression channel {'on' if expression else 'off'}; "
        f"1-min load average {load[0]:.1f} at start, {load[1]:.1f} at end; {frames_per_call} frames per call"
    )
    return rows, machine


def markdown(rows: list[Row], machine: str) -> str:
    return f"Machine: {machine}.\n\n{HEADER}\n" + "\n".join(r.markdown() for r in rows) + "\n"


def write_table(doc: Path, table: str) -> None:
    text = doc.read_text() if doc.exists() else ""
    block = f"{BEGIN}\n{table}{END}"
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text += ("\n" if text else "") + block + "\n"
    doc.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m facecodec.tools.serving_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--video", type=Path, default=Path("samples/talking_00086_4s.mp4"))
    parser.add_argument("--frames", type=int, default=16, help="frames per call (default 16)")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"), help="template repository")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--write", type=Path, help="replace the table between the bench markers of this file")
    parser.add_argument("--runtime", choices=RUNTIMES, default=ServingSettings().runtime,
                        help="the served runtime (in-process: ONNX Runtime, and this one)")
    parser.add_argument("--no-expression", dest="expression", action="store_false", help="head motion only")
    parser.add_argument("--served-only", action="store_true", help="leave out the layouts that move f_s per frame")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="facecodec-bench-") as tmp:
        rows, machine = run(args.video, args.frames, args.work or Path(tmp), args.repository, runtime=args.runtime,
                            expression=args.expression, served_only=args.served_only)
    table = markdown(rows, machine)
    print(table)
    if args.write:
        write_table(args.write, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
