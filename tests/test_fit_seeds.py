"""Seeds as replicates: each seed's steps-to-target per batch size is a point of its cell's S(B) fit; the group
says how many seeds it has; a batch size is unreached only where no seed reached it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_fit_steps_to_target import _run

from cbs.fit import fit_cbs_table, steps_to_target_table
from cbs.fit.cbs_laws import CbsGroup
from cbs.results import ResultsStore

BATCHES = [4, 8, 16, 32, 64, 128]


def _table(seeds: int, noise: float, rng: np.random.Generator) -> pd.DataFrame:
    a, b = 100.0, 2000.0  # B_noise = 20
    rows = [
        {"model": "m", "n_params": 1e6, "data_tokens": 1e8, "b_opt": 4.0, "batch_size": float(bs), "seed": s,
         "steps_to_target": (a + b / bs) * np.exp(rng.normal(0, noise))}
        for s in range(seeds) for bs in BATCHES
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_seeds_are_points_of_one_fit_that_recovers_the_hyperbola():
    rng = np.random.default_rng(0)
    g = fit_cbs_table(_table(3, 0.05, rng), n_boot=300).groups[0]
    assert g.n_seeds == 3 and g.fit.n_points == 3 * len(BATCHES)
    assert g.fit.a == pytest.approx(100.0, rel=0.15) and g.fit.b == pytest.approx(2000.0, rel=0.15)
    assert g.fit.b_noise == pytest.approx(20.0, rel=0.2)  # 5% noise per point, 18 points
    assert "3 seeds" in g.report()
    assert CbsGroup.from_dict(g.to_dict()).n_seeds == 3


def test_more_seeds_narrow_the_interval():
    """Over 20 noise draws, the B* interval from 4 seeds is narrower than from 1 seed in most of them."""
    narrower = []
    for i in range(20):
        rng = np.random.default_rng(100 + i)
        table = _table(4, 0.08, rng)
        one = fit_cbs_table(table[table.seed == 0], n_boot=200).groups[0].fit.cbs_ci
        four = fit_cbs_table(table, n_boot=200).groups[0].fit.cbs_ci
        narrower.append(four[1] - four[0] < one[1] - one[0])
    assert np.mean(narrower) >= 0.8


def test_a_batch_size_is_unreached_only_where_no_seed_reached_it():
    table = _table(2, 0.0, np.random.default_rng(0))
    table.loc[(table.seed == 1) & (table.batch_size == 128), "steps_to_target"] = np.nan
    table.loc[table.batch_size == 4, "steps_to_target"] = np.where(
        table.loc[table.batch_size == 4, "seed"] == 0, 600.0, np.nan
    )
    g = fit_cbs_table(table, n_boot=0).groups[0]
    assert g.unreached_batch_sizes == [] and g.fit.n_points == 2 * len(BATCHES) - 2


def test_steps_table_has_a_row_per_batch_size_and_seed(tmp_path):
    st = ResultsStore(tmp_path / "results")
    for seed, speed in ((0, 1.0), (1, 1.25)):
        for batch in (256, 512):
            steps = [0, 100 * speed, 200 * speed] if batch == 256 else [0, 50 * speed, 100 * speed]
            _run(st, f"b{batch}s{seed}", batch, 1e-3, steps, [4.0, 3.0, 2.0], seed=seed)
    table = steps_to_target_table(*st.tables(), b_opt=256).set_index(["batch_size", "seed"])
    assert table.loc[(256, 0), "steps_to_target"] == 200.0 and table.loc[(256, 1), "steps_to_target"] == 250.0
    assert table.loc[(512, 1), "steps_to_target"] == 125.0  # each seed its own crossing, one shared target
