"""Experiment trackers for a sweep, through Ray Tune's own logger callbacks: TensorBoard (event files in each
trial's folder under ``DIR/.ray``), Weights & Biases and MLflow. Each trial is named by its run id and tagged
with its run id and cell; every config field is logged (the trial's param dict). The Parquet store stays the
source of truth: a tracker that fails to log never touches it.

TensorBoard's event files are moved to ``DIR/tensorboard/<run_id>/`` after each phase (``tensorboard --logdir
DIR/tensorboard``), since the Ray folder is removed once a sweep is complete.

Offline use: W&B writes offline runs under ``DIR/wandb`` when ``WANDB_MODE=offline`` (or no API key is set —
then cbs turns offline mode on and says so); MLflow writes to a local file store ``DIR/mlruns`` unless
``MLFLOW_TRACKING_URI`` names a server or database (cbs sets ``MLFLOW_ALLOW_FILE_STORE=true`` for the
file store, which MLflow ≥ 3.7 otherwise refuses).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from cbs.errors import ConfigError

TRACKERS = {"tensorboard": "tensorboardX", "wandb": "wandb", "mlflow": "mlflow"}  # name -> module it needs


def check_trackers(names: list[str]) -> list[str]:
    """``names`` deduplicated in order; ConfigError for an unknown tracker or a missing package (naming the
    extra to install), before Ray starts."""
    out = list(dict.fromkeys(names))
    for name in out:
        if name not in TRACKERS:
            raise ConfigError(f"unknown tracker {name!r}; known trackers: {', '.join(TRACKERS)}")
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise ConfigError(
                f"tracker {name!r} needs the {TRACKERS[name]} package: pip install 'cbs[trackers]' (or {TRACKERS[name]})"
            )
    return out


def tracker_callbacks(names: list[str], results: Path, experiment: str, cells: dict[str, str]) -> list[Any]:
    """Ray Tune callbacks for ``names`` (checked by `check_trackers`); ``cells`` maps run id -> cell label."""
    callbacks: list[Any] = []
    for name in check_trackers(names):
        if name == "tensorboard":
            from ray.tune.logger import TBXLoggerCallback

            callbacks.append(TBXLoggerCallback())
        elif name == "wandb":
            callbacks.append(_wandb(results, experiment, cells))
        else:
            callbacks.append(_mlflow(results, experiment, cells))
    return callbacks


def _wandb(results: Path, experiment: str, cells: dict[str, str]) -> Any:
    from ray.air.integrations.wandb import WandbLoggerCallback

    class Callback(WandbLoggerCallback):
        def log_trial_start(self, trial: Any) -> None:
            run_id = trial.config["params"]["run_id"]
            self.kwargs["tags"] = [run_id, cells.get(run_id, "")]
            super().log_trial_start(trial)

    if "WANDB_MODE" not in os.environ and "WANDB_API_KEY" not in os.environ:
        os.environ["WANDB_MODE"] = "offline"  # the workers inherit it
        print(
            f"wandb: no WANDB_API_KEY set: logging offline under {results / 'wandb'} (`wandb sync` uploads it)"
        )
    (results / "wandb").mkdir(parents=True, exist_ok=True)
    return Callback(project=experiment, dir=str(results), mode=os.environ.get("WANDB_MODE"))


def _mlflow(results: Path, experiment: str, cells: dict[str, str]) -> Any:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class Callback(MLflowLoggerCallback):
        def log_trial_start(self, trial: Any) -> None:
            run_id = trial.config["params"]["run_id"]
            self.tags = {**base_tags, "run_id": run_id, "cell": cells.get(run_id, "")}
            super().log_trial_start(trial)

    base_tags = {"experiment": experiment}
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri is None:  # a local file store: MLflow ≥ 3.7 asks to opt in to it (it needs no database packages)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = (results / "mlruns").absolute().as_uri()
    return Callback(tracking_uri=uri, experiment_name=experiment, tags=base_tags, save_artifact=False)


def keep_event_files(results: Path) -> int:
    """Move TensorBoard event files from the trials' Ray folders (``DIR/.ray/<phase>/<run_id>/``) to
    ``DIR/tensorboard/<run_id>/``; returns how many were moved."""
    moved = 0
    for event in sorted((results / ".ray").glob("*/*/events.out.tfevents.*")):
        dest = results / "tensorboard" / event.parent.name
        dest.mkdir(parents=True, exist_ok=True)
        event.replace(dest / f"{event.parent.parent.name}.{event.name}")
        moved += 1
    return moved
