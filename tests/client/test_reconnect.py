"""The pure parts of `facecodec.client.reconnect`: gaps, backoff, which refusals send a call on. The
reconnection itself runs against real servers in tests/k8s/test_drain.py."""

from __future__ import annotations

import itertools
import math

import pytest

from facecodec.client.reconnect import Backoff, Gap, ReconnectingSession, _retryable, gaps
from facecodec.client.remote import ClientError
from facecodec.codec.session import FrameRequest


def test_gaps_are_runs_of_lost_frames_timed_by_their_neighbours():
    arrived = {0: 0.0, 1: 0.04, 2: 0.08, 6: 0.90, 7: 0.94, 9: 1.5}
    assert gaps(arrived, [3, 4, 5, 8]) == [Gap(3, 3, pytest.approx(820.0)), Gap(8, 1, pytest.approx(560.0))]
    assert gaps(arrived, []) == []
    (tail,) = gaps({0: 0.0}, [1, 2])  # nothing delivered after it: the gap has no end
    assert tail.first == 1 and tail.frames == 2 and math.isnan(tail.ms)


def test_backoff_doubles_to_its_cap_with_jitter():
    delays = list(itertools.islice(Backoff(first_s=0.05, max_s=1.0, jitter=0.2).delays(), 8))
    nominal = [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    for got, want in zip(delays, nominal, strict=True):
        assert want * 0.8 <= got <= want * 1.2


@pytest.mark.parametrize("message, retry", [
    ("decoder session 1: Server is stopping, scheduler for model has stopped accepting new inference requests", True),
    ("cannot reach Triton at 10.0.0.7:8001: Server exiting", True),
    ("decoder: session 5: refused: this decoder holds its maximum of 1 live sessions; end a call or retry later", True),
    ("decoder session 1: stream to 10.0.0.7:8001 failed: Socket closed", True),
    ("decoder: session 5: START needs source_image (the call's source frame)", False),
    ("decoder: view angle 45 beyond ±30°", False),
])
def test_which_refusals_send_the_call_to_another_server(message, retry):
    assert _retryable(ClientError(message)) is retry


def test_a_call_gives_up_when_no_server_takes_it():
    session = ReconnectingSession(["127.0.0.1:9"], timeout=2, backoff=Backoff(first_s=0.01, give_up_s=0.2))
    with pytest.raises(ClientError, match="no server took the call"):
        session.send(FrameRequest(1, start=True, source_image=None))
    assert session.broken
    with pytest.raises(ClientError):  # and stays given up
        session.send(FrameRequest(1, start=True))


def test_frames_before_start_are_an_error():
    session = ReconnectingSession(["127.0.0.1:9"])
    with pytest.raises(ClientError, match="first request must be START"):
        session.send(FrameRequest(1))
