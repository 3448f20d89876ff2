"""The branched-training CBS estimator (Merrill et al. 2025) on synthetic losses with a known k*."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cbs.errors import FitError
from cbs.fit.branched import branched_cbs, branched_table, ema


def test_k_star_is_the_largest_k_within_epsilon_of_every_smaller_k():
    # flat up to k = 4, then the loss rises by more than ε: k* = 4, B* = 4·B in [4·B, 8·B]
    est = branched_cbs({1: 3.000, 2: 3.004, 4: 3.009, 8: 3.030, 16: 3.100}, batch_size=64, epsilon=0.01)
    assert est.k_star == 4
    assert est.cbs == 256 and est.cbs_ci == (256, 512)


def test_within_epsilon_of_every_smaller_k_not_only_the_baseline():
    # k = 4 is within ε of k = 1 but 0.012 above k = 2 (which improved): it fails, k = 8 passes every check
    est = branched_cbs({1: 3.000, 2: 2.990, 4: 3.002, 8: 2.995}, batch_size=8, epsilon=0.01)
    assert est.k_star == 8
    assert est.cbs_ci == (64, math.inf)  # the largest k tried: no upper end


def test_every_branch_worse_than_epsilon_gives_the_parent_batch():
    est = branched_cbs({1: 3.0, 2: 3.05, 4: 3.2}, batch_size=32)
    assert est.k_star == 1 and est.cbs_ci == (32, 64)


def test_a_diverged_branch_fails_and_does_not_block_larger_k():
    est = branched_cbs({1: 3.0, 2: math.nan, 4: 3.005}, batch_size=16)
    assert est.k_star == 4


def test_missing_baseline_or_bad_epsilon_is_a_fit_error():
    with pytest.raises(FitError, match="k = 1 baseline"):
        branched_cbs({2: 3.0, 4: 3.0}, batch_size=8)
    with pytest.raises(FitError, match="epsilon"):
        branched_cbs({1: 3.0, 2: 3.0}, batch_size=8, epsilon=0)


def test_ema_matches_its_recursion():
    x = np.array([4.0, 2.0, 3.0])
    assert np.allclose(ema(x, 0.5), [4.0, 3.0, 3.0])
    assert np.allclose(ema(x, 0.0), x)
    with pytest.raises(FitError, match="EMA"):
        ema(x, 1.0)


def _branch_tables(curves: dict[int, list[float]], ewa_only_between: bool = False) -> tuple:
    """Runs and curves of one parent's branches (B = 4) at 0.5 with these raw eval losses per k; with
    ``ewa_only_between`` an evaluation that scored only the EWA weights (raw loss NaN) sits after each."""
    parent, b = "p" * 16, 4
    runs, points = [], []
    for k, losses in curves.items():
        rid = f"b{k}"
        runs.append(
            {
                "run_id": rid,
                "parent_run_id": parent,
                "branch_fraction": 0.5,
                "branch_step": 10,
                "branch_k": k,
                "batch_size": k * b,
                "status": "completed",
                "tokens": 1000,
                "wall_time_s": 2.5,
                "flops_per_token": 6.0,
                "eval_sets": ["val"],
            }
        )
        for s, x in enumerate(losses, start=1):
            points.append({"run_id": rid, "eval_set": "val", "step": 10 * s, "eval_loss": x})
            if ewa_only_between and s < len(losses):
                points.append({"run_id": rid, "eval_set": "val", "step": 10 * s + 5, "eval_loss": math.nan})
    return pd.DataFrame(runs), pd.DataFrame(points)


NOISY = {1: [3.3, 3.10, 3.00], 2: [3.3, 3.10, 3.005], 4: [3.3, 3.40, 2.90]}


def test_branched_table_smooths_each_branch_and_costs_its_tokens():
    """Noisy branch curves whose EMA-smoothed final loss has k* = 2: the last raw point of k = 4 is low by
    chance, its smoothed value is not."""
    table = branched_table(*_branch_tables(NOISY), epsilon=0.01, alpha=0.5)
    (row,) = table.itertuples()
    assert row.k_star == 2 and row.cbs == 8 and (row.cbs_lo, row.cbs_hi) == (8, 16)
    assert row.losses[4] == pytest.approx(0.25 * 3.3 + 0.25 * 3.4 + 0.5 * 2.9)  # smoothed, not the raw 2.9
    assert row.tokens == 3000 and row.flops == 18000 and row.wall_time_s == 7.5 and row.note == ""


def test_evaluations_without_a_raw_loss_are_left_out_of_the_smoothing():
    # the trainer scores the raw weights only every eval.raw_every-th evaluation: the others are NaN rows
    plain = branched_table(*_branch_tables(NOISY), epsilon=0.01, alpha=0.5).iloc[0]
    gaps = branched_table(*_branch_tables(NOISY, ewa_only_between=True), epsilon=0.01, alpha=0.5).iloc[0]
    assert gaps["losses"] == plain["losses"] and gaps["k_star"] == plain["k_star"] == 2


def test_a_baseline_without_a_finite_loss_is_a_fit_error_not_k_star_1():
    with pytest.raises(FitError, match="no finite smoothed loss"):
        branched_cbs({1: math.nan, 2: 3.0, 4: 3.0}, batch_size=8)
