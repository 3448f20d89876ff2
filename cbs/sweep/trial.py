"""One Ray Tune trial = one `cbs.train.run_training` call, reporting each evaluation and checkpointing."""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from cbs.config import TrainConfig
from cbs.results import ResultsStore

DONE_STATUSES = ("completed", "reached_target", "diverged")  # a failed run is retried
REPORTED = ("step", "tokens", "train_loss", "eval_loss", "ewa_eval_loss", "lr", "wall_time_s")


class TrialFailed(RuntimeError):
    """A run ended with status failed: raised so that Ray retries it from its last checkpoint."""


def trial_config(config: TrainConfig, results: Path, checkpoint_every: int) -> dict[str, Any]:
    """The Ray param dict of one trial (plain JSON-able values)."""
    return {
        "run_id": config.run_id(),
        "train": config.to_dict(),
        "results": str(Path(results).absolute()),
        "checkpoint_every": checkpoint_every,
    }


def stored_status(store: ResultsStore, run_id: str) -> str | None:
    """Status of ``run_id`` in the store, None if absent (one small file read)."""
    path = store.runs_dir / f"{run_id}.parquet"
    if not path.is_file():
        return None
    return pq.read_table(path, columns=["status"]).column("status")[0].as_py()


def previous_checkpoint(results: Path, run_id: str):
    """Newest checkpoint of ``run_id`` left by an earlier, interrupted invocation (``DIR/.ray/*/<run_id>/``)."""
    from ray import tune

    found = sorted((results / ".ray").glob(f"*/{run_id}/checkpoint_*"), key=lambda p: p.stat().st_mtime)
    return tune.Checkpoint.from_directory(str(found[-1])) if found else None


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: train (or resume) one run and write it to the results store."""
    from ray import tune

    from cbs.train import run_training

    params = config["params"]
    cfg = TrainConfig.from_dict(params["train"])
    store = ResultsStore(Path(params["results"]))
    status = stored_status(store, params["run_id"])
    if status in DONE_STATUSES:  # stale Ray experiment state: this run finished before the driver stopped
        tune.report({"status": status, "skipped": True})
        return
    on_eval = _reporter(params["run_id"], int(params["checkpoint_every"]))
    checkpoint = tune.get_checkpoint() or previous_checkpoint(store.root, params["run_id"])
    with checkpoint.as_directory() if checkpoint else contextlib.nullcontext() as resume_dir:
        row = run_training(
            cfg, store=store, resume_from=Path(resume_dir) if resume_dir else None, on_eval=on_eval
        )
    if row["status"] == "failed":
        raise TrialFailed(f"run {params['run_id']} failed: {row.get('error')}")
    tune.report({"status": row["status"], "done_tokens": row.get("tokens"), **_scalars(row, REPORTED)})


def _reporter(run_id: str, every: int) -> Callable[[dict, Callable[[Path], None]], None]:
    """``on_eval`` callback: report the metrics to Tune, with a checkpoint every ``every`` evaluations."""
    from ray import tune

    count = 0

    def on_eval(metrics: dict, write_checkpoint: Callable[[Path], None]) -> None:
        nonlocal count
        count += 1
        report = {"run_id": run_id, **_scalars(metrics, REPORTED)}
        if every and count % every == 0:
            with tempfile.TemporaryDirectory(prefix="cbs-ckpt-") as tmp:
                write_checkpoint(Path(tmp))
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(tmp))
        else:
            tune.report(report)

    return on_eval


def _scalars(metrics: dict, keys: tuple[str, ...]) -> dict[str, float | int]:
    out = {}
    for key in keys:
        value = metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = value
    return out
