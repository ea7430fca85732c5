"""Drain and reconnect on two real tritonservers, each started as a CPU pod starts it (`prepare`,
then `serve --prepared`): a pod that gets SIGTERM turns not-ready, refuses new calls and finishes its
live ones; a call still live when its pod is killed (SIGKILL, the end of the grace period) moves
to the other server with a bounded gap, every delivered frame matching the in-process decode."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from facecodec.client.calls import Connection, call
from facecodec.client.reconnect import Backoff, ReconnectingSession
from facecodec.client.remote import ClientError
from facecodec.codec.pipeline import encode_frames, images_to_batch
from facecodec.codec.session import FrameRequest
from facecodec.media import read_video
from facecodec.serving.metrics import ACTIVE_SESSIONS
from facecodec.serving.server import model_metric

from ..served import REPOSITORY, SAMPLE_CLIP, assert_close_frames, local_decode
from .launched import Launched

pytestmark = pytest.mark.triton
GAP_LIMIT_MS = 2000.0  # issue 20: a moved call's gap


@pytest.fixture(scope="module")
def prepared(onnx_dir, tmp_path_factory):
    """The repository a pod's init container renders (`python -m facecodec.serving prepare`)."""
    out = tmp_path_factory.mktemp("pod") / "repository"
    cmd = [sys.executable, "-m", "facecodec.serving", "prepare", "--repository", REPOSITORY, "--onnx", onnx_dir,
           "--out", out, "--max-sessions", "8", "--warp-precision", "f32"]  # fp32: parity with `local`
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "decoder" / "config.pbtxt").is_file() and (out / "decoder" / "1" / "warp_decoder.onnx").is_file()
    return out


def wait_for(predicate, timeout: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def run_call(results: dict, name: str, conn: Connection, tmp_path, frames: int) -> threading.Thread:
    def target():
        try:
            results[name] = call(conn, SAMPLE_CLIP, max_frames=frames, realtime=True, live=False)  # every frame
            (tmp_path / f"{name}.fcdc").write_bytes(results[name].stream)  # the packets the link carried
        except BaseException as err:  # noqa: BLE001 - handed to the test
            results[name] = err

    thread = threading.Thread(target=target, name=f"call-{name}", daemon=True)
    thread.start()
    return thread


def test_sigterm_drains_and_a_killed_pods_call_moves(prepared, local, tmp_path):
    a = Launched(prepared, tmp_path, "A", drain_seconds=120)
    b = Launched(prepared, tmp_path, "B", drain_seconds=30)
    try:
        a.wait_ready(), b.wait_ready()
        # both calls' sessions open on A (B is their next server); their senders use B's motion_encoder
        conn = Connection(b.grpc_url, timeout=240.0, decoders=(a.grpc_url, b.grpc_url))
        results: dict = {}
        # paced at 25 fps: the short call lives at least 1 s, the long one at least 3.6 s, on any machine
        short = run_call(results, "short", conn, tmp_path, frames=25)
        long = run_call(results, "long", conn, tmp_path, frames=90)
        wait_for(lambda: model_metric(a.metrics(), ACTIVE_SESSIONS, "decoder") == 2, 180, "both calls live on A")

        a.terminate()
        t_term = time.monotonic()
        wait_for(lambda: a.health() != 200, 3.0, "A not ready")
        not_ready_s = time.monotonic() - t_term
        assert a.health("/v2/health/live") != 200  # tritonserver closed its HTTP endpoint
        source = images_to_batch(read_video(SAMPLE_CLIP, max_frames=1))
        refused = ReconnectingSession([a.grpc_url], timeout=10, backoff=Backoff(give_up_s=0.5))
        with pytest.raises(ClientError, match="Server (exiting|is stopping)"):
            refused.send(FrameRequest(1, start=True, source_image=source, motion=encode_frames(local, source)))

        # the short call ends on A (its END frees its session: the gauge, still served, drops to 1) while
        # A keeps running for the long one
        wait_for(lambda: model_metric(a.metrics(), ACTIVE_SESSIONS, "decoder") == 1, 300, "the short call's end")
        short.join(300)  # its END's answer reached the client (the gauge drops while that answer is on its way)
        assert a.proc.poll() is None, "A exited with a call still live"
        a.kill()  # the grace period is over
        t_kill = time.monotonic()
        done = results["short"]
        assert not isinstance(done, BaseException), done
        assert done.report.lost_frames == [] and done.report.reconnects == []  # finished on A, whole
        assert_close_frames(done.frames, local_decode(local, tmp_path / "short.fcdc"))
        long.join(300)
        moved = results["long"]
        assert not isinstance(moved, BaseException), moved
        report = moved.report
        (reconnect,) = report.reconnects
        assert (reconnect["failed_url"], reconnect["url"]) == (a.grpc_url, b.grpc_url)
        assert report.gaps and all(g["ms"] <= GAP_LIMIT_MS for g in report.gaps), report.gaps
        assert sum(g["frames"] for g in report.gaps) == len(report.lost_frames)
        delivered = [n for n in range(report.frames) if n not in set(report.lost_frames)]
        assert len(delivered) > report.frames // 2
        expected = local_decode(local, tmp_path / "long.fcdc")
        assert_close_frames(moved.frames[delivered], expected[delivered])
        print(
            f"\nA not ready {1e3 * not_ready_s:.0f} ms after SIGTERM; short call whole on A; long call moved to B "
            f"{time.monotonic() - t_kill:.1f} s after SIGKILL: reconnect {1e3 * reconnect['seconds']:.0f} ms, "
            f"gaps {report.gaps}, {len(report.lost_frames)} of {report.frames} frames lost"
        )

        t_stop = time.monotonic()
        b.terminate()  # no live call on B any more: it drains at once
        assert b.proc.wait(60) == 0
        assert time.monotonic() - t_stop < 30
    finally:
        for server in (a, b):
            if server.proc.poll() is None:
                server.kill()


def test_the_drain_window_is_tritons_exit_timeout_and_the_stop_waits_for_it(tmp_path):
    from facecodec.serving.server import DRAIN_MARGIN_S, TritonServer

    server = TritonServer(tmp_path, drain_seconds=299.5, log_path="-")
    assert "--exit-timeout-secs=300" in server.command()
    assert server.stop_timeout == 299.5 + DRAIN_MARGIN_S and server.log_path is None
    plain = TritonServer(tmp_path)
    assert not any(a.startswith("--exit-timeout-secs") for a in plain.command()) and plain.stop_timeout == 30
