"""Plan a sweep: expand the grid, check and resolve every trial before Ray starts, split the CBS phases.

Without a ``target`` rule every grid point is a "budget" trial (trains to its token budget). With one, the
points at the reference batch size are budget trials; the others are "target" trials, planned once the
cell's target R_opt (best EWA eval loss of its reference runs) is in the results store.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cbs.config import TrainConfig
from cbs.errors import CbsError, ConfigError
from cbs.protocol import chinchilla_tokens
from cbs.results.cell import Cell
from cbs.sweep.grid import GridPoint, expand_grid, target_config
from cbs.sweep.spec import SweepSpec
from cbs.sweep.trial import DONE_STATUSES

ESTIMATE_VOCAB = 50304  # GPT-NeoX-20B tokenizer (padded): FLOPs estimate of a dry run without the dataset


@dataclass(frozen=True)
class Trial:
    """One training run of the sweep."""

    point: GridPoint
    config: TrainConfig
    phase: str  # "budget": trains to its token budget | "target": stops at its cell's target loss
    cell: Cell  # cbs.results.cell: the runs sharing one target (all seeds of it)
    n_params: int
    tokens: int  # token cap of the run
    flops_per_token: float
    data_tokens: int  # the cell's nominal data size D
    batch_tokens: int  # tokens per step

    @property
    def run_id(self) -> str:
        return self.config.run_id()

    @property
    def flops(self) -> float:
        return self.tokens * self.flops_per_token


@dataclass
class SweepPlan:
    spec: SweepSpec
    budget: list[Trial]  # phase 1 (everything when the spec has no target rule)
    pending_target: list[Trial]  # phase 2, shown with a placeholder target until the cell's R_opt is known
    data_tokens: dict[Cell, int]  # nominal data size D per cell
    warnings: list[str] = field(default_factory=list)

    @property
    def trials(self) -> list[Trial]:
        return self.budget + self.pending_target

    def reference_ids(self) -> dict[Cell, list[str]]:
        """Run ids of each cell's reference (b_opt) runs."""
        out: dict[Cell, list[str]] = {}
        ref = self.spec.target.reference_batch_size if self.spec.target else None
        for t in self.budget:
            if t.config.batch_size == ref:
                out.setdefault(t.cell, []).append(t.run_id)
        return out

    def targets(self, runs: pd.DataFrame) -> dict[Cell, float]:
        """R_opt per cell whose reference runs are all done: their best finite EWA eval loss."""
        status = dict(zip(runs.get("run_id", []), runs.get("status", []), strict=True))
        out = {}
        for cell, ids in self.reference_ids().items():
            if not all(status.get(i) in DONE_STATUSES for i in ids):
                continue
            rows = runs[runs.run_id.isin(ids) & (runs.status != "diverged")]
            losses = [x for x in rows.best_ewa_eval_loss if x is not None and math.isfinite(x)]
            if losses:
                out[cell] = float(min(losses))
        return out

    def target_trials(self, targets: dict[Cell, float]) -> list[Trial]:
        """Phase-2 trials of the cells whose target is known, with their real target loss."""
        mult = self.spec.target.budget_multiple if self.spec.target else 1.0
        return [
            dataclasses.replace(
                t, config=target_config(t.point.config, self.data_tokens[t.cell], targets[t.cell], mult)
            )
            for t in self.pending_target
            if t.cell in targets
        ]


def plan_sweep(spec: SweepSpec, cwd: Path | None = None, require_data: bool = True) -> SweepPlan:
    """Expand and check the whole grid. Raises ConfigError/DataError before anything runs.

    With ``require_data=False`` (dry runs) a missing dataset is a warning and sizes are estimated from the
    model preset (vocabulary ``model.vocab_size`` or ESTIMATE_VOCAB).
    """
    points = expand_grid(spec, cwd)
    warnings = _check_datasets(spec, points, require_data)
    for p in points:
        _check_values(spec, p)
    ref = spec.target.reference_batch_size if spec.target else None
    budget_points = [p for p in points if ref is None or p.config.batch_size == ref]
    budget = [_trial(p, p.config, "budget", require_data) for p in budget_points]
    data_tokens = {t.cell: t.data_tokens for t in budget}
    pending = []
    if spec.target:
        for p in points:
            if p.config.batch_size == ref:
                continue
            cell = _trial(p, p.config, "target", require_data).cell
            if cell not in data_tokens:
                raise ConfigError(
                    f"target.reference_batch_size={ref} has no run in the cell of {p.label()}: add {ref} to "
                    f"{spec.where('batch_size')} (its best loss is the target of the other batch sizes)"
                )
            placeholder = target_config(p.config, data_tokens[cell], 0.0, spec.target.budget_multiple)
            pending.append(_trial(p, placeholder, "target", require_data))
    return SweepPlan(spec, budget, pending, data_tokens, warnings)


def _trial(point: GridPoint, config: TrainConfig, phase: str, require_data: bool = True) -> Trial:
    """Resolve ``config`` (cbs.train.resolve_config), or estimate its size where its dataset is missing."""
    if require_data or Path(config.data.path).is_dir():
        from cbs.train import resolve_config

        try:
            r = resolve_config(config)
        except CbsError as exc:
            raise type(exc)(f"grid point ({point.label()}): {exc}") from None
        sizes = (r.spec.n_params, r.token_budget, r.spec.flops_per_token, r.data_tokens, r.batch_tokens)
    else:
        from cbs.model import resolve_model_config

        m = resolve_model_config(config.model, config.model.vocab_size or ESTIMATE_VOCAB)
        tokens = config.token_budget or chinchilla_tokens(m.n_params, config.chinchilla_multiple or 1.0)
        sizes = (
            m.n_params,
            tokens,
            m.flops_per_token,
            config.data_tokens or tokens,
            config.batch_size * m.seq_len,
        )
    n_params, tokens, fpt, data_tokens, batch_tokens = sizes
    return Trial(
        point,
        config,
        phase,
        Cell.of_config(config, n_params, data_tokens),
        int(n_params),
        int(tokens),
        float(fpt),
        int(data_tokens),
        int(batch_tokens),
    )


def _check_datasets(spec: SweepSpec, points: list[GridPoint], require_data: bool) -> list[str]:
    paths = {p.config.data.path: "data.path" for p in points}
    paths.update({es.path: "data.eval_sets" for p in points for es in p.config.data.eval_sets if es.path})
    warnings = []
    for path, key in sorted(paths.items()):
        if Path(path).is_dir():
            continue
        msg = (
            f"{spec.where(key)}: dataset {path} does not exist; prepare it first, e.g. "
            f"`cbs data prepare --builtin stdlib --out {path}` (or from your own corpus: `cbs data prepare --files ...`, see docs/train.md)"
        )
        if require_data:
            raise ConfigError(msg)
        warnings.append(msg + "; sizes below are estimated without it")
    return warnings


def _check_values(spec: SweepSpec, p: GridPoint) -> None:
    c = p.config
    if c.optim.lr <= 0:
        raise ConfigError(f"{spec.where('optim.lr')}: lr must be > 0, got {c.optim.lr} ({p.label()})")
    if c.batch_size < 1:
        raise ConfigError(f"{spec.where('batch_size')}: batch_size must be >= 1, got {c.batch_size}")
    if c.micro_batch_size is not None and (c.micro_batch_size < 1 or c.batch_size % c.micro_batch_size):
        raise ConfigError(
            f"{spec.where('batch_size')}={c.batch_size} is not divisible by "
            f"{spec.where('micro_batch_size')}={c.micro_batch_size}: choose a micro-batch size that divides "
            "every batch size of the grid (or leave micro_batch_size unset: the whole batch at once)"
        )
    for key, value in (("token_budget", c.token_budget), ("chinchilla_multiple", c.chinchilla_multiple)):
        if value is not None and value <= 0:
            raise ConfigError(f"{spec.where(key)}: {key} must be > 0, got {value}")
