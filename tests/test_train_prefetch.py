"""Training batches prepared one step ahead: the sampler's order (batch sizes may change from step to step),
an exact resume position, the same curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_train_run import config, curve, train_into

from cbs.data import WindowSampler, gather_windows
from cbs.results import ResultsStore
from cbs.train.distributed import Ranks
from cbs.train.prefetch import Prefetcher

TOKENS = np.arange(5000, dtype=np.uint16) % 251
SIZES = [2, 2, 4, 4, 8, 8]  # a batch ramp


def prefetcher(rank: int = 0, world: int = 1) -> Prefetcher:
    sampler = WindowSampler(len(TOKENS), 16, seed=3)
    return Prefetcher(sampler, TOKENS, 16, Ranks(rank, world), torch.device("cpu"))


def test_prefetcher_follows_the_sampler_and_resumes_at_the_batch_ahead():
    plain = WindowSampler(len(TOKENS), 16, seed=3)
    expected = [gather_windows(TOKENS, plain.next_starts(n), 16) for n in SIZES]
    ahead = prefetcher()
    got = [ahead.next(SIZES[i], ahead=SIZES[i + 1]).numpy() for i in range(3)]
    assert ahead.state_dict() == {"position": 8}  # the 4th batch is drawn already, but not counted
    with pytest.raises(ValueError, match="4 sequences was prepared ahead, not 8"):
        ahead.next(8)
    resumed = prefetcher()
    resumed.load_state_dict(ahead.state_dict())
    got += [resumed.next(SIZES[i], ahead=SIZES[i + 1] if i < 5 else 0).numpy() for i in range(3, 6)]
    assert resumed.state_dict() == {"position": 28}  # nothing ahead after the last
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    halves = [prefetcher(rank, 2).next(2).numpy() for rank in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves), expected[0])  # a rank's slice of the global batch


@pytest.mark.usefixtures("one_thread")
def test_prefetching_leaves_the_curve_unchanged(corpus, tmp_path, monkeypatch):
    ahead = ResultsStore(tmp_path / "ahead")
    train_into(ahead, config(corpus))
    plain_next = Prefetcher.next
    monkeypatch.setattr(Prefetcher, "next", lambda self, size, ahead=0: plain_next(self, size, ahead=0))
    plain = ResultsStore(tmp_path / "plain")
    train_into(plain, config(corpus))
    pd.testing.assert_frame_equal(curve(ahead), curve(plain))
