"""The end-of-sweep summary of a resumed sweep keeps apart this invocation and the whole store (no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_sweep_spec import make_dataset, spec_dict

import cbs.sweep
from cbs.cli import main
from cbs.results import ResultsStore
from cbs.sweep import SweepOutcome, invocation_line, parse_spec, plan_sweep, summarize
from cbs.sweep.plan import Trial


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def store_run(store: ResultsStore, trial: Trial, status: str, best: float | None) -> None:
    """A stored row of ``trial`` (no curve points needed by the summary)."""
    row = {
        "run_id": trial.run_id,
        "preset": trial.config.model.preset,
        "n_params": trial.n_params,
        "data_tokens": trial.data_tokens,
        "seed": trial.config.seed,
        "batch_size": trial.config.batch_size,
        "token_budget": trial.tokens,
        "tokens": trial.tokens,
        "status": status,
        "best_ewa_eval_loss": best,
    }
    store.write_run(row, [])


def test_line_separates_this_invocation_from_the_store(dataset, tmp_path):
    plan = plan_sweep(parse_spec(spec_dict(dataset)))  # 6 runs, no target phase
    store = ResultsStore(tmp_path / "r")
    earlier = plan.trials[:4]
    for i, t in enumerate(earlier):
        store_run(store, t, "completed", 3.0 + i)
    store_run(store, plan.trials[4], "completed", 3.5)  # trained now
    store_run(store, plan.trials[5], "failed", None)  # tried now, failed
    outcome = SweepOutcome(
        ran=[plan.trials[4].run_id], skipped=[t.run_id for t in earlier], failed=[plan.trials[5].run_id]
    )
    runs = store.runs()
    line = invocation_line(outcome, summarize(runs, plan), runs)
    assert line == (
        "this invocation: 1 trained (best EWA loss 3.5000), 1 failed, 4 already done | "
        "store: 5 of 6 planned runs done, best EWA loss 3.0000"
    )


def test_nothing_to_do_says_so(dataset, tmp_path):
    plan = plan_sweep(parse_spec(spec_dict(dataset)))
    store = ResultsStore(tmp_path / "r")
    for t in plan.trials:
        store_run(store, t, "completed", 2.5)
    runs = store.runs()
    outcome = SweepOutcome(skipped=[t.run_id for t in plan.trials])
    assert invocation_line(outcome, summarize(runs, plan), runs) == (
        "this invocation: 0 trained, 6 already done | store: 6 of 6 planned runs done, best EWA loss 2.5000"
    )


def test_cli_prints_the_line_after_a_resumed_sweep(dataset, tmp_path, monkeypatch, capsys):
    """`cbs sweep` on a store that already holds 5 done runs; the (stubbed) Ray run trains the 6th."""
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(dataset)))
    results = tmp_path / "r"
    plan = plan_sweep(parse_spec(spec_dict(dataset)))
    store = ResultsStore(results)
    for i, t in enumerate(plan.trials[:5]):
        store_run(store, t, "completed", 4.0 - 0.1 * i)

    def fake_run_sweep(plan, results, **kwargs) -> SweepOutcome:
        store_run(ResultsStore(results), plan.trials[5], "completed", 3.2)
        return SweepOutcome(ran=[plan.trials[5].run_id], skipped=[t.run_id for t in plan.trials[:5]])

    monkeypatch.setattr(cbs.sweep, "run_sweep", fake_run_sweep)
    assert main(["sweep", str(spec), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "the whole store (this and earlier invocations):" in out
    assert (
        "this invocation: 1 trained (best EWA loss 3.2000), 5 already done | "
        "store: 6 of 6 planned runs done, best EWA loss 3.2000"
    ) in out
