"""Grid expansion: a SweepSpec becomes one TrainConfig per grid point, grouped into model × data cells."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbs.config import TrainConfig, apply_overrides
from cbs.sweep.spec import SweepSpec

# Fields minimised over when the target is taken (lr, β2, τ, ...), and run-control fields: everything else
# (model, data, budget, seed, divergence rule) identifies the experiment cell that shares one target.
_NOT_CELL = (
    "experiment",
    "batch_size",
    "micro_batch_size",
    "optim",
    "eval",
    "ewa_tau",
    "target_loss",
    "stop_at_target",
    "device",
    "dtype",
    "compile",
)


@dataclass(frozen=True)
class GridPoint:
    """One point of the grid: the axis values it takes and the TrainConfig they give (paths absolute)."""

    values: dict[str, Any]
    config: TrainConfig

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items())


def expand_grid(spec: SweepSpec, cwd: Path | None = None) -> list[GridPoint]:
    """The Cartesian product of the spec's axes applied to ``base``, in spec order, duplicates dropped."""
    base = spec.base_dict()
    axes = spec.axes()
    combos = itertools.product(*[list(zip(*axis.values(), strict=True)) for axis in axes])
    points, seen = [], set()
    for combo in combos:
        values = {k: v for axis, row in zip(axes, combo, strict=True) for k, v in zip(axis, row, strict=True)}
        overrides = [f"{k}={json.dumps(v)}" for k, v in values.items()]
        config = absolute_paths(TrainConfig.from_dict(apply_overrides(base, overrides)), cwd)
        config.experiment = spec.name
        config.reference_batch_size = spec.target.reference_batch_size if spec.target else None
        if config.run_id() not in seen:
            seen.add(config.run_id())
            points.append(GridPoint(values, config))
    return points


def absolute_paths(config: TrainConfig, cwd: Path | None = None) -> TrainConfig:
    """A copy with the dataset and eval-set paths made absolute (Ray runs trials in other directories)."""
    cwd = Path(cwd or Path.cwd())
    out = TrainConfig.from_dict(config.to_dict())
    out.data.path = str((cwd / Path(out.data.path).expanduser()).resolve())
    for es in out.data.eval_sets:
        if es.path is not None:
            es.path = str((cwd / Path(es.path).expanduser()).resolve())
    return out


def cell_key(config: TrainConfig) -> str:
    """Short id of the model × data × optimizer cell of a config (shared by all its batch sizes and optimizer
    settings; AdamW cells keep the keys they had before the optimizer axis)."""
    payload = {k: v for k, v in config.to_dict().items() if k not in _NOT_CELL}
    if config.optim.name != "adamw":
        payload["optimizer"] = config.optim.name
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


def target_config(
    config: TrainConfig, data_tokens: int, target_loss: float, budget_multiple: float
) -> TrainConfig:
    """The stop-at-target twin of a grid point: nominal data D kept, token cap ``budget_multiple`` × D."""
    return dataclasses.replace(
        TrainConfig.from_dict(config.to_dict()),
        token_budget=int(round(budget_multiple * data_tokens)),
        chinchilla_multiple=None,
        data_tokens=int(data_tokens),
        target_loss=float(target_loss),
        stop_at_target=True,
    )
