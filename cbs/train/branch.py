"""Kept checkpoints for branched training (`cbs branch`, Merrill et al. 2025): a run with
``keep_checkpoints_at`` leaves its full state at those fractions of its steps in the results store, under
``DIR/checkpoints/<run_id>/frac-<f>/`` (``state.pt``, then ``meta.json`` once it is whole); a branch run starts
from one of them with the parent's weights, optimizer moments and data position at its own batch size and lr."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cbs.atomic import write_text_atomic
from cbs.errors import ConfigError
from cbs.train.checkpoint import STATE_FILE

if TYPE_CHECKING:
    from cbs.train.loop import Trainer

CHECKPOINTS_DIR = "checkpoints"
META_FILE = "meta.json"


@dataclass(frozen=True)
class KeptCheckpoint:
    """What a kept checkpoint records beside its state: where in the run it was taken."""

    fraction: float
    step: int
    tokens: int
    lr: float  # the parent's lr at that step (a branch scales it by its k)


def kept_root(store_root: Path, run_id: str) -> Path:
    """Folder of the checkpoints ``run_id`` keeps."""
    return Path(store_root) / CHECKPOINTS_DIR / run_id


def kept_dir(run_root: Path, fraction: float) -> Path:
    """Folder of the checkpoint kept at ``fraction`` of the steps, in a run's ``kept_root``."""
    return Path(run_root) / f"frac-{fraction:g}"


def kept_steps(fractions: list[float], steps: int) -> dict[int, float]:
    """Step of each kept fraction (rounded, at least 1) → the fraction."""
    return {max(1, round(f * steps)): f for f in fractions}


def write_kept(trainer: Trainer, directory: Path, meta: KeptCheckpoint) -> None:
    """Write the trainer's state, then ``meta.json``: a folder with ``meta.json`` holds a whole checkpoint."""
    trainer.write_checkpoint(directory)
    if trainer.ranks.is_main:
        write_text_atomic(directory / META_FILE, json.dumps(asdict(meta)))


def read_kept(directory: Path) -> KeptCheckpoint | None:
    """The metadata of a whole kept checkpoint in ``directory``, None if there is none (or it is incomplete)."""
    meta = Path(directory) / META_FILE
    if not (meta.is_file() and (Path(directory) / STATE_FILE).is_file()):
        return None
    return KeptCheckpoint(**json.loads(meta.read_text()))


def start_branch(trainer: Trainer, directory: Path) -> None:
    """Load the parent's weights, AdamW moments, data position and first loss (the reference of the divergence
    check) from a kept checkpoint into ``trainer``, keeping the trainer's own lr, betas and EWA (the branch's EWA
    averages from the branch point on)."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise ConfigError(f"no kept checkpoint at {path}: the parent run's checkpoints were moved or deleted")
    state = torch.load(path, map_location="cpu", weights_only=False)
    trainer.model.load_state_dict(state["model"])
    own = [{k: v for k, v in g.items() if k != "params"} for g in trainer.optimizer.param_groups]
    trainer.optimizer.load_state_dict(state["optimizer"])
    for group, settings in zip(trainer.optimizer.param_groups, own, strict=True):
        group.update(settings)
    trainer.prefetcher.load_state_dict(state["sampler"])
    # a branch continues its parent: divergence is judged against the parent's first loss (at initialisation),
    # not the branch's own first step, one batch of a trained model (at B = 1 a single sequence, whose loss
    # can be a third of its neighbours': ordinary losses then read as divergence)
    trainer.progress.initial_loss = state["progress"]["initial_loss"]
