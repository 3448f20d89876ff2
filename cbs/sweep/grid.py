"""Grid expansion: a SweepSpec becomes one TrainConfig per grid point (cells: cbs.results.cell)."""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbs.config import TrainConfig, apply_overrides
from cbs.sweep.spec import SweepSpec


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
