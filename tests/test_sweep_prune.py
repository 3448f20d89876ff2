"""Exact pruning and the batch-range rule (cbs.sweep.prune): the rule replayed on synthetic curves gives the
same steps-to-target table as stop-at-target alone, the driver's stopper publishes the right decisions, a
stopped run is stored as such, and the summary reports what was saved."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cbs.errors import ResultsError, RunStopped
from cbs.fit import fit_cbs_table, steps_to_target_table
from cbs.sweep.prune import Arm, Board, Bound, Guard, prune_reason
from cbs.sweep.replay import UNCHANGED, replay
from cbs.sweep.stopper import PruneStopper
from cbs.sweep.summary import render, summarize

SEQ = 64


def synthetic_store(
    seed: int, target: float = 2.5, batches=(1, 2, 4, 8, 16, 32, 64, 128), lrs=(1e-3, 3e-3, 1e-2)
):
    """A stop-at-target sweep of one cell as `cbs sweep --no-prune` stores it: B = 1 reference runs to D,
    the other batch sizes stop at ``target`` or at their cap (the same tokens for every B: E(B) rises as
    McCandlish's 1 + B/B_noise); noisy, irregularly evaluated loss curves."""
    rng = np.random.default_rng(seed)
    runs, curves = [], []
    for b in batches:
        cap = 1600 // b
        for lr in lrs:
            run_id = f"r{b}-{lr:g}"
            ref = b == 1
            quality = rng.uniform(0.5, 1.5)  # how good this lr is at this batch size
            steps = np.unique(np.concatenate([[1], rng.integers(2, cap, size=rng.integers(4, 25)), [cap]]))
            loss = (
                2.0 + 3.0 / (1.0 + quality * steps * b / (1 + b / 8) / 50) + rng.normal(0, 0.03, steps.size)
            )
            status = "completed"
            if not ref:
                hit = np.flatnonzero(loss <= target)
                if hit.size:
                    steps, loss, status = steps[: hit[0] + 1], loss[: hit[0] + 1], "reached_target"
            runs.append(
                {
                    "run_id": run_id,
                    "experiment": "syn",
                    "preset": "tiny",
                    "n_params": 1000,
                    "dataset": "d",
                    "data_tokens": 400 * SEQ,  # the cap is 4·D tokens
                    "token_budget": cap * b * SEQ,
                    "seed": 0,
                    "batch_size": b,
                    "batch_tokens": b * SEQ,
                    "lr": lr,
                    "beta2": 0.95,
                    "ewa_tau": 0.9,
                    "eval_sets": ["val"],
                    "reference_batch_size": 1,
                    "target_loss": None if ref else target,
                    "status": status,
                    "steps": int(steps[-1]),
                    "tokens": int(steps[-1]) * b * SEQ,
                    "best_ewa_eval_loss": float(loss.min()),
                    "stop_reason": None,
                    "flops_per_token": 6000.0,
                }
            )
            curves += [
                {
                    "run_id": run_id,
                    "step": int(s),
                    "eval_set": "val",
                    "eval_loss": x + 0.1,
                    "ewa_eval_loss": x,
                }
                for s, x in zip(steps, loss, strict=True)
            ]
    return pd.DataFrame(runs), pd.DataFrame(curves)


@pytest.mark.parametrize("seed", range(40))
def test_pruned_replay_gives_the_same_steps_table(seed):
    runs, curves = synthetic_store(seed)
    base = steps_to_target_table(runs, curves)
    for level in ("prune", "batch_range"):
        r = replay(runs, curves, level)
        assert r.tokens <= replay(runs, curves, "target").tokens
        pd.testing.assert_frame_equal(steps_to_target_table(r.runs, r.curves)[UNCHANGED], base[UNCHANGED])


def test_replay_prunes_and_skips_on_a_sample_grid():
    """The equality above is not vacuous: the rules do stop arms and skip batch sizes on these curves."""
    statuses = pd.concat(
        [replay(*synthetic_store(seed), "batch_range").runs.status for seed in range(40)]
    ).value_counts()
    assert statuses["pruned"] > 20 and statuses["skipped_past_cbs"] > 5


def test_pruned_replay_gives_the_same_cbs_fit():
    runs, curves = synthetic_store(3)
    base = fit_cbs_table(steps_to_target_table(runs, curves), n_boot=50).to_frame()
    r = replay(runs, curves, "batch_range")
    pd.testing.assert_frame_equal(
        fit_cbs_table(steps_to_target_table(r.runs, r.curves), n_boot=50).to_frame(), base
    )


def test_an_arm_crossing_just_after_the_bound_is_pruned_and_could_not_win():
    """Arm x crosses at 10 (evaluated at 10); arm y is at 2.51 > 2.5 at step 10 and would cross (interpolated)
    at 10.02: pruning y at step 10 is exact, and not pruning at a step before the bound is needed."""
    bound = Bound(10.0, "x")
    assert prune_reason(10, 2.51, 2.5, bound) is not None
    assert prune_reason(9, 2.51, 2.5, bound) is None  # before s*: it may still win
    assert prune_reason(12, 2.5, 2.5, bound) is None  # at the target: reached, not pruned
    assert prune_reason(12, 2.6, 2.5, None) is None  # nobody reached yet


def test_replay_refuses_a_store_already_pruned():
    runs, curves = synthetic_store(0)
    runs.loc[0, "status"] = "pruned"
    with pytest.raises(ResultsError, match="--no-prune"):
        replay(runs, curves, "prune")


def test_stopper_publishes_the_interpolated_bound_and_the_guard_stops_the_loser(tmp_path):
    board = Board(tmp_path / ".prune")
    board.reset()
    arms = {r: Arm(r, "c", 8, 2.5) for r in ("x", "y")}
    stopper = PruneStopper(board, arms)
    guard = Guard(board, arms["y"])
    for step, loss in ((10, 3.0), (20, 2.9)):
        assert stopper("t-y", {"run_id": "y", "step": step, "ewa_eval_loss": loss}) is False
        guard.check({"step": step, "ewa_eval_loss": loss, "done": False})  # no bound yet: goes on
    stopper("t-x", {"run_id": "x", "step": 10, "ewa_eval_loss": 2.7})
    stopper("t-x", {"run_id": "x", "step": 20, "ewa_eval_loss": 2.3})  # crosses at 10 + 10·0.2/0.4 = 15
    assert board.bound(arms["x"].group) == Bound(15.0, "x")
    with pytest.raises(RunStopped, match="at or after step 15") as stop:
        guard.check({"step": 30, "ewa_eval_loss": 2.8, "done": False})
    assert stop.value.status == "pruned"
    guard.check({"step": 30, "ewa_eval_loss": 2.4, "done": True})  # its own last evaluation: left alone


def test_stopper_marks_the_cell_past_its_cbs_only_when_every_arm_missed(tmp_path):
    board = Board(tmp_path / ".prune")
    board.reset()
    arms = {f"{b}-{lr}": Arm(f"{b}-{lr}", "c", b, 2.5) for b in (4, 8, 16) for lr in (1, 2)}
    stopper = PruneStopper(board, arms)
    stopper("t", {"run_id": "8-1", "status": "completed"})
    assert board.failed_batch("c") is None  # its other arm is still running
    stopper("t", {"run_id": "8-2", "status": "diverged"})
    assert board.failed_batch("c") == 8
    with pytest.raises(RunStopped, match="batch size 8") as stop:
        Guard(board, arms["16-1"]).start()
    assert stop.value.status == "skipped_past_cbs"
    Guard(board, arms["4-1"]).start()  # smaller batch sizes still run
    stopper("t", {"run_id": "4-1", "status": "diverged"})
    stopper("t", {"run_id": "4-2", "status": "diverged"})
    assert board.failed_batch("c") == 8  # every arm diverged: no evidence about E(B)


def test_stopper_seeds_from_the_store(tmp_path):
    runs, curves = synthetic_store(1)
    targeted = runs[runs.target_loss.notna()]
    arms = {r.run_id: Arm(r.run_id, "c", r.batch_size, r.target_loss) for r in targeted.itertuples()}
    board = Board(tmp_path / ".prune")
    board.reset()
    PruneStopper(board, arms).seed(targeted, curves)
    table = steps_to_target_table(runs, curves).set_index("batch_size")
    for b in targeted.batch_size.unique():
        bound = board.bound(f"c-B{b}-s0")
        expected = table.loc[b, "steps_to_target"]
        assert (bound is None and np.isnan(expected)) or (
            bound.steps == expected and bound.run_id == table.loc[b, "run_id"]
        )


def test_summary_reports_tokens_saved_by_pruning(capsys):
    from rich.console import Console

    runs, curves = synthetic_store(2)
    r = replay(runs, curves, "batch_range")
    s = summarize(r.runs)
    cut = r.runs[r.runs.status.isin(["pruned", "skipped_past_cbs"])]
    assert s.tokens_pruned == int((cut.token_budget - cut.tokens).sum()) > 0
    assert s.to_cap_tokens == replay(runs, curves, "cap").tokens
    assert s.flops_trained == pytest.approx(6 * 1000 * r.tokens)
    render(s, Console(width=200))
    out = capsys.readouterr().out
    assert f"saved by pruning: {s.tokens_pruned:,} tokens" in out
    assert f"{r.tokens / s.to_cap_tokens:.2f}× the tokens and " in out


def test_a_run_stopped_by_its_guard_is_stored_with_its_curve_and_reason(corpus, tmp_path, one_thread):
    from test_train_run import config, train_into

    from cbs.results import ResultsStore

    def prune_after_step_4(metrics, write_checkpoint):
        if metrics["step"] >= 4:
            raise RunStopped("pruned", "pruned at step 4: test")

    store = ResultsStore(tmp_path)
    row = train_into(store, config(corpus), on_eval=prune_after_step_4)
    stored = store.runs().iloc[0]
    assert (stored.status, stored.stop_reason) == ("pruned", "pruned at step 4: test") and pd.isna(
        stored.error
    )
    assert row["steps"] == stored.steps == store.curves().step.max() >= 4


def test_no_prune_flag_reaches_the_sweep(tmp_path, monkeypatch):
    import yaml
    from test_sweep_spec import make_dataset, spec_dict

    import cbs.sweep
    from cbs.cli import main
    from cbs.sweep import SweepOutcome

    spec = tmp_path / "t.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(make_dataset(tmp_path), target={"reference_batch_size": 4})))
    seen = []
    monkeypatch.setattr(cbs.sweep, "run_sweep", lambda *a, prune, **k: seen.append(prune) or SweepOutcome())
    for extra in ([], ["--no-prune"]):
        main(["sweep", str(spec), "--results", str(tmp_path / "r"), *extra])
    assert seen == [True, False]
