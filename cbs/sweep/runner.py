"""Run a planned sweep on Ray Tune in one experiment, skipping the runs already in the results store.

Resume model: the results store is the source of truth. Each invocation first heals the store (a run whose row
or curve file cannot be read is moved to ``DIR/damaged/`` and so trained again), re-plans the grid, skips every
run whose row is done (completed / reached_target / diverged), and starts one Tune experiment under
``DIR/.ray`` for the rest, whose searcher (cbs.sweep.searcher) starts a cell's target runs as soon as that
cell's reference runs are done. A run cut off mid-way (driver killed) resumes from its newest Ray checkpoint
under ``DIR/.ray/*/<run_id>/``; within the experiment, Ray retries a failed trial up to ``max_failures`` times
from its last checkpoint (``tune.get_checkpoint``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd
from rich.console import Console

from cbs.results import RUNS_SCHEMA, ResultsStore
from cbs.results.health import DamagedRun, quarantine
from cbs.sweep.cluster import check_resources, ray_session
from cbs.sweep.lock import driver_lock
from cbs.sweep.plan import SweepPlan, Trial
from cbs.sweep.prune import PRUNE_DIR
from cbs.sweep.trackers import check_trackers, keep_event_files, tracker_callbacks
from cbs.sweep.trial import DONE_STATUSES, run_trial, trial_config


@dataclass
class SweepOutcome:
    ran: list[str] = field(default_factory=list)  # run ids trained by this invocation
    skipped: list[str] = field(default_factory=list)  # already done in the store
    failed: list[str] = field(
        default_factory=list
    )  # tried by this invocation, not done (error or interrupted)
    missing: list[str] = field(default_factory=list)  # planned but not done (failed, or no target yet)
    no_target: list[str] = field(default_factory=list)  # cells whose reference runs gave no finite loss
    retries: int = 0  # failed trials Ray restarted from their last checkpoint
    errors: dict[str, str] = field(
        default_factory=dict
    )  # run id -> the last error of a trial Tune gave up on
    healed: list[DamagedRun] = field(default_factory=list)  # damaged runs moved aside, to train again


def stored_runs(store: ResultsStore) -> pd.DataFrame:
    """The runs table, empty where nothing was written yet."""
    return store.runs() if store.root.is_dir() else RUNS_SCHEMA.empty_table().to_pandas()


def done_ids(runs: pd.DataFrame) -> set[str]:
    """Run ids of ``runs`` that are done (not trained again)."""
    return set(runs.run_id[runs.status.isin(DONE_STATUSES)])


def run_sweep(
    plan: SweepPlan,
    results: Path,
    *,
    address: str | None = None,
    max_concurrent: int | None = None,
    num_cpus: int | None = None,
    console: Console | None = None,
    trackers: list[str] | None = None,
    prune: bool = True,
) -> SweepOutcome:
    """Run every trial of ``plan`` not yet done in ``results`` in one Tune experiment (a cell's target runs
    once its reference runs are done, cbs.sweep.searcher), logging to the spec's ``trackers`` and these
    ``trackers`` too (cbs.sweep.trackers; checked before Ray starts).

    With ``prune`` the target phase runs each cell's batch sizes in increasing order, the arms of one
    (cell, B) together, stops dominated arms (status ``pruned``, exact) and does not train batch sizes past a
    cell's CBS (``skipped_past_cbs``); see cbs.sweep.prune."""
    console = console or Console(soft_wrap=True)
    trackers = check_trackers([*plan.spec.trackers, *(trackers or [])])
    store = ResultsStore(Path(results).absolute())
    with driver_lock(store.root):
        return _sweep(plan, store, address, max_concurrent, num_cpus, console, trackers, prune)


def _sweep(
    plan: SweepPlan,
    store: ResultsStore,
    address: str | None,
    max_concurrent: int | None,
    num_cpus: int | None,
    console: Console,
    trackers: list[str],
    prune: bool,
) -> SweepOutcome:
    """`run_sweep` once it holds the store's driver lock."""
    outcome = SweepOutcome(healed=heal(store, console))
    runs = stored_runs(store)
    if not missing_ids(plan, runs):  # nothing to train: answer from the store without starting Ray
        outcome.skipped = [t.run_id for t in plan.budget + plan.target_trials(plan.targets(runs))]
        console.print(f"nothing to do: all {len(outcome.skipped)} runs are in the store (Ray not started)")
        _remove_sweep_state(store)
        return outcome
    with ray_session(address, num_cpus):
        check_resources(plan.spec.resources)
        _run_experiment(plan, store, max_concurrent, console, outcome, trackers, prune)
    if plan.spec.target is not None:
        runs = stored_runs(store)
        targets, done = plan.targets(runs), done_ids(runs)
        refs = plan.reference_ids()
        outcome.no_target = sorted(
            c.label for c, ids in refs.items() if c not in targets and set(ids) <= done
        )
        for cell in outcome.no_target:
            console.print(
                f"[yellow]cell {cell}: every reference run diverged; its other batch sizes are skipped"
            )
    outcome.missing = missing_ids(plan, stored_runs(store))
    if not outcome.missing and not outcome.no_target:
        _remove_sweep_state(store)
    return outcome


def _remove_sweep_state(store: ResultsStore) -> None:
    """A complete grid: Ray's state and checkpoints and the pruning decisions are moot."""
    shutil.rmtree(store.root / ".ray", ignore_errors=True)
    shutil.rmtree(store.root / PRUNE_DIR, ignore_errors=True)


def missing_ids(plan: SweepPlan, runs: pd.DataFrame) -> list[str]:
    """Run ids of ``plan`` not done in ``runs`` (absent or failed), target-phase runs still waiting for their
    cell's target included (by their placeholder id)."""
    done = set(runs.run_id[runs.status.isin(DONE_STATUSES)])
    targets = plan.targets(runs)
    planned = plan.budget + plan.target_trials(targets)
    waiting = {t.run_id for t in plan.pending_target if t.cell not in targets}
    return sorted({t.run_id for t in planned if t.run_id not in done} | waiting)


def heal(store: ResultsStore, console: Console) -> list[DamagedRun]:
    """Move every damaged run of ``store`` to ``DIR/damaged/`` (saying which and where), so it is trained again."""
    damaged = store.damaged()
    if not damaged:
        return []
    moved = quarantine(store.root, damaged)
    for d in damaged:
        console.print(f"[yellow]damaged[/yellow] {d.describe()}: training it again", highlight=False)
    console.print(f"moved {len(moved)} file(s) of damaged runs to {store.root / 'damaged'}", highlight=False)
    return damaged


def _run_experiment(
    plan: SweepPlan,
    store: ResultsStore,
    max_concurrent: int | None,
    console: Console,
    outcome: SweepOutcome,
    trackers: list[str],
    prune: bool,
) -> None:
    """One Tune experiment for every trial not done: a cell's target trials start once its reference trials
    ended (cbs.sweep.searcher), on workers reused run after run."""
    from ray import tune

    from cbs.sweep.progress import SweepProgress
    from cbs.sweep.searcher import PhaseSearcher

    spec = plan.spec
    stopper = None
    if prune and spec.target is not None:
        from cbs.sweep.stopper import new_stopper

        stopper = new_stopper(store.root, spec.prune)

    def params(t: Trial) -> dict:
        arm = stopper.arms.get(t.run_id) if stopper is not None else None
        return trial_config(t.config, store.root, spec.checkpoint_every, arm)

    progress = SweepProgress(labels={}, planned_tokens={}, console=console)
    searcher = PhaseSearcher(plan, store, params, progress, stopper)
    waiting = sum(len(ts) for ts in searcher.placeholders.values())
    console.print(
        f"sweep: {len(plan.trials)} runs, {len(searcher.skipped)} already done, {len(searcher.queue)} to run"
        + (f", {waiting} more once their cell's reference runs are done" if waiting else "")
    )
    if not searcher.queue:
        outcome.skipped += searcher.skipped
        return
    resources = {"cpu": spec.resources.trial_cpus, "gpu": spec.resources.trial_gpus}
    # Tune lets a searcher have one trial pending (its worker starting) at a time, so with runs shorter than a
    # worker's start the slots fill one by one; let every slot of the cluster start a worker at once.
    tuner = tune.Tuner(
        tune.with_resources(run_trial, resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=-1,  # the searcher says when it is finished
            max_concurrent_trials=max_concurrent,
            reuse_actors=True,  # one worker process (torch imported once) trains run after run
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=f"sweep-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(store.root / ".ray"),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=0,
            callbacks=[progress, *tracker_callbacks(trackers, store.root, spec.name, searcher.cells)],
            stop=stopper,
        ),
    )
    with _pending_slots(_slots(resources, max_concurrent)):  # read when fit() starts Tune's controller
        grid = tuner.fit()
    keep_event_files(store.root)
    for i in range(len(grid)):  # Tune's own record of a trial that errored (a crash can leave no row behind)
        result = grid[i]
        if result.error is not None:
            config = cast(dict[str, Any], result.config)  # Tune's results all carry their trial's config
            outcome.errors[str(config["params"]["run_id"])] = _last_line(result.error)
    outcome.retries += progress.retries
    outcome.skipped += searcher.skipped
    done = done_ids(stored_runs(store))
    outcome.ran += [r for r in searcher.handed if r in done]
    outcome.failed += [r for r in searcher.handed if r not in done]


@contextlib.contextmanager
def _pending_slots(slots: int) -> Iterator[None]:
    """Tune's ``TUNE_MAX_PENDING_TRIALS_PG`` set to ``slots`` for this experiment only (a value the user set
    wins), so a later sweep in the same process on another cluster gets its own. Tune's default lets a searcher
    have one trial pending (its worker starting) at a time: with runs shorter than a worker's start the slots
    filled one by one."""
    key = "TUNE_MAX_PENDING_TRIALS_PG"
    user = os.environ.get(key)
    os.environ[key] = user or str(slots)
    try:
        yield
    finally:
        if user is None:
            os.environ.pop(key, None)


def _slots(resources: dict[str, float], max_concurrent: int | None) -> int:
    """How many trials of ``resources`` the Ray cluster runs at once (at most ``max_concurrent``)."""
    import ray

    have = ray.cluster_resources()
    fits = [have.get(k.upper(), 0.0) // v for k, v in resources.items() if v > 0]
    slots = max(1, int(min(fits, default=1)))
    return min(slots, max_concurrent) if max_concurrent else slots


def _last_line(error: BaseException) -> str:
    """The error's own last line (Ray wraps a trial's exception in a long traceback)."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _trial_name(trial) -> str:
    return trial.config["params"]["run_id"]
