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

CURVE_POINTS = 64


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
    """The best (γ, τ) of one batch size: its steps-to-target (None if no setting reached the target).

    ``curve_*``: that run's excess risks (last iterate, EWA) at ``curve_steps``, thinned to about
    ``CURVE_POINTS`` log-spaced steps plus the steps just before and at the hit.
    """

    batch_size: int
    lr: float
    tau: float
    steps_to_target: int | None
    curve_steps: np.ndarray
    curve_risk: np.ndarray
    curve_ewa_risk: np.ndarray


@dataclass(frozen=True)
class CellResult:
    """One (problem, D) cell: the target and each batch size's best setting."""

    problem: PowerLawProblem
    data_size: int
    target: float  # excess risk
    max_steps: int
    batches: tuple[BatchResult, ...]


def _configs(
    problem: PowerLawProblem, batches: np.ndarray, grid: Grid, max_steps: int
) -> tuple[np.ndarray, ...]:
    """Stable (B, γ, τ) rows; EWA windows 1/(1−τ) longer than the run are dropped (they act as τ→1)."""
    taus = np.array([t for t in grid.taus if 1.0 / (1.0 - t) <= max_steps] or [min(grid.taus)])
    b, lr, tau = (x.ravel() for x in np.meshgrid(batches, grid.lrs, taus, indexing="ij"))
    ok = stable(problem, b, lr)
    return b[ok], lr[ok], tau[ok]


def _curves(problem: PowerLawProblem, best: list[tuple[int, float, float, int]], max_steps: int) -> list:
    """Re-run the best row of each batch and keep its thinned risk curve up to its last step."""
    last = np.array([steps for *_, steps in best])
    schedule = np.unique(np.geomspace(1, max_steps, CURVE_POINTS).round().astype(np.int64))
    schedule = np.union1d(np.r_[0, schedule], np.r_[last, np.maximum(last - 1, 0)])
    b, lr, tau = (np.array(col, dtype=np.float64) for col in list(zip(*best, strict=True))[:3])
    trace = propagate(problem, b, lr, tau, last, record_steps=schedule)
    out = []
    for k in range(len(best)):
        keep = schedule <= last[k]
        out.append((schedule[keep], trace.record_risk[k, keep], trace.record_ewa_risk[k, keep]))
    return out


def steps_to_target(problem: PowerLawProblem, data_size: int, grid: Grid) -> CellResult:
    """Target from B_ref's one pass over ``data_size`` samples, then each batch's steps to reach it."""
    max_steps = int(data_size) // grid.b_ref
    if max_steps < 2:
        raise ConfigError(f"data size {data_size} gives < 2 steps at B_ref={grid.b_ref}; use a larger D")
    b, lr, tau = _configs(problem, np.array([grid.b_ref]), grid, max_steps)
    if b.size == 0:
        raise ConfigError(f"no step size in the grid is stable at B={grid.b_ref}; add smaller step sizes")
    ref = propagate(problem, b, lr, tau, np.full(b.size, max_steps))
    target = float(np.min(ref.final_ewa_risk))

    batches = np.array(sorted(set(grid.batch_sizes)), dtype=np.float64)
    b, lr, tau = _configs(problem, batches, grid, max_steps)
    group = np.searchsorted(batches, b)
    run = propagate(problem, b, lr, tau, np.full(b.size, max_steps), target=target, group=group)
    best, reached = [], []
    for k, size in enumerate(batches):
        rows = np.flatnonzero(group == k)
        if rows.size == 0:
            raise ConfigError(f"no step size in the grid is stable at B={size:g}; add smaller step sizes")
        hits = rows[run.hit_step[rows] > 0]
        reached.append(hits.size > 0)
        if hits.size:
            row = hits[np.argmin(run.hit_step[hits])]
            best.append((int(size), float(lr[row]), float(tau[row]), int(run.hit_step[row])))
        else:  # never reached: keep the setting with the lowest final EWA risk, run to the cap
            row = rows[np.argmin(run.final_ewa_risk[rows])]
            best.append((int(size), float(lr[row]), float(tau[row]), max_steps))
    curves = _curves(problem, best, max_steps)
    results = tuple(
        BatchResult(size, g, t, steps if hit else None, *curve)
        for (size, g, t, steps), hit, curve in zip(best, reached, curves, strict=True)
    )
    return CellResult(problem, int(data_size), target, max_steps, results)
