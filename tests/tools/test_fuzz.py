"""A short run of `make fuzz` in every test run: the receiver's parsers on mutated streams and requests."""

from __future__ import annotations

import numpy as np

from facecodec.tools import fuzz


def test_a_short_fuzz_run_finds_nothing():
    report = fuzz.run(600, seed=11)
    assert report["by_target"] == {"stream": 200, "live": 200, "request": 200}
    assert report["slowest_case_cpu_s"] < fuzz.CASE_SECONDS


def test_ten_thousand_mutations_of_the_compact_format():
    """Issue 21: the compact packets (stream version 3) under ≥ 10,000 mutated inputs, files and live pushes."""
    report = fuzz.run(840, seed=21, targets=("stream", "live"), compact_only=True, live_rate=0.6)
    assert set(report["mutations"]) == {"compact"} and report["mutations"]["compact"] >= 10_000
    assert report["slowest_case_cpu_s"] < fuzz.CASE_SECONDS


def test_every_mutation_kind_is_exercised():
    rng = np.random.default_rng(0)
    data = fuzz.seed_streams(4).streams[0][1]
    kinds = {fuzz.mutate(rng, data)[0] for _ in range(200)}
    assert kinds == {"flip", "run", "truncate", "duplicate", "splice", "length", "forge", "random"}
