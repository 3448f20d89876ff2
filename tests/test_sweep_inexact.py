"""The opt-in inexact rules (cbs.sweep.inexact): successive halving and the lower cap, one rule for the driver's
stopper and the replay; their spec/CLI checks fail before Ray starts; the summary labels what they saved."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from test_sweep_prune import synthetic_store
from test_sweep_spec import dataset  # noqa: F401 (a fixture)

from cbs.errors import ConfigError, RunStopped
from cbs.sweep.inexact import HALVING, LOWER_CAP, Halving, LowerCap, PruneOptions, Ranked, halve, rule_of
from cbs.sweep.prune import Arm, Board, Guard, curve_losses
from cbs.sweep.replay import replay
from cbs.sweep.stopper import PruneStopper
from cbs.sweep.summary import render, summarize


def test_halve_decides_a_rung_only_once_every_running_arm_is_past_it():
    rule = Halving(eta=2, rungs=2)  # cap 40: rungs at 10 and 20
    curves = {
        "a": [(5, 3.0), (10, 2.0)],
        "b": [(5, 3.1), (12, 2.5)],
        "c": [(5, 3.2)],
        "d": [(5, 2.9), (11, 2.4)],
    }
    assert halve(rule, 40, curves, ended=set()) == {}  # c is still running and has not reached step 10
    out = halve(rule, 40, curves, ended={"c"})  # c ended before the rung: not ranked there
    assert out == {"b": Ranked(12, 2.5, 3, 3, 10.0)}  # keep ceil(3/2) = 2 of a, d, b
    curves = {**curves, "a": [*curves["a"], (20, 1.9)], "d": [*curves["d"], (22, 1.8)]}
    out = halve(rule, 40, curves, ended={"c"})  # b, ranked out at 10, is not ranked again at 20
    assert set(out) == {"b", "a"} and out["a"].rung == 20.0 and (out["a"].rank, out["a"].of) == (2, 2)


def test_halve_ranks_a_nan_loss_last():
    out = halve(Halving(eta=2, rungs=1), 20, {"a": [(10, math.nan)], "b": [(10, 9.0)]}, ended=set())
    assert set(out) == {"a"}


def test_stopper_publishes_what_the_rule_decides_on_the_full_curves(tmp_path):
    """Driven by interleaved reports (every arm's evaluations in step order, its last report after its last
    evaluation), the stopper publishes exactly the rule's decisions on the complete curves, less the arms that
    had ended by the time their rung was decided; and the guard stops each published arm as `halving`."""
    rule = Halving(eta=3, rungs=2)
    published = 0
    for seed in range(6):
        runs, curves = synthetic_store(seed)
        targeted = runs[runs.target_loss.notna()]
        arms = {
            r.run_id: Arm(
                r.run_id, "c", r.batch_size, r.target_loss, cap_steps=r.token_budget / r.batch_tokens
            )
            for r in targeted.itertuples()
        }
        board = Board(tmp_path / f"s{seed}")
        board.reset()
        stopper = PruneStopper(board, arms, PruneOptions(halving=rule))
        status = dict(zip(targeted.run_id, targeted.status, strict=True))
        full = {
            r: list(zip(c.step.astype(int), curve_losses(c), strict=True))
            for r, c in curves[curves.run_id.isin(arms)].groupby("run_id")
        }
        events = sorted(
            [(s, 0, r, x) for r, c in full.items() for s, x in c]
            + [(c[-1][0], 1, r, None) for r, c in full.items()]
        )
        for step, last, run_id, loss in events:
            report = (
                {"run_id": run_id, "status": status[run_id]}
                if last
                else {"run_id": run_id, "step": step, "ewa_eval_loss": loss}
            )
            stopper("t", report)
        for b, group in targeted.groupby("batch_size"):
            ids = list(group.run_id)
            expected = halve(rule, arms[ids[0]].cap_steps, {r: full[r] for r in ids}, set(ids))
            got = {r: Ranked(**board.halved(r)) for r in ids if board.halved(r)}
            assert got.items() <= expected.items()
            published += len(got)
            if b > (board.failed_batch("c") or b):
                continue  # past the CBS: its guard stops it as such first
            for r, ranked in got.items():  # at a step before any bound: not dominated, ranked out
                with pytest.raises(
                    RunStopped, match=f"^{HALVING}: stopped at step 1, ranked {ranked.rank} "
                ) as stop:
                    Guard(board, arms[r]).check({"step": 1, "ewa_eval_loss": 9.0, "done": False})
                assert stop.value.status == "pruned" and rule_of(stop.value.reason) == HALVING
    assert published > 5  # the comparison above is not vacuous


def test_lower_cap_is_published_after_a_slow_batch_size_and_counts_as_its_cap(tmp_path):
    board = Board(tmp_path / ".prune")
    board.reset()
    d = 1000
    arms = {
        f"{b}-{lr}": Arm(
            f"{b}-{lr}", "c", b, 2.5, cap_steps=4 * d / (b * 64), batch_tokens=b * 64, data_tokens=d
        )
        for b in (4, 8, 16)
        for lr in (1, 2)
    }
    stopper = PruneStopper(board, arms, PruneOptions(lower_cap=LowerCap(m=2.0, cap=2.5)))
    stopper("t", {"run_id": "4-1", "step": 8, "ewa_eval_loss": 2.7})
    stopper(
        "t", {"run_id": "4-1", "step": 12, "ewa_eval_loss": 2.3}
    )  # crosses at step 10: 2560 tokens = 2.56·D
    stopper("t", {"run_id": "4-1", "status": "reached_target"})
    assert board.lower_cap("c-B8-s0") is None  # 4-2 still runs and may need fewer tokens
    stopper("t", {"run_id": "4-2", "status": "completed"})
    cap = board.lower_cap("c-B8-s0")
    assert cap["steps"] == pytest.approx(2.5 * d / (8 * 64)) and cap["needed_tokens"] == pytest.approx(2560)
    guard = Guard(board, arms["8-1"])
    guard.check({"step": 4, "ewa_eval_loss": 2.9, "done": False})  # below its lowered cap: goes on
    guard.check({"step": 5, "ewa_eval_loss": 2.4, "done": False})  # reached: never stopped by the cap
    with pytest.raises(RunStopped, match=f"^{LOWER_CAP}: stopped at step 5") as stop:
        guard.check({"step": 5, "ewa_eval_loss": 2.9, "done": False})
    for r in ("8-1", "8-2"):
        stopper("t", {"run_id": r, "status": "pruned", "stop_reason": stop.value.reason})
    assert board.failed_batch("c") == 8  # both arms ended at their (lowered) cap: B = 16 is past the CBS


def test_lower_cap_not_published_under_m_times_d(tmp_path):
    board = Board(tmp_path / ".prune")
    board.reset()
    arms = {
        f"{b}": Arm(f"{b}", "c", b, 2.5, cap_steps=100, batch_tokens=b * 64, data_tokens=1000) for b in (4, 8)
    }
    stopper = PruneStopper(board, arms, PruneOptions(lower_cap=LowerCap(m=3.0, cap=3.5)))
    stopper("t", {"run_id": "4", "step": 10, "ewa_eval_loss": 2.4})  # 2560 tokens = 2.56·D < 3·D
    stopper("t", {"run_id": "4", "status": "reached_target"})
    assert board.lower_cap("c-B8-s0") is None


def test_replayed_halving_and_lower_cap_say_so_and_save_more():
    runs, curves = synthetic_store(5)
    exact = replay(runs, curves, "batch_range")
    for options, rule in (
        (PruneOptions(halving=Halving()), HALVING),
        (PruneOptions(lower_cap=LowerCap(1.0, 1.5)), LOWER_CAP),
    ):
        r = replay(runs, curves, "batch_range", options)
        cut = r.runs[r.runs.stop_reason.map(rule_of) == rule]
        assert len(cut) and (cut.status == "pruned").all() and cut.stop_reason.str.endswith("(inexact)").all()
        assert r.tokens < exact.tokens
        kept = r.curves.groupby("run_id").step.max()
        assert (kept[cut.run_id].to_numpy() == cut.steps.to_numpy()).all()  # the curve ends where it stopped
    with pytest.raises(ValueError, match="batch_range"):
        replay(runs, curves, "prune", PruneOptions(halving=Halving()))


def test_replayed_lower_cap_stops_each_arm_at_its_first_evaluation_past_the_lowered_cap():
    runs, curves = synthetic_store(7)
    rule = LowerCap(1.0, 1.5)
    r = replay(runs, curves, "batch_range", PruneOptions(lower_cap=rule))
    cut = r.runs[r.runs.stop_reason.map(rule_of) == LOWER_CAP]
    assert len(cut)
    for row in cut.itertuples():
        low = rule.cap * row.data_tokens / row.batch_tokens
        steps = curves[curves.run_id == row.run_id].step
        assert row.steps == steps[steps >= low].min()


@pytest.mark.parametrize(
    ("prune", "match"),
    [
        ({"halving": {"eta": 1}}, "eta must be >= 2"),
        ({"halving": {"rungs": 0}}, "rungs must be >= 1"),
        ({"lower_cap": {"m": 2, "cap": 1}}, "0 < m <= cap < target.budget_multiple"),
        ({"lower_cap": {"m": 1, "cap": 4}}, "0 < m <= cap < target.budget_multiple"),
        ({"halving": {"eta": 3, "min_fraction": 0.1}}, "unknown key"),
    ],
)
def test_bad_prune_options_are_refused(dataset, prune, match):  # noqa: F811
    from test_sweep_spec import spec_dict

    from cbs.sweep import parse_spec

    with pytest.raises(ConfigError, match=match):
        parse_spec(spec_dict(dataset, target={"reference_batch_size": 2}, prune=prune))


def test_halving_flag_errors_before_ray(tmp_path, monkeypatch, capsys):
    import yaml
    from test_sweep_spec import make_dataset, spec_dict

    import cbs.sweep
    from cbs.cli import main
    from cbs.sweep import SweepOutcome

    data = make_dataset(tmp_path)
    called = []
    monkeypatch.setattr(cbs.sweep, "run_sweep", lambda *a, **k: called.append(k) or SweepOutcome())
    plain, targeted = tmp_path / "plain.yaml", tmp_path / "target.yaml"
    plain.write_text(yaml.safe_dump(spec_dict(data)))
    targeted.write_text(yaml.safe_dump(spec_dict(data, target={"reference_batch_size": 4})))
    assert main(["sweep", str(plain), "--halving", "--results", str(tmp_path / "r")]) == 2
    assert "add a `target:` section" in capsys.readouterr().err
    assert main(["sweep", str(targeted), "--halving", "--no-prune", "--results", str(tmp_path / "r")]) == 2
    assert not called  # refused before the sweep (and Ray) started
    main(["sweep", str(targeted), "--halving", "--results", str(tmp_path / "r")])
    assert "inexact:" in capsys.readouterr().out and len(called) == 1


def test_summary_labels_the_tokens_saved_by_inexact_rules(capsys):
    from rich.console import Console

    runs, curves = synthetic_store(5)
    r = replay(runs, curves, "batch_range", PruneOptions(halving=Halving()))
    s = summarize(r.runs)
    halved = r.runs[r.runs.stop_reason.map(rule_of) == HALVING]
    assert s.inexact_runs == len(halved) > 0
    assert s.tokens_inexact == int((halved.token_budget - halved.tokens).sum()) <= s.tokens_pruned
    assert s.to_cap_flops == pytest.approx(6 * 1000 * replay(runs, curves, "cap").tokens)
    render(s, Console(width=300, soft_wrap=True))
    out = capsys.readouterr().out
    assert f"{s.tokens_inexact:,} tokens of them by inexact rules" in out
    assert f"{s.flops_trained / s.to_cap_flops:.2f}× the FLOPs of every arm to its cap" in out
    assert "may differ from the unpruned protocol" in out
    exact = summarize(replay(runs, curves, "batch_range").runs)
    assert exact.inexact_runs == 0 and exact.tokens_inexact == 0
    assert isinstance(exact.to_cap_flops, float) and not pd.isna(exact.to_cap_flops)
