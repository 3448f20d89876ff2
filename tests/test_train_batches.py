"""Training batches prepared one step ahead: the sampler's order, an exact resume position, the same curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_train_run import config, curve

from cbs.data import WindowSampler, gather_windows
from cbs.results import ResultsStore
from cbs.train import run_training
from cbs.train.batches import Batches
from cbs.train.distributed import Ranks

TOKENS = np.arange(5000, dtype=np.uint16) % 251


def batches(rank: int = 0, world: int = 1) -> Batches:
    return Batches(
        WindowSampler(len(TOKENS), 16, seed=3), TOKENS, 16, 4, Ranks(rank, world), torch.device("cpu")
    )


def test_batches_follow_the_sampler_and_resume_at_the_batch_ahead():
    plain = WindowSampler(len(TOKENS), 16, seed=3)
    expected = [gather_windows(TOKENS, plain.next_starts(4), 16) for _ in range(6)]
    ahead = batches()
    got = [ahead.next().numpy() for _ in range(3)]
    assert ahead.state_dict() == {"position": 12}  # the 4th batch is drawn already, but not counted
    resumed = batches()
    resumed.load_state_dict(ahead.state_dict())
    got += [resumed.next(ahead=i < 2).numpy() for i in range(3)]
    assert resumed.state_dict() == {"position": 24}  # nothing ahead after the last
    np.testing.assert_array_equal(np.stack(got), np.stack(expected))
    halves = [batches(rank, 2).next().numpy() for rank in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves), expected[0])  # a rank's slice of the global batch


@pytest.mark.usefixtures("one_thread")
def test_prefetching_leaves_the_curve_unchanged(corpus, tmp_path, monkeypatch):
    ahead = ResultsStore(tmp_path / "ahead")
    run_training(config(corpus), store=ahead)
    plain_next = Batches.next
    monkeypatch.setattr(Batches, "next", lambda self, ahead=True: plain_next(self, ahead=False))
    plain = ResultsStore(tmp_path / "plain")
    run_training(config(corpus), store=plain)
    pd.testing.assert_frame_equal(curve(ahead), curve(plain))
