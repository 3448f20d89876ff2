"""No phase barrier: one Tune experiment in which a cell's target runs start as soon as that cell's reference
runs are done, while another cell's reference runs still train; and the searcher's hand-out order."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from test_sweep_spec import make_dataset, spec_dict

from cbs.results import ResultsStore
from cbs.sweep import parse_spec, plan_sweep, run_sweep
from cbs.sweep.progress import SweepProgress
from cbs.sweep.searcher import PhaseSearcher
from cbs.sweep.stopper import new_stopper


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def two_cell_spec(dataset: Path) -> dict:
    """Cell 8k (short reference run) and cell 128k (a reference run 16x as long), b_opt = 4, B = 2, 4, 8."""
    spec = spec_dict(dataset, target={"reference_batch_size": 4, "budget_multiple": 2})
    spec["grid"] = {"batch_size": [2, 4, 8], "token_budget": [8192, 131072]}
    spec["base"]["optim"] = {"lr": 1e-2}
    return spec


def test_searcher_hands_out_references_then_a_cells_targets_once_they_ended(dataset, tmp_path):
    plan = plan_sweep(parse_spec(two_cell_spec(dataset)))
    store = ResultsStore(tmp_path / "results")
    progress = SweepProgress({}, {}, console=Console(quiet=True))
    searcher = PhaseSearcher(plan, store, lambda t: {"run_id": t.run_id}, progress, new_stopper(store.root))
    refs = [searcher.suggest(f"t{i}")["params"]["run_id"] for i in range(2)]
    assert refs == [t.run_id for t in plan.budget]
    assert searcher.suggest("t2") is None  # the targets wait for their cell's reference run
    assert len(progress.labels) == len(plan.trials)  # the waiting ones are counted as pending
    searcher.on_trial_complete("t0", error=True)  # a reference run that failed for good: no target
    assert searcher.suggest("t3") is None and "t0" not in searcher.live
    assert len(progress.labels) == len(plan.trials) - 2  # the failed cell's target runs will not run
    searcher.on_trial_complete("t1", error=True)
    assert searcher.suggest("t4") == searcher.FINISHED


@pytest.mark.slow
def test_a_cells_target_runs_start_before_another_cells_reference_run_ends(dataset, tmp_path):
    plan = plan_sweep(parse_spec(two_cell_spec(dataset)))
    short, long = sorted(plan.reference_ids().items(), key=lambda kv: plan.data_tokens[kv[0]])
    outcome = run_sweep(plan, tmp_path / "results", num_cpus=2, console=Console(quiet=True))
    assert not outcome.missing and not outcome.failed and len(outcome.ran) == len(plan.trials)
    runs = ResultsStore(tmp_path / "results").runs().set_index("run_id")
    long_ref_end = runs.loc[long[1], "finished_at"].max()
    short_targets = runs[(runs.data_tokens == plan.data_tokens[short[0]]) & runs.target_loss.notna()]
    assert len(short_targets) == 2 and short_targets.status.isin(["reached_target", "completed"]).all()
    assert short_targets.started_at.min() < long_ref_end  # no barrier between the phases
