"""One Ray Tune trial = one `cbs.train.run_training` call, reporting each evaluation and checkpointing."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from cbs.config import TrainConfig
from cbs.errors import RunStopped
from cbs.results import ResultsStore
from cbs.sweep.prune import PRUNE_DIR, Arm, Board, Guard
from cbs.train.branch import kept_root

# a failed run is retried; pruned and skipped_past_cbs runs are the sweep's own choice (cbs.sweep.prune)
DONE_STATUSES = ("completed", "reached_target", "diverged", "pruned", "skipped_past_cbs")
REPORTED = ("step", "tokens", "train_loss", "eval_loss", "ewa_eval_loss", "lr", "wall_time_s")


class TrialFailed(RuntimeError):
    """A run ended with status failed: raised so that Ray retries it from its last checkpoint."""


def trial_config(
    config: TrainConfig, results: Path, checkpoint_every: int, arm: Arm | None = None
) -> dict[str, Any]:
    """The Ray param dict of one trial (plain JSON-able values); ``arm`` where the sweep prunes it."""
    return {
        "run_id": config.run_id(),
        "train": config.to_dict(),
        "results": str(Path(results).absolute()),
        "checkpoint_every": checkpoint_every,
        "arm": dataclasses.asdict(arm) if arm is not None else None,
    }


def stored_status(store: ResultsStore, run_id: str) -> str | None:
    """Status of ``run_id`` in the store, None if absent (one small file read)."""
    path = store.runs_dir / f"{run_id}.parquet"
    if not path.is_file():
        return None
    return pq.read_table(path, columns=["status"]).column("status")[0].as_py()


def previous_checkpoint(results: Path, run_id: str) -> Path | None:
    """Newest checkpoint of ``run_id`` left by an earlier, interrupted invocation (``DIR/.ray/*/<run_id>/``)."""
    found = sorted((results / ".ray").glob(f"*/{run_id}/checkpoint_*"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: train (or resume) one run and write it to the results store.

    Resumes from this trial's last checkpoint when Ray retries it, else from the newest checkpoint an earlier
    invocation left. A run that then fails deletes that earlier checkpoint (it may have been cut off while
    being written), so the retry starts from an older one or from scratch.
    """
    from ray import tune

    from cbs.train import run_training

    params = config["params"]
    run_id = params["run_id"]
    cfg = TrainConfig.from_dict(params["train"])
    store = ResultsStore(Path(params["results"]))
    status = stored_status(store, run_id)
    # stored meanwhile, e.g. by an earlier attempt that was cut off right after writing its row
    if status in DONE_STATUSES:
        tune.report({"run_id": run_id, "status": status, "skipped": True})
        return
    guard = Guard(Board(store.root / PRUNE_DIR), Arm(**params["arm"])) if params.get("arm") else None
    if guard is not None:
        try:
            guard.start()
        except RunStopped as stop:  # past its cell's CBS: stored without training
            tune.report({"run_id": run_id, "status": _store_untrained(cfg, store, stop)})
            return
    # a multi-rank run cannot end early from on_eval (cbs.train.launch fails every rank): it is only skipped
    mid_run = guard if cfg.parallel.workers == 1 else None
    on_eval = _reporter(run_id, int(params["checkpoint_every"]), mid_run)
    checkpoint = tune.get_checkpoint()
    earlier = None if checkpoint else previous_checkpoint(store.root, run_id)
    with checkpoint.as_directory() if checkpoint else contextlib.nullcontext(earlier) as resume_dir:
        trained = run_training(
            cfg,
            catch_failures=True,
            resume_from=resume_dir,
            on_eval=on_eval,
            keep_dir=kept_root(store.root, run_id) if cfg.keep_checkpoints_at else None,
        )
    store.write_run(trained.row, trained.curve)  # a failed run is stored too: `cbs status` lists it
    row = trained.row
    if row["status"] == "failed":
        if earlier is not None:
            shutil.rmtree(earlier, ignore_errors=True)
        raise TrialFailed(f"run {run_id} failed: {row.get('error')}")
    resumed = checkpoint is not None or earlier is not None
    reason = (
        {"stop_reason": row["stop_reason"]} if row.get("stop_reason") else {}
    )  # the stopper's lower-cap count
    tune.report(
        {"run_id": run_id, "status": row["status"], "resumed": resumed, **reason, **_scalars(row, REPORTED)}
    )


def _store_untrained(cfg: TrainConfig, store: ResultsStore, stop: RunStopped) -> str:
    """Store the row of a run the sweep chose not to train (no curve); its status."""
    from datetime import datetime, timezone

    from cbs.train.loop import Progress, runs_row
    from cbs.train.resolve import resolve_config

    row = runs_row(
        cfg,
        resolve_config(cfg),
        Progress(status=stop.status),
        started=datetime.now(timezone.utc),
        wall_time_s=0.0,
        error=None,
    )
    store.write_run({**row, "stop_reason": stop.reason}, [])
    return stop.status


def _reporter(
    run_id: str, every: int, guard: Guard | None = None
) -> Callable[[dict, Callable[[Path], None]], None]:
    """``on_eval`` callback: report the metrics to Tune, with a checkpoint every ``every`` evaluations; then
    ``guard`` may end the run (RunStopped) as pruned or past its cell's CBS."""
    from ray import tune

    count = 0

    def on_eval(metrics: dict, write_checkpoint: Callable[[Path], None]) -> None:
        nonlocal count
        count += 1
        report = {"run_id": run_id, **_scalars(metrics, REPORTED)}
        if every and count % every == 0 and not metrics.get("done"):
            with tempfile.TemporaryDirectory(prefix="cbs-ckpt-") as tmp:
                write_checkpoint(Path(tmp))
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(tmp))
        else:
            tune.report(report)
        if guard is not None:
            guard.check(metrics)

    return on_eval


def _scalars(metrics: dict, keys: tuple[str, ...]) -> dict[str, float | int]:
    out = {}
    for key in keys:
        value = metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = value
    return out
