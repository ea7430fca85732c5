"""A live call keeps its latency bounded: the receiver renders only the newest motion when it is
behind, the sender lowers its rate on the receiver's reports, `--no-drop` still decodes every frame;
the simulated link delays, jitters and loses what it should; the decoder's own metrics show on the
real server's /metrics during a call."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from facecodec.bitstream import DecodedFrame, Motion
from facecodec.client import calls
from facecodec.client.link import Link, LinkModel
from facecodec.client.live import RateAdapter, ReceiverReport, RenderQueue
from facecodec.serving.metrics import ACTIVE_SESSIONS
from facecodec.serving.server import model_metric

from ..served import assert_close_frames, local_decode


def _frame(seq: int, keyframe: bool = False) -> DecodedFrame:
    motion = Motion.from_vector(np.zeros(3 + 3 + 45), 15)
    image = np.zeros((4, 4, 3), np.uint8) if keyframe else None
    return DecodedFrame(seq, 40 * seq, motion, False, image)


def test_render_queue_keeps_keyframes_and_the_newest_frame():
    live = RenderQueue(live=True)
    assert live.add(_frame(0, keyframe=True)) == []
    assert live.add(_frame(1)) == []
    assert [f.seq for f in live.add(_frame(2))] == [1]
    assert [f.seq for f in live.add(_frame(3))] == [2]
    assert [f.seq for f in live.frames] == [0, 3]  # the keyframe carries the source: never dropped
    offline = RenderQueue(live=False)
    for seq in range(4):
        assert offline.add(_frame(seq)) == []
    assert [offline.pop().seq for _ in range(4)] == [0, 1, 2, 3]


def test_rate_adapter_follows_the_receiver():
    adapter = RateAdapter(25.0, min_fps=5.0)
    assert sum(adapter.take() for _ in range(25)) == 25  # full rate until told otherwise
    adapter.report(ReceiverReport(1.0, received=25, delivered=8, dropped=17))
    assert adapter.fps == 25.0  # the first report is the call's warm-up (START, first renders): no cut
    adapter.report(ReceiverReport(1.0, received=25, delivered=10, dropped=15))
    assert adapter.fps == pytest.approx(9.0)  # 0.9 × what the receiver delivered
    taken = sum(adapter.take() for _ in range(250))
    assert 88 <= taken <= 92  # evenly: 9 of every 25 captured frames
    adapter.report(ReceiverReport(1.0, received=9, delivered=2, dropped=7))
    assert adapter.fps == 5.0  # never below min_fps
    for _ in range(30):
        adapter.report(ReceiverReport(1.0, received=10, delivered=10, dropped=0))
    assert adapter.fps == 25.0  # raised a step per clean report, up to the capture rate
    adapter.report(ReceiverReport(1.0, received=100, delivered=99, dropped=1))
    assert adapter.fps == 25.0  # a drop within the tolerance changes nothing


def test_link_delays_jitters_and_loses():
    arrivals: list[tuple[int, float, float]] = []
    link = Link(LinkModel(delay_ms=30, jitter_ms=5, loss=0.2, seed=1),
                lambda payload, sent_at: arrivals.append((payload, sent_at, time.monotonic())))
    for i in range(200):
        link.send(i, reliable=i % 50 == 0)
    link.close()
    delays = np.array([1e3 * (got - sent) for _, sent, got in arrivals])
    assert link.sent == 200 and len(arrivals) == 200 - link.lost
    assert 0.12 <= link.lost / 200 <= 0.28
    assert {0, 50, 100, 150} <= {p for p, _, _ in arrivals}  # reliable datagrams always arrive
    assert delays.min() >= 29.0 and 31 <= np.median(delays) <= 45
    assert delays.std() > 1.0  # jitter: not one fixed delay
    ideal: list[int] = []
    Link(LinkModel(), lambda payload, sent_at: ideal.append(payload)).send(7)
    assert ideal == [7]  # an ideal link delivers at once, on the sender's thread
    with pytest.raises(ValueError):
        LinkModel(loss=1.0)


@pytest.mark.triton
def test_a_burst_is_dropped_to_the_newest_frame_and_no_drop_decodes_all(conn, local, clip, tmp_path):
    """Frames sent as fast as possible: live, the receiver skips what it cannot render in time and
    what it renders is exactly the in-process frame of that packet; --no-drop renders every one."""
    live = calls.call(conn, clip, tmp_path / "live", max_frames=30, realtime=False, adapt_rate=False)
    report = live.report
    assert report.frames_sent == 30 and report.frames_dropped > 0
    assert report.frames_delivered + report.frames_dropped == 30
    assert sorted(live.delivered) == sorted(set(range(30)) - set(_dropped(live)))
    assert 0 in live.delivered and 29 in live.delivered  # the keyframe and the newest frame
    expected = local_decode(local, tmp_path / "live" / "stream.fcdc")
    seqs = sorted(live.delivered)
    assert_close_frames(np.stack([live.delivered[s] for s in seqs]), expected[seqs])
    assert live.frames.shape == (30, 256, 256, 3)  # a dropped frame's slot shows the frame before

    full = calls.call(conn, clip, tmp_path / "all", max_frames=30, realtime=False, live=False)
    assert full.report.frames_delivered == 30 and full.report.frames_dropped == 0 and not full.report.live
    assert_close_frames(full.frames, local_decode(local, tmp_path / "all" / "stream.fcdc"))
    # the live call's latency is bounded by about one render; the backlog's grows with the clip
    assert report.latency_ms_p95 < full.report.latency_ms_p95


def _dropped(result) -> list[int]:
    return [s for s in range(result.report.frames_sent) if s not in result.delivered]


@pytest.mark.triton
def test_lossy_link_still_renders_every_received_frame(conn, clip):
    result = calls.call(conn, clip, max_frames=20, realtime=False, live=False,
                        link=LinkModel(delay_ms=10, jitter_ms=3, loss=0.15, seed=3))
    report = result.report
    assert report.frames_lost > 0  # lost packets are concealed by the bitstream decoder and still rendered
    assert report.frames_delivered == report.frames_sent == 20
    # every frame reached the receiver no sooner than the link's delay (a concealed one with the next packet)
    assert all(t["arrived"] - t["packetised"] >= 0.0095 for t in result.timeline)


@pytest.mark.triton
def test_decoder_metrics_on_the_real_server_during_a_call(triton, conn, clip):
    before = triton.metrics()
    seen: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.append(model_metric(triton.metrics(), ACTIVE_SESSIONS, "decoder"))
            time.sleep(0.1)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        report = calls.call(conn, clip, max_frames=40, realtime=False, adapt_rate=False).report
    finally:
        stop.set()
        poller.join()
    after = triton.metrics()
    grew = lambda name: model_metric(after, name, "decoder") - model_metric(before, name, "decoder")  # noqa: E731
    assert max(seen) >= 1  # the call's session was live while it ran
    assert model_metric(after, ACTIVE_SESSIONS, "decoder") == 0  # END freed it
    assert grew("facecodec_frames_decoded_total") == report.frames_delivered
    assert grew("facecodec_frames_dropped_total") == report.frames_dropped > 0
    assert grew("facecodec_render_seconds_count") >= 1 and grew("facecodec_render_seconds_sum") > 0
    stages = {k for k in after if k.startswith("facecodec_stage_seconds_total{")}
    assert {'stage="warp"', 'stage="expression_flow"', 'stage="keypoints"'} <= {
        part for k in stages for part in k[k.index("{") + 1 : -1].split(",")}
    buckets = [k for k in after if k.startswith("facecodec_render_seconds_bucket{")]
    assert len(buckets) >= 10 and any('le="+Inf"' in k for k in buckets)
