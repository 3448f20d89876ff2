"""Raw-weight evaluation cadence: the EWA curve, the stop rules and steps-to-target are those of evaluating
the raw weights every time; raw losses are there at every raw_every-th evaluation and at the last; the time
spent evaluating is recorded; fits read the EWA loss, so masking raw losses in a stored store changes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_train_run import config, curve

from cbs.fit import steps_to_target_table
from cbs.results import ResultsStore
from cbs.train import run_training

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("stop_at_target", [False, True])
def test_raw_every_keeps_the_ewa_curve_and_the_result(corpus, tmp_path, stop_at_target):
    over = {"target_loss": 4.6, "stop_at_target": stop_at_target}
    every = ResultsStore(tmp_path / "every")
    sparse = ResultsStore(tmp_path / "sparse")
    row_every = run_training(config(corpus, steps=20, eval__raw_every=1, **over), store=every)
    row_sparse = run_training(config(corpus, steps=20, eval__raw_every=3, **over), store=sparse)
    a, b = curve(every), curve(sparse)
    same = [c for c in a.columns if c not in ("eval_loss", "grad_norm")]
    pd.testing.assert_frame_equal(a[same], b[same])
    raw_at = b["eval_loss"].notna().to_numpy()
    n = len(b)
    expected = (np.arange(n) % 3 == 0) | (np.arange(n) == n - 1)
    assert (raw_at == expected).all()
    assert np.allclose(b["eval_loss"][raw_at], a["eval_loss"][raw_at], rtol=0, atol=0)
    for key in ("status", "steps", "steps_to_target", "final_eval_loss", "final_ewa_eval_loss"):
        assert row_sparse[key] == row_every[key], key
    assert 0 < row_sparse["eval_time_s"] < row_sparse["wall_time_s"]


def test_fits_read_the_ewa_loss_so_raw_cadence_does_not_move_steps_to_target(tmp_path):
    """Replays the committed CPU store with the raw losses of 7 of every 8 evaluations masked."""
    src = ResultsStore(REPO / "results" / "cpu-cbs")
    runs, curves = src.runs(), src.curves()
    masked = curves.copy()
    position = masked.groupby(["run_id", "eval_set"]).cumcount()
    masked.loc[position % 8 != 0, "eval_loss"] = np.nan
    before = steps_to_target_table((runs, curves))
    after = steps_to_target_table((runs, masked))
    pd.testing.assert_frame_equal(before, after)
