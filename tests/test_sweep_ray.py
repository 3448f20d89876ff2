"""Real Ray Tune sweeps of tiny grids on CPU: the Parquet store row by row, idempotent re-runs, and a driver
killed with SIGKILL then resumed to the full grid with every run exactly once."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from rich.console import Console
from test_sweep_spec import make_dataset, spec_dict
from test_train_run import train_into

from cbs.cli import main
from cbs.config import ParallelConfig
from cbs.errors import ConfigError
from cbs.results import ResultsStore
from cbs.sweep import Resources, parse_spec, plan_sweep, run_sweep
from cbs.sweep.cluster import check_resources, ray_session

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # Ray startup and real (tiny) training runs: about a minute for the file


def subprocess_env() -> dict[str, str]:
    """This process's environment as it is now (a running Ray adds its auth token to it), with cbs importable."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


def sweep_command(spec: Path, results: Path, *extra: str) -> list[str]:
    """`python -m cbs sweep SPEC --results RESULTS ...` as a user runs it, in its own process."""
    return [sys.executable, "-m", "cbs", "sweep", str(spec), "--results", str(results), *extra]


@pytest.fixture(scope="module")
def ray_cluster():
    """One small local Ray for the module (startup costs seconds)."""
    with ray_session(num_cpus=2):
        yield


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def target_sweep(ray_cluster, dataset, tmp_path_factory):
    """A 3 batch × 2 lr grid under the CBS protocol (b_opt = 4), run once."""
    spec = parse_spec(spec_dict(dataset, target={"reference_batch_size": 4, "budget_multiple": 2}))
    plan = plan_sweep(spec)
    results = tmp_path_factory.mktemp("results")
    outcome = run_sweep(plan, results, console=Console(quiet=True))
    return plan, results, outcome


def test_store_holds_one_row_per_grid_point(target_sweep):
    plan, results, outcome = target_sweep
    runs = ResultsStore(results).runs()
    assert not outcome.missing
    phase1 = {t.run_id for t in plan.budget}
    targets = plan.targets(runs)
    planned = {t.run_id: t for t in plan.budget + plan.target_trials(targets)}
    assert sorted(runs.run_id) == sorted(planned) and len(planned) == 6
    assert sorted(outcome.ran) == sorted(planned)
    for row in runs.itertuples():
        t = planned[row.run_id]
        assert row.run_id == t.config.run_id()  # the hash of the config the spec gives this grid point
        assert (row.batch_size, row.lr, row.experiment) == (t.config.batch_size, t.config.optim.lr, "t")
        assert row.reference_batch_size == 4  # the spec's b_opt, recorded for `cbs fit cbs`
        if row.run_id in phase1:  # reference runs train to their budget D
            assert row.status in ("completed", "diverged") and pd.isna(row.target_loss)
            assert row.tokens == row.token_budget == 16384
        else:  # stop at the best reference loss, allowed 2 × D
            assert row.target_loss == pytest.approx(min(runs[runs.run_id.isin(phase1)].best_ewa_eval_loss))
            assert (row.data_tokens, row.token_budget) == (16384, 32768)
            assert row.status in ("reached_target", "completed", "diverged", "pruned", "skipped_past_cbs")
            if row.status == "reached_target":
                assert row.best_ewa_eval_loss <= row.target_loss and row.tokens <= row.token_budget
    curves = ResultsStore(results).curves()
    assert set(curves.run_id) == set(planned) - set(runs.run_id[runs.status == "skipped_past_cbs"])
    assert (curves.groupby("run_id").step.count() >= 2).all()


def test_results_readable_with_plain_pandas_and_duckdb(target_sweep):
    _, results, _ = target_sweep
    runs = pd.read_parquet(results / "runs")
    assert len(runs) == 6 and runs.run_id.is_unique
    n, best = duckdb.sql(
        f"SELECT count(*), min(best_ewa_eval_loss) FROM read_parquet('{results}/runs/*.parquet')"
    ).fetchall()[0]
    assert n == 6 and best == pytest.approx(runs.best_ewa_eval_loss.min())
    points = duckdb.sql(f"SELECT count(*) FROM read_parquet('{results}/curves/*.parquet')").fetchall()[0][0]
    assert points == len(pd.read_parquet(results / "curves"))


def test_rerun_is_a_no_op(target_sweep, monkeypatch):
    plan, results, _ = target_sweep
    before = {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.parquet")}

    def no_ray(*args, **kwargs):
        raise AssertionError("a re-run of a complete grid must answer from the store, without Ray")

    monkeypatch.setattr("cbs.sweep.runner.ray_session", no_ray)
    again = run_sweep(plan, results, console=Console(quiet=True))
    assert again.ran == [] and len(again.skipped) == 6 and not again.missing
    assert {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.parquet")} == before
    assert not (results / ".ray").exists()  # a complete grid leaves no Ray state behind
    assert not (results / ".prune").exists()  # nor pruning decisions


def test_status_reports_counts_and_saved_tokens(target_sweep, tmp_path, capsys):
    plan, results, _ = target_sweep
    spec_path = tmp_path / "t.yaml"
    spec_path.write_text(
        yaml.safe_dump(
            spec_dict(
                Path(plan.budget[0].config.data.path),
                target={"reference_batch_size": 4, "budget_multiple": 2},
            )
        )
    )
    assert main(["status", str(results), "--spec", str(spec_path)]) == 0
    out = capsys.readouterr().out
    runs = ResultsStore(results).runs()
    stopped = runs[runs.status == "reached_target"]
    assert f"runs: 6 ({(runs.status == 'completed').sum()} completed, {len(stopped)} reached_target" in out
    saved = int((stopped.token_budget - stopped.tokens).sum())
    assert f"saved by stopping at target: {saved:,} tokens" in out
    assert "missing grid points" not in out


def test_failed_trial_is_retried_then_rerun_on_the_next_invocation(ray_cluster, dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    spec = spec_dict(data, max_failures=1)
    spec["grid"] = {"batch_size": [4], "optim.lr": [1e-2]}
    plan = plan_sweep(parse_spec(spec))
    shutil.rmtree(data)  # vanishes after validation: every attempt of the trial fails
    first = run_sweep(plan, tmp_path / "results", console=Console(quiet=True))
    assert first.missing == [plan.trials[0].run_id] and first.ran == []
    assert first.retries == 1  # max_failures=1: one retry, then the trial is given up
    # Tune's ResultGrid says why, in the error's own words (the data folder is gone)
    assert set(first.errors) == {plan.trials[0].run_id}
    assert "data" in first.errors[plan.trials[0].run_id].lower()
    assert (tmp_path / "results" / ".ray").is_dir()  # an incomplete grid keeps Ray's state and error files
    shutil.copytree(dataset, data)
    second = run_sweep(plan, tmp_path / "results", console=Console(quiet=True))
    assert second.ran == [plan.trials[0].run_id] and not second.missing
    assert len(ResultsStore(tmp_path / "results").runs()) == 1


def test_cli_joins_a_running_cluster_with_address(ray_cluster, dataset, tmp_path):
    """`cbs sweep --address` drives an existing Ray cluster (here the module's) instead of starting one."""
    import ray

    spec = spec_dict(dataset)
    spec["grid"] = {"batch_size": [2, 4], "optim.lr": [1e-2]}
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(spec))
    address = ray.get_runtime_context().gcs_address
    cmd = sweep_command(path, tmp_path / "r", "--address", address)
    done = subprocess.run(
        cmd, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Connected to Ray cluster" in done.stderr and "Started a local Ray" not in done.stderr
    assert sorted(ResultsStore(tmp_path / "r").runs().run_id) == sorted(
        t.run_id for t in plan_sweep(parse_spec(spec), cwd=tmp_path).trials
    )


def test_gpu_request_refused_on_this_cpu_cluster(ray_cluster):
    with pytest.raises(
        ConfigError, match=r"resources\.gpus: 1 GPU per trial, but the Ray cluster has no GPU"
    ):
        check_resources(Resources(cpus=1, gpus=1))


def test_two_worker_trial_gives_the_one_process_run(ray_cluster, dataset, tmp_path):
    """resources.workers: 2 trains each trial as 2 gloo ranks inside its Tune trial (2 CPUs of the 2)."""
    spec = spec_dict(dataset, resources={"workers": 2}, checkpoint_every=2)
    spec["grid"] = {"batch_size": [4], "optim.lr": [1e-2]}
    plan = plan_sweep(parse_spec(spec))
    outcome = run_sweep(plan, tmp_path / "two", console=Console(quiet=True))
    assert outcome.ran == [plan.trials[0].run_id] and not outcome.missing
    one = ResultsStore(tmp_path / "one")
    train_into(one, dataclasses.replace(plan.trials[0].config, parallel=ParallelConfig()))
    two = ResultsStore(tmp_path / "two")
    assert two.runs().run_id.tolist() == one.runs().run_id.tolist()
    losses = ["train_loss", "eval_loss", "ewa_eval_loss"]
    a, b = (s.curves().sort_values(["step", "eval_set"]) for s in (one, two))
    assert a.step.tolist() == b.step.tolist()
    np.testing.assert_allclose(a[losses], b[losses], rtol=1e-5)  # fp32, another reduction order


def test_killed_driver_resumes_without_duplicates(dataset, tmp_path):
    """SIGKILL the `cbs sweep` driver once a run is stored and another has a checkpoint; the same command then
    completes the grid: stored runs are not trained again, the cut-off run resumes from its checkpoint and
    ends on the same curve as an uninterrupted run, and every run is stored exactly once."""
    spec = spec_dict(dataset, checkpoint_every=2)
    spec["base"].update(token_budget=32768, eval={"n_log": 10, "n_dense": 2, "eval_tokens": 1024})
    spec["grid"] = {"batch_size": [2, 4], "optim.lr": [3e-3, 1e-2]}
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(spec))
    results = tmp_path / "results"
    cmd = sweep_command(path, results, "--max-concurrent", "1")
    env = subprocess_env()

    def in_flight() -> set[str]:  # runs not stored yet that have a checkpoint
        stored = {p.stem for p in (results / "runs").glob("*.parquet")}
        checkpointed = {p.parent.name for p in (results / ".ray").glob("*/*/checkpoint_*")}
        return checkpointed - stored if stored else set()

    kill_driver_when(
        in_flight, [*cmd, "--max-concurrent", "1"], env
    )  # a run is stored while the next goes on
    written = {p.stem: p.stat().st_mtime_ns for p in (results / "runs").glob("*.parquet")}
    cut_off = in_flight()
    assert 1 <= len(written) < 4 and len(cut_off) == 1
    second = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, start_new_session=True
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{len(written)} already done, {4 - len(written)} to run" in second.stdout
    assert f"({next(iter(cut_off))}): completed (resumed from a checkpoint)" in second.stdout
    runs = ResultsStore(results).runs()
    trials = {t.run_id: t for t in plan_sweep(parse_spec(spec)).trials}
    assert len(pd.read_parquet(results / "runs")) == 4 and sorted(runs.run_id) == sorted(trials)
    assert set(runs.status) <= {"completed", "diverged"}
    for run_id, mtime in written.items():  # runs stored before the kill were not trained again
        assert (results / "runs" / f"{run_id}.parquet").stat().st_mtime_ns == mtime
    curves = ResultsStore(results).curves()
    assert not curves.duplicated(["run_id", "step", "eval_set"]).any()
    (run_id,) = cut_off  # the resumed run ends on the curve of the same run trained in one go
    reference = ResultsStore(tmp_path / "reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the 1-CPU Ray worker
    try:
        train_into(reference, trials[run_id].config)
    finally:
        torch.set_num_threads(threads)
    resumed, whole = curves[curves.run_id == run_id], reference.curves()
    assert list(resumed.step) == list(whole.step)
    assert resumed.ewa_eval_loss.to_numpy() == pytest.approx(whole.ewa_eval_loss.to_numpy(), rel=1e-6)


def kill_driver_when(ready, cmd: list[str], env: dict[str, str], timeout: float = 180) -> None:
    """Start the driver ``cmd`` in its own process group, SIGKILL it as soon as ``ready()``, then its group (its
    local Ray). Fails if it ends first or ``ready()`` stays false for ``timeout`` seconds."""
    driver = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert driver.poll() is None, "the driver ended before it was killed"
            assert time.monotonic() < deadline, f"not ready to be killed within {timeout} s"
            time.sleep(0.02)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        _kill_group(driver.pid)  # the driver's local Ray (raylet, workers) dies with its process group


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def test_sweep_retrains_exactly_the_damaged_runs(target_sweep, tmp_path, capsys):
    """A truncated curve file: the next sweep moves the run's files to damaged/ and trains that run alone; a spec
    restating a preset value (model.n_heads: 2 of tiny-16k) has the same run ids, so nothing else is trained."""
    plan, results, _ = target_sweep
    store = ResultsStore(shutil.copytree(results, tmp_path / "results"))
    victim = sorted(store.run_ids())[0]
    curve = store.curves_dir / f"{victim}.parquet"
    curve.write_bytes(curve.read_bytes()[:100])
    spec = spec_dict(
        Path(plan.budget[0].config.data.path), target={"reference_batch_size": 4, "budget_multiple": 2}
    )
    spec["base"]["model"]["n_heads"] = 2
    restated = plan_sweep(parse_spec(spec))
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(tmp_path / "t.yaml"), "--dry-run", "--results", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "5 of 6 grid points done, 1 to train (1 damaged runs would be moved aside" in out
    assert sorted(t.run_id for t in restated.trials) == sorted(t.run_id for t in plan.trials)
    outcome = run_sweep(restated, store.root, console=Console(quiet=True))
    assert [d.run_id for d in outcome.healed] == [victim] and outcome.ran == [victim]
    assert len(outcome.skipped) == 5 and not outcome.missing
    assert store.damaged() == [] and len(store.runs()) == 6
    moved = sorted(p.name.split(".damaged-")[0] for p in (store.root / "damaged").rglob("*.damaged-*"))
    assert moved == [f"{victim}.parquet"] * 2


def _session_pids(sid: int) -> set[int]:
    """Processes of the session ``sid`` (a driver started with start_new_session), zombies left out."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                out.add(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the reaper reads /proc (Linux)")
def test_killed_driver_leaves_no_ray_process(dataset, tmp_path):
    """SIGKILL the driver (not its process group) while a trial trains: the reaper kills every process of its
    local Ray, the agents (DashboardAgent, RuntimeEnvAgent) included, within seconds."""
    spec = spec_dict(dataset)
    spec["base"].update(token_budget=16384 * 20, data={"path": str(dataset), "allow_repeat": True})
    spec["grid"] = {"batch_size": [2], "optim.lr": [3e-3]}
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(spec))
    driver = subprocess.Popen(
        [*sweep_command(path, tmp_path / "results"), "--num-cpus", "2"],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(b"ImplicitFunc" in _cmdline(p) for p in _session_pids(driver.pid)):
            assert driver.poll() is None and time.monotonic() < deadline, "no trial started within 60 s"
            time.sleep(0.2)
        ray_pids = _session_pids(driver.pid) - {driver.pid}
        names = {_cmdline(p).split(b"\0")[0] for p in ray_pids}
        assert {b"ray::DashboardAgent", b"ray::RuntimeEnvAgent"} <= names
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 15
        while ray_pids & _session_pids(driver.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = {_cmdline(p).split(b"\0")[0] for p in ray_pids & _session_pids(driver.pid)}
        assert not left, f"Ray processes left after the driver was killed: {left}"
    finally:
        _kill_group(driver.pid)


def _cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""
