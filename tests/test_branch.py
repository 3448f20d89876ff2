"""`cbs branch`: kept checkpoints, the branch plan and its bad input (before Ray starts), a tiny branch phase on
local Ray that trains exactly the planned branches and skips them when run again, and `cbs fit measures`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from rich.console import Console
from test_sweep_ray import kill_driver_when
from test_sweep_spec import make_dataset

from cbs.cli import main
from cbs.config import BranchFrom, TrainConfig
from cbs.errors import ConfigError
from cbs.fit.branched import branched_table
from cbs.fit.hparams_store import run_hparam_table
from cbs.fit.measures import measures_table
from cbs.fit.steps_to_target import steps_to_target_table
from cbs.fit.store_fits import StoreFits
from cbs.results import ResultsStore
from cbs.sweep import run_sweep
from cbs.sweep.branch import parse_branch_spec, plan_branches
from cbs.sweep.cluster import ray_session
from cbs.train import run_training
from cbs.train.branch import kept_dir, kept_root, read_kept

B_REF = 4


@pytest.fixture(scope="module")
def grid_store(tmp_path_factory):
    """Three runs (batch 2, 4, 8) of one cell, the reference batch 4 keeping checkpoints at 1/4 and 1/2."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = make_dataset(tmp_path_factory.mktemp("data"))
    store = ResultsStore(tmp_path_factory.mktemp("results"))
    ids = {}
    for batch in (2, B_REF, 8):
        cfg = TrainConfig.from_dict(
            {
                "model": {"preset": "tiny-16k"},
                "data": {"path": str(data)},
                "token_budget": 16384,
                "device": "cpu",
                "eval": {"n_log": 4, "n_dense": 4, "eval_tokens": 1024},
                "batch_size": batch,
                "reference_batch_size": B_REF,
                "keep_checkpoints_at": [0.25, 0.5] if batch == B_REF else [],
            }
        )
        keep = kept_root(store.root, cfg.run_id()) if cfg.keep_checkpoints_at else None
        trained = run_training(cfg, keep_dir=keep)
        store.write_run(trained.row, trained.curve)
        ids[batch] = trained.row["run_id"]
    torch.set_num_threads(threads)
    return store, ids


def spec(**extra) -> dict:
    return {"runs": "reference", "at": [0.5], "k": [2], "delta": 0.25, "resources": {"cpus": 1}, **extra}


def test_reference_run_keeps_its_checkpoints_in_the_store(grid_store):
    store, ids = grid_store
    steps = 16384 // (B_REF * 128)
    for fraction in (0.25, 0.5):
        meta = read_kept(kept_dir(kept_root(store.root, ids[B_REF]), fraction))
        assert meta is not None and meta.step == round(fraction * steps) and meta.lr > 0
    assert not (store.root / "checkpoints" / ids[2]).exists()  # kept only where asked


def test_kept_checkpoints_and_a_branchs_checkpoint_path_do_not_change_run_ids():
    cfg = TrainConfig()
    assert dataclasses.replace(cfg, keep_checkpoints_at=[0.5]).run_id() == cfg.run_id()
    a = dataclasses.replace(cfg, branch=BranchFrom("p", 0.5, 10, 2, "/here"))
    assert dataclasses.replace(cfg, branch=BranchFrom("p", 0.5, 10, 2, "/there")).run_id() == a.run_id()
    assert dataclasses.replace(cfg, branch=BranchFrom("p", 0.5, 10, 4, "/here")).run_id() != a.run_id()
    assert a.run_id() != cfg.run_id()


def test_plan_branches_from_the_reference_run_with_scaled_batch_and_lr(grid_store):
    store, ids = grid_store
    plan = plan_branches(parse_branch_spec(spec(k=[2, 4])), store)
    assert plan.parents == [ids[B_REF]]
    by_k = {t.config.branch.k: t for t in plan.trials}
    assert sorted(by_k) == [1, 2, 4]  # the k = 1 baseline is always branched
    meta = read_kept(kept_dir(kept_root(store.root, ids[B_REF]), 0.5))
    for k, t in by_k.items():
        assert t.config.batch_size == k * B_REF
        assert t.config.optim.lr == pytest.approx(meta.lr * k**0.5)  # sqrt rule (Adam)
        assert t.tokens == 4096  # Δ = 0.25 of the parent's 16384 tokens, the same for every k
        assert t.config.branch.step == meta.step and t.config.optim.warmup_steps == 0
        assert t.config.eval.raw_every == 1  # every evaluation scores the raw weights the estimate smooths
    linear = plan_branches(parse_branch_spec(spec(k=[4], lr_rule="linear")), store)
    assert linear.trials[-1].config.optim.lr == pytest.approx(meta.lr * 4)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"runs": ["0123456789abcdef"]}, "is not a run of"),
        ({"at": [0.75]}, r"kept no checkpoint at at=0.75 \(it kept: 0.25, 0.5\)"),
        ({"k": [1, 2]}, "whole multipliers > 1"),
        ({"k": [2.5]}, "k"),
        ({"k": [0]}, "whole multipliers > 1"),
        ({"delta": 0.6}, "at most the 0.5 of the run left"),
        ({"delta": 0.001}, "under one step at k=2"),
        ({"lr_rule": "cubic"}, "lr_rule"),
    ],
)
def test_bad_branch_spec_is_a_clear_error_before_ray(grid_store, extra, message):
    import ray

    store, _ = grid_store
    with pytest.raises(ConfigError, match=message):
        plan_branches(parse_branch_spec(spec(**extra)), store)
    assert not ray.is_initialized()


def test_cli_bad_spec_exits_2_naming_the_problem(grid_store, tmp_path, capsys):
    store, _ = grid_store
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(spec(at=[0.75])))
    assert main(["branch", str(path), "--results", str(store.root)]) == 2
    assert "kept no checkpoint at at=0.75" in capsys.readouterr().err


def test_cli_dry_run_lists_the_branches(grid_store, tmp_path, capsys):
    store, _ = grid_store
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(spec(k=[2, 4])))
    assert main(["branch", str(path), "--results", str(store.root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 branches, 12,288 tokens" in out
    assert store.runs().parent_run_id.isna().all()  # a dry run trains nothing


@pytest.mark.slow  # local Ray startup and three tiny training runs
def test_branch_phase_trains_the_planned_branches_once(grid_store):
    store, ids = grid_store
    before = steps_to_target_table(*store.tables())
    plan = plan_branches(parse_branch_spec(spec(at=[0.25, 0.5])), store)
    with ray_session(num_cpus=2):
        outcome = run_sweep(plan.sweep_plan(), store.root, console=Console(quiet=True))
        assert sorted(outcome.ran) == sorted(t.run_id for t in plan.trials) and not outcome.missing
        again = run_sweep(
            plan.sweep_plan(), store.root, console=Console(quiet=True)
        )  # resumed: nothing left to train
    assert again.ran == [] and sorted(again.skipped) == sorted(outcome.ran)
    runs = store.runs()
    branches = runs[runs.parent_run_id.notna()]
    assert len(branches) == len(plan.trials) == 4 and runs.run_id.is_unique
    assert set(branches.parent_run_id) == {ids[B_REF]}
    assert sorted(zip(branches.branch_fraction, branches.branch_k, strict=True)) == [
        (0.25, 1),
        (0.25, 2),
        (0.5, 1),
        (0.5, 2),
    ]
    assert (branches.batch_size == branches.branch_k * B_REF).all() and (branches.tokens == 4096).all()
    assert (branches.status == "completed").all()
    # the k = 1 branch continues the parent: its first loss is near the parent's at the branch point, far
    # below a fresh model's (it really started from the kept weights)
    curves = store.curves(branches.run_id)
    parent_curve = store.curves([ids[B_REF]])
    first = curves[curves.run_id.isin(branches.run_id)].groupby("run_id").eval_loss.first()
    assert first.max() < parent_curve.eval_loss.iloc[0] - 0.5
    # the grid's fits, figures and hparams tables do not see the branches
    pd.testing.assert_frame_equal(steps_to_target_table(*store.tables()), before)
    grid_ids = set(runs.run_id) - set(branches.run_id)
    assert set(run_hparam_table(*store.tables()).run_id) == grid_ids
    assert set(StoreFits(store).runs.run_id) == grid_ids
    table = branched_table(runs, store.curves(runs.run_id))
    assert list(table.branch_fraction) == [0.25, 0.5] and table.k_star.isin([1, 2]).all()
    assert (table.cbs == table.k_star * B_REF).all() and (table.tokens == 2 * 4096).all()

    measures = measures_table(store, n_boot=20)
    names = list(measures.measure)
    assert names[0] == "steps-to-target" and names[-1] == "b_simple"
    assert [m for m in names if m.startswith("branched")] == [
        f"branched@{f} (B={B_REF})" for f in (0.25, 0.5)
    ]
    grid_tokens = runs[runs.parent_run_id.isna()].tokens.sum()
    assert measures.tokens.iloc[0] == grid_tokens  # the steps-to-target cost: the whole grid, no branch
    assert measures.wall_time_s.iloc[1] == pytest.approx(
        branches[branches.branch_fraction == 0.25].wall_time_s.sum()
    )
    gns = measures.iloc[-1]
    # one micro-batch per step on one rank: no second batch size, so the GNS is not logged (the value is "—")
    assert "no run of the cell logged b_simple" in gns.note and gns.value != gns.value

    # with an in-run b_simple column (another cbs version), the value at the reference run's target step
    all_runs, all_curves = store.runs(), store.curves(runs.run_id)
    all_curves = all_curves.assign(b_simple=all_curves.step * 10.0)
    steps = steps_to_target_table(*store.tables())
    at = steps[steps.batch_size == B_REF].steps_to_target.iloc[0]
    ref = all_curves[(all_curves.run_id == ids[B_REF]) & (all_curves.step >= at)].sort_values("step").iloc[0]
    gns = measures_table((all_runs, all_curves), n_boot=20).iloc[-1]
    assert gns.value == ref.step * 10.0 and gns.tokens == ref.tokens
    assert gns.note.startswith(f"B={B_REF} (B_opt) run {ids[B_REF][:8]}, step {ref.step}")
    assert gns.wall_time_s == ref.wall_time_s  # the reference run's time up to there: no extra training

    # the CLI prints the same table, and writes it as JSON
    out = store.root.parent / "measures.json"
    assert main(["fit", "measures", str(store.root), "--n-boot", "20", "--json", str(out)]) == 0
    assert [m["measure"] for m in json.loads(out.read_text())["measures"]] == names


def test_shipped_branch_spec_parses():
    from cbs.sweep.branch import load_branch_spec

    spec = load_branch_spec(Path(__file__).resolve().parents[1] / "experiments" / "branch" / "default.yaml")
    assert spec.runs == "reference" and 1 not in spec.k and spec.delta <= 1 - max(spec.at)


@pytest.mark.slow  # a real `cbs branch` driver killed with SIGKILL, then run again: about a minute
def test_killed_branch_driver_resumes_without_duplicates(grid_store, tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    store, _ = grid_store
    results = tmp_path / "results"
    shutil.copytree(store.root, results, ignore=shutil.ignore_patterns(".ray"))
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(spec(at=[0.25], k=[2, 4, 8], delta=0.5, checkpoint_every=1)))
    planned = {
        t.run_id for t in plan_branches(parse_branch_spec(yaml.safe_load(path.read_text())), store).trials
    }
    repo = Path(__file__).resolve().parents[1]
    cmd = [
        sys.executable,
        "-m",
        "cbs",
        "branch",
        str(path),
        "--results",
        str(results),
        "--max-concurrent",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}

    def in_flight() -> set[str]:  # planned branches not stored yet that have a trial checkpoint
        stored = {p.stem for p in (results / "runs").glob("*.parquet")} & planned
        checkpointed = {p.parent.name for p in (results / ".ray").glob("*/*/checkpoint_*")}
        return checkpointed - stored if stored else set()

    kill_driver_when(in_flight, cmd, env)
    written = {
        p.stem: p.stat().st_mtime_ns for p in (results / "runs").glob("*.parquet") if p.stem in planned
    }
    assert 1 <= len(written) < len(planned)
    second = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{len(written)} already done, {len(planned) - len(written)} to run" in second.stdout
    runs = ResultsStore(results).runs()
    assert planned <= set(runs.run_id) and runs.run_id.is_unique
    assert pd.read_parquet(results / "runs").run_id.is_unique  # every row file holds a distinct run
    for run_id, mtime in written.items():  # branches stored before the kill were not trained again
        assert (results / "runs" / f"{run_id}.parquet").stat().st_mtime_ns == mtime
    assert not ResultsStore(results).curves().duplicated(["run_id", "step", "eval_set"]).any()


def test_a_branch_judges_divergence_against_its_parents_first_loss(grid_store):
    import torch

    from cbs.train import resolve_config
    from cbs.train.branch import start_branch
    from cbs.train.checkpoint import STATE_FILE
    from cbs.train.loop import Trainer

    store, _ = grid_store
    [baseline] = [t for t in plan_branches(parse_branch_spec(spec()), store).trials if t.config.branch.k == 1]
    checkpoint = Path(baseline.config.branch.checkpoint)
    parent_first = torch.load(checkpoint / STATE_FILE, weights_only=False)["progress"]["initial_loss"]
    trainer = Trainer(resolve_config(baseline.config))
    start_branch(trainer, checkpoint)
    assert trainer.progress.initial_loss == parent_first
    # factor ~1: a branch whose threshold were its own first step would stop at the first later step above it;
    # against the parent's loss at initialisation every step of the (trained) branch is below
    strict = dataclasses.replace(baseline.config, divergence_factor=1.001)
    assert run_training(strict).row["status"] == "completed"
