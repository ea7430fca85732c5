"""The prefetch thread hands out the same steps, in the same order, as preparing them in the loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecodec.train.config import TrainConfig
from facecodec.train.data import ClipFrames, PairSampler
from facecodec.train.loop import Prefetcher, prepare_step

CFG = TrainConfig(sources_per_batch=2, pose_frames_per_step=0)


def _sampler(seed: int) -> tuple[PairSampler, np.random.Generator]:
    rng = np.random.default_rng(seed)
    frames = np.random.default_rng(9).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    clips = [ClipFrames(f"id{i}", f"c{i}", np.roll(frames, i, axis=0), None) for i in range(3)]
    return PairSampler(clips, drivings_per_source=2, rng=rng, augment=True), rng


def test_prefetched_steps_equal_the_steps_prepared_in_the_loop():
    sampler, rng = _sampler(0)
    direct = [prepare_step(sampler, rng, CFG) for _ in range(5)]
    sampler, rng = _sampler(0)
    ahead = Prefetcher(lambda: prepare_step(sampler, rng, CFG), depth=2)
    try:
        fetched = [ahead.next() for _ in range(5)]
    finally:
        ahead.close()
    for a, b in zip(direct, fetched):
        assert torch.equal(a.batch.sources, b.batch.sources) and torch.equal(a.batch.drivings, b.batch.drivings)
        assert torch.equal(a.theta, b.theta)
    assert not torch.equal(direct[0].batch.sources, direct[1].batch.sources)  # the steps do differ


def test_a_failure_on_the_prefetch_thread_is_raised_in_the_loop():
    calls = iter([1])

    def make():
        next(calls)  # the second call fails: StopIteration
        return "step"

    ahead = Prefetcher(make, depth=1)
    try:
        assert ahead.next() == "step"
        with pytest.raises(StopIteration):
            ahead.next()
    finally:
        ahead.close()


def test_close_stops_a_thread_blocked_on_a_full_queue():
    ahead = Prefetcher(lambda: "step", depth=1)
    ahead.close()
    assert not ahead._thread.is_alive()
