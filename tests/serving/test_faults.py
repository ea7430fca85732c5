"""A crash mid-call (issue 22, acceptance 4): the server is killed (SIGKILL, it and its backend stubs)
one second into a paced call and started again on the same ports. The call's client (the one
reconnect path, `ReconnectingSession`, with a single URL and backoff) re-opens the session with the
source keyframe once the server is back and the call completes; every delivered frame is the
in-process decode of the same packets, and the frames lost with the dead server are at most 2 s of
the call, and the longest wait for a frame is bounded (`MAX_WAIT_S`; 1.6-1.9 s measured). The sender's
motion encoder runs in the sender (in-process, one thread), as on a phone: only the receiver's server
dies."""

from __future__ import annotations

import threading
import time

import pytest

from facecodec.client.calls import Connection, call
from facecodec.client.reconnect import Backoff
from facecodec.client.remote import ServedModel
from facecodec.codec.pipeline import OrtNetworks
from facecodec.serving import repository
from facecodec.serving.metrics import ACTIVE_SESSIONS
from facecodec.serving.server import TritonServer, model_metric, shm_regions

from ..served import REPOSITORY, SAMPLE_CLIP, SETTINGS, assert_close_frames, local_decode

pytestmark = pytest.mark.triton
FRAMES = 100  # 4 s at 25 fps
MAX_LOST_S = 2.0  # the call's content lost with the server
RESUME_S = 2.0  # from the server ready again to the call's next frame
MAX_WAIT_S = 4.0  # the longest wait for a frame, kill and restart included: 1.6-1.9 s on the quiet 2-core VM
# (issue 22's 2 s, docs/benchmarks.md); the bound leaves room for a noisy CI machine and still catches a restart
# that slows down again (5.9 s before the compile cache, 16 s once under load)


class SenderNetworks:
    """The sender's motion encoder, in the sender's process (the in-process ONNX networks)."""

    def __init__(self, local):
        self.local = local

    def __call__(self, name, feeds):
        return self.local(name, feeds)

    def served_model(self) -> ServedModel:
        return ServedModel("lite", 256, 15)

    def close(self) -> None:
        pass


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_sigkill_mid_call_then_restart_on_the_same_port(onnx_dir, local, tmp_path):
    repo = repository.stage(REPOSITORY, tmp_path / "repository", onnx_dir, SETTINGS)
    server = TritonServer(repo, log_path=tmp_path / "first.log", startup_timeout=300)
    restarted = None
    try:
        server.__enter__()
        # the sender's encoder on one thread, as a phone's would be: two spinning ONNX Runtime threads on the
        # server's 2 cores took them from the restarting server (2.55 s without a frame instead of 1.6-1.9)
        sender = OrtNetworks(onnx_dir, threads=1)
        conn = Connection(server.grpc_url, timeout=240.0, backoff=Backoff(first_s=0.05, max_s=0.25, give_up_s=240))
        results: dict = {}

        def run():
            try:
                results["call"] = call(conn, SAMPLE_CLIP, max_frames=FRAMES, realtime=True, live=False,
                                       networks=SenderNetworks(sender))
            except BaseException as err:  # noqa: BLE001 - handed to the test
                results["call"] = err

        thread = threading.Thread(target=run, name="faulted-call", daemon=True)
        thread.start()
        wait_for(lambda: model_metric(server.metrics(), ACTIVE_SESSIONS, "decoder") == 1, 240, "the call's session")
        time.sleep(1.0)  # one second into the call
        regions = shm_regions(server.process.pid)  # the stubs' shared memory, which SIGKILL would leak
        assert regions and all(r.exists() for r in regions)
        t_kill = time.monotonic()
        server.kill()
        assert not any(r.exists() for r in regions), "the killed server's /dev/shm regions are left behind"

        restarted = TritonServer(repo, http_port=server.http_port, grpc_port=server.grpc_port,
                                 metrics_port=server.metrics_port, log_path=tmp_path / "restarted.log",
                                 startup_timeout=300)
        restarted.__enter__()
        t_ready = time.monotonic()
        thread.join(600)
        result = results["call"]
        assert not isinstance(result, BaseException), result
        report = result.report
        (reconnect,) = report.reconnects
        assert reconnect["failed_url"] == reconnect["url"] == server.grpc_url  # the same server, back
        lost = set(report.lost_frames)
        assert len(lost) / report.fps_target <= MAX_LOST_S, report.lost_frames
        delivered = [n for n in range(report.frames) if n not in lost]
        assert report.frames_delivered == len(delivered) and len(delivered) >= FRAMES - MAX_LOST_S * 25
        (tmp_path / "call.fcdc").write_bytes(result.stream)
        expected = local_decode(local, tmp_path / "call.fcdc")
        assert_close_frames(result.frames[delivered], expected[delivered])  # every delivered frame is right
        shown = sorted(t["shown"] for t in result.timeline if "shown" in t)
        after = [t for t in shown if t > t_ready]
        assert after and after[0] - t_ready <= RESUME_S, f"first frame {after[0] - t_ready:.2f} s after ready"
        longest = max(b - a for a, b in zip(shown, shown[1:]))
        assert longest <= MAX_WAIT_S, f"the call waited {longest:.1f} s for a frame"
        print(f"\nkilled {1e3 * (t_ready - t_kill):.0f} ms before the restarted server was ready; reconnect "
              f"{reconnect['seconds']:.2f} s in {reconnect['tries']} tries; call resumed "
              f"{1e3 * (after[0] - t_ready):.0f} ms after ready; longest wait between frames {1e3 * longest:.0f} ms; "
              f"{len(lost)} frames lost ({len(lost) / report.fps_target:.2f} s of the call); gaps {report.gaps}")
    finally:
        for s in (server, restarted):
            if s is not None:
                s.stop()
