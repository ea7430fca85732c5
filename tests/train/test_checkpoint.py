"""Resume: a checkpoint restores weights, optimiser, step, wall time and the sampling RNG."""

from __future__ import annotations

import torch

from facecodec.train.config import TrainConfig
from facecodec.train.loop import build_state, load_checkpoint, save_checkpoint


def test_checkpoint_round_trip(tiny_config, tmp_path):
    cfg = TrainConfig(seed=1)
    state = build_state(cfg, tiny_config)
    state.step, state.wall_s = 17, 123.0
    state.rng.integers(100, size=5)  # advance the sampler RNG
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(state, path)
    expected_draw = state.rng.integers(1 << 30)

    fresh = build_state(TrainConfig(seed=2), tiny_config)
    load_checkpoint(fresh, path)
    assert (fresh.step, fresh.wall_s) == (17, 123.0)
    assert fresh.rng.integers(1 << 30) == expected_draw
    for (name, a), b in zip(state.model.state_dict().items(), fresh.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert not path.with_suffix(".tmp").exists()  # written atomically
