"""Run a planned sweep on Ray Tune: phase by phase, skipping the runs already in the results store.

Resume model: the results store is the source of truth. Each invocation first heals the store (a run whose row
or curve file cannot be read is moved to ``DIR/damaged/`` and so trained again), re-plans the grid, skips every
run whose row is done (completed / reached_target / diverged), and starts one fresh Tune experiment per phase
under ``DIR/.ray`` for the rest. A run cut off mid-way (driver killed) resumes from its newest Ray
checkpoint under ``DIR/.ray/*/<run_id>/``; within an experiment, Ray retries a failed trial up to
``max_failures`` times from its last checkpoint (``tune.get_checkpoint``).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.console import Console

from cbs.presets import model_label
from cbs.results import RUNS_SCHEMA, ResultsStore
from cbs.results.health import DamagedRun, quarantine
from cbs.sweep.cluster import check_resources, ray_session
from cbs.sweep.plan import SweepPlan, Trial
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
    healed: list[DamagedRun] = field(default_factory=list)  # damaged runs moved aside, to train again


def stored_runs(store: ResultsStore) -> pd.DataFrame:
    """The runs table, empty where nothing was written yet."""
    return store.runs() if store.root.is_dir() else RUNS_SCHEMA.empty_table().to_pandas()


def done_ids(store: ResultsStore) -> set[str]:
    runs = stored_runs(store)
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
) -> SweepOutcome:
    """Run every trial of ``plan`` not yet done in ``results`` (phase 1, then the target phase), logging to the
    spec's ``trackers`` and these ``trackers`` too (cbs.sweep.trackers; checked before Ray starts)."""
    console = console or Console(soft_wrap=True)
    trackers = check_trackers([*plan.spec.trackers, *(trackers or [])])
    store = ResultsStore(Path(results).absolute())
    outcome = SweepOutcome(healed=heal(store, console))
    runs = stored_runs(store)
    if not missing_ids(plan, runs):  # nothing to train: answer from the store without starting Ray
        outcome.skipped = [t.run_id for t in plan.budget + plan.target_trials(plan.targets(runs))]
        console.print(f"nothing to do: all {len(outcome.skipped)} runs are in the store (Ray not started)")
        shutil.rmtree(store.root / ".ray", ignore_errors=True)
        return outcome
    with ray_session(address, num_cpus):
        check_resources(plan.spec.resources)
        _run_phase(plan, plan.budget, "budget", store, max_concurrent, console, outcome, trackers)
        if plan.spec.target is not None:
            targets = plan.targets(stored_runs(store))
            refs = plan.reference_ids()
            done = done_ids(store)
            outcome.no_target = sorted(c for c, ids in refs.items() if c not in targets and set(ids) <= done)
            for cell in outcome.no_target:
                console.print(
                    f"[yellow]cell {cell}: every reference run diverged; its other batch sizes are skipped"
                )
            _run_phase(
                plan, plan.target_trials(targets), "target", store, max_concurrent, console, outcome, trackers
            )
    outcome.missing = missing_ids(plan, stored_runs(store))
    if not outcome.missing and not outcome.no_target:  # complete: Ray's state and checkpoints are moot
        shutil.rmtree(store.root / ".ray", ignore_errors=True)
    return outcome


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


def _run_phase(
    plan: SweepPlan,
    trials: list[Trial],
    phase: str,
    store: ResultsStore,
    max_concurrent: int | None,
    console: Console,
    outcome: SweepOutcome,
    trackers: list[str],
) -> None:
    from ray import tune

    from cbs.sweep.progress import SweepProgress

    done = done_ids(store)
    todo = [t for t in trials if t.run_id not in done]
    outcome.skipped += [t.run_id for t in trials if t.run_id in done]
    if not trials:
        return
    console.print(
        f"{phase} phase: {len(trials)} runs, {len(trials) - len(todo)} already done, {len(todo)} to run"
    )
    if not todo:
        return
    spec = plan.spec
    progress = SweepProgress(
        labels={t.run_id: _label(t) for t in todo},
        planned_tokens={t.run_id: t.tokens for t in todo},
        already_done=len(trials) - len(todo),
        console=console,
    )
    resources = {"cpu": spec.resources.trial_cpus, "gpu": spec.resources.trial_gpus}
    params = [trial_config(t.config, store.root, spec.checkpoint_every) for t in todo]
    tuner = tune.Tuner(
        tune.with_resources(run_trial, resources),
        param_space={"params": tune.grid_search(params)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent,
            reuse_actors=True,  # one worker process (torch imported once) trains run after run
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=f"{phase}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(store.root / ".ray"),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=0,
            callbacks=[
                progress,
                *tracker_callbacks(trackers, store.root, spec.name, {t.run_id: t.cell for t in todo}),
            ],
        ),
    )
    tuner.fit()
    keep_event_files(store.root)
    outcome.retries += progress.retries
    done = done_ids(store)
    outcome.ran += [t.run_id for t in todo if t.run_id in done]
    outcome.failed += [t.run_id for t in todo if t.run_id not in done]


def _trial_name(trial) -> str:
    return trial.config["params"]["run_id"]


def _label(t: Trial) -> str:
    c = t.config
    return f"{model_label(c.model)} B={c.batch_size} lr={c.optim.lr:g} ({t.run_id})"
