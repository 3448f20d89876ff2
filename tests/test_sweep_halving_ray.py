"""A real sweep with successive halving (tiny grid, local Ray with 2 CPUs): the arms it stops are rows with
status `pruned` and a `halving` reason, stopped at or after the rung evaluation where the shared rule ranks
them out on their stored curves, and `cbs fit cbs` runs on the store."""

from __future__ import annotations

import pytest
from rich.console import Console
from test_sweep_spec import make_dataset, spec_dict

from cbs.cli import main
from cbs.results import ResultsStore
from cbs.sweep import parse_spec, plan_sweep, run_sweep
from cbs.sweep.cluster import ray_session
from cbs.sweep.inexact import HALVING, halve, rule_of
from cbs.sweep.prune import curve_losses

pytestmark = pytest.mark.slow  # one sweep of 12 tiny runs on Ray


def test_halving_sweep_stops_ranked_out_arms_with_their_reason(tmp_path):
    data = make_dataset(tmp_path)
    spec = spec_dict(
        data,
        target={"reference_batch_size": 1, "budget_multiple": 3},
        prune={"halving": {}},  # eta 3, 2 rungs
    )
    spec["base"]["eval"] = {"n_log": 16, "n_dense": 2, "eval_tokens": 1024}
    # the slowest lr last in each (cell, B): whether the arms run together or one after the other (as on 2
    # CPUs today), it is still running when the rung is decided and ranks out
    spec["grid"] = {"batch_size": [1, 2, 4, 8], "optim.lr": [3e-2, 1e-2, 1e-3]}
    parsed = parse_spec(spec)
    plan = plan_sweep(parsed)
    store = ResultsStore(tmp_path / "halving")
    with ray_session(num_cpus=2):
        outcome = run_sweep(plan, store.root, console=Console(quiet=True))
    assert not outcome.missing
    runs, curves = store.tables()
    assert len(runs) == len(plan.trials)  # every grid point has its row
    halved = runs[runs.stop_reason.map(rule_of) == HALVING]
    assert len(halved), "no arm was ranked out: the test grid no longer exercises halving"
    assert (halved.status == "pruned").all() and halved.stop_reason.str.endswith("(inexact)").all()
    for row in halved.itertuples():
        group = runs[(runs.batch_size == row.batch_size) & (runs.seed == row.seed) & runs.target_loss.notna()]
        stored = {
            r: list(zip(c.step.astype(int), curve_losses(c), strict=True))
            for r, c in curves[curves.run_id.isin(group.run_id)].sort_values("step").groupby("run_id")
        }
        cap_steps = float((group.token_budget / group.batch_tokens).max())
        ranked = halve(parsed.prune.halving, cap_steps, stored, set(stored))
        assert row.run_id in ranked  # the live decision is the rule's on the stored curves
        assert ranked[row.run_id].step <= row.steps == max(s for s, _ in stored[row.run_id])
    assert main(["fit", "cbs", str(store.root), "--n-boot", "40"]) == 0
