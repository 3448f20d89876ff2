"""Steps-to-target per batch size for one (problem, D) cell, with γ and τ tuned over a grid.

Protocol (docs/theory.md), the analogue of the language-model runs: the reference batch B_ref is the
smallest batch of the grid; the target is the best final EWA excess risk over (γ, τ) after one pass over D
samples at B_ref (D/B_ref steps). Every batch then runs (fresh samples, as many as it needs) until its EWA
risk first reaches the target, capped at D/B_ref steps; S(B) = the minimum over (γ, τ) of that step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cbs.errors import ConfigError
from cbs.theory.problem import PowerLawProblem
from cbs.theory.recursion import propagate, stable


@dataclass(frozen=True)
class Grid:
    """The (B, γ, τ) grid every cell is tuned over; B_ref = min(batch_sizes)."""

    batch_sizes: tuple[int, ...]
    lrs: tuple[float, ...]
    taus: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.batch_sizes) < 3 or min(self.batch_sizes) < 1:
            raise ConfigError("need at least 3 batch sizes, all >= 1, to fit S(B) = a + b/B")
        if not self.lrs or min(self.lrs) <= 0:
            raise ConfigError("need at least one step size, all > 0")
        if not self.taus or min(self.taus) < 0 or max(self.taus) >= 1:
            raise ConfigError("EWA decays tau must lie in [0, 1)")

    @property
    def b_ref(self) -> int:
        return min(self.batch_sizes)


@dataclass(frozen=True)
class BatchResult:
    """The best (γ, τ) of one batch size: its steps-to-target (None if no setting reached the target)."""

    batch_size: int
    lr: float
    tau: float
    steps_to_target: int | None


@dataclass(frozen=True)
class CellResult:
    """One (problem, D) cell: the target and each batch size's best setting."""

    problem: PowerLawProblem
    data_size: int
    target: float  # excess risk
    max_steps: int
    batches: tuple[BatchResult, ...]


def _configs(problem: PowerLawProblem, batches: np.ndarray, grid: Grid) -> tuple[np.ndarray, ...]:
    b, lr, tau = (x.ravel() for x in np.meshgrid(batches, grid.lrs, grid.taus, indexing="ij"))
    ok = stable(problem, b, lr)
    return b[ok], lr[ok], tau[ok]


def steps_to_target(problem: PowerLawProblem, data_size: int, grid: Grid) -> CellResult:
    """Target from B_ref's one pass over ``data_size`` samples, then each batch's steps to reach it."""
    max_steps = int(data_size) // grid.b_ref
    if max_steps < 2:
        raise ConfigError(f"data size {data_size} gives < 2 steps at B_ref={grid.b_ref}; use a larger D")
    b, lr, tau = _configs(problem, np.array([grid.b_ref]), grid)
    if b.size == 0:
        raise ConfigError(f"no step size in the grid is stable at B={grid.b_ref}; add smaller --lrs")
    ref = propagate(problem, b, lr, tau, np.full(b.size, max_steps))
    target = float(np.min(ref.final_ewa_risk))

    batches = np.array(sorted(set(grid.batch_sizes)), dtype=np.float64)
    b, lr, tau = _configs(problem, batches, grid)
    group = np.searchsorted(batches, b)
    run = propagate(problem, b, lr, tau, np.full(b.size, max_steps), target=target, group=group)
    results = []
    for k, size in enumerate(batches):
        rows = np.flatnonzero((group == k) & (run.hit_step > 0))
        if rows.size == 0:
            results.append(BatchResult(int(size), float("nan"), float("nan"), None))
            continue
        best = rows[np.argmin(run.hit_step[rows])]
        results.append(BatchResult(int(size), float(lr[best]), float(tau[best]), int(run.hit_step[best])))
    return CellResult(problem, int(data_size), target, max_steps, tuple(results))
