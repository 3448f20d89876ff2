"""Steps-to-target per batch size for one (problem, D) cell, with γ and τ tuned over a grid.

Protocol (docs/theory.md), the analogue of the language-model runs: the reference batch B_ref is the
smallest batch of the grid; the target is the best final EWA excess risk over (γ, τ) after one pass over D
samples at B_ref (D/B_ref steps). Every batch then runs (fresh samples, as many as it needs) until its EWA
risk first reaches the target, capped at D/B_ref steps; each batch keeps its fastest (γ, τ) and that run's
curve (`cbs.theory.study` then takes the crossing, interpolated within the step, through `cbs.fit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cbs.errors import ConfigError
from cbs.theory.problem import PowerLawProblem
from cbs.theory.recursion import propagate, stable

CURVE_POINTS = 64
# relative slack on the target: float rounding differs between batched re-runs (row counts change the
# BLAS summation order), and must not make the reference run miss the target its own final risk defines
TARGET_SLACK = 1e-9
MAX_REFINE = 6  # rounds of local search on the fine (γ, τ) lattice


@dataclass(frozen=True)
class Grid:
    """The (B, γ, τ) grid every cell is tuned over; B_ref = min(batch_sizes).

    The search is coarse-to-fine: the coarse grid ``lrs`` × ``taus`` first, then, per batch size, a local
    search from its best coarse setting over the neighbours γ·{1/r, 1, r} (r = ``lr_refine``) × K·{1/2, 1, 2}
    of the EWA window K = 1/(1−τ). EWA windows longer than a run are dropped (they all act as τ → 1).
    """

    batch_sizes: tuple[int, ...]
    lrs: tuple[float, ...]
    taus: tuple[float, ...]
    lr_refine: float = 2**0.5

    def __post_init__(self) -> None:
        if len(set(self.batch_sizes)) < 3 or min(self.batch_sizes) < 1:
            raise ConfigError("need at least 3 distinct batch sizes, all >= 1, to fit S(B) = a + b/B")
        if not self.lrs or min(self.lrs) <= 0:
            raise ConfigError("need at least one step size, all > 0")
        if not self.taus or min(self.taus) < 0 or max(self.taus) >= 1:
            raise ConfigError("EWA decays tau must lie in [0, 1)")
        if not self.lr_refine > 1:
            raise ConfigError("lr_refine must be > 1")

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
    reference_batch: int  # B_ref, whose one pass over the data sets the target


def _coarse(
    problem: PowerLawProblem, batches: np.ndarray, grid: Grid, max_steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable rows (B, γ, τ) of the coarse grid."""
    taus = np.array([t for t in grid.taus if 1.0 / (1.0 - t) <= max_steps] or [min(grid.taus)])
    b, lr, tau = (x.ravel() for x in np.meshgrid(batches, grid.lrs, taus, indexing="ij"))
    ok = stable(problem, b, lr)
    return b[ok], lr[ok], tau[ok]


def _key(b: float, lr: float, tau: float) -> tuple[float, float, float]:
    return (float(b), round(float(np.log(lr)), 9), round(float(np.log1p(-tau)), 9))


def _fine(
    problem: PowerLawProblem,
    centres: list[tuple[float, float, float]],
    grid: Grid,
    max_steps: int,
    seen: set[tuple[float, float, float]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable, not yet ``seen`` neighbours (B, γ·{1/r, 1, r}, K·{1/2, 1, 2}) of each centre (B, γ, τ)."""
    rows = []
    for b, lr, tau in centres:
        window = 1.0 / (1.0 - tau)
        for i in (-1, 0, 1):
            for j in (-1, 0, 1):
                k = window * 2.0**j
                row = (b, lr * grid.lr_refine**i, 1.0 - 1.0 / k)
                if 1.0 <= k <= max_steps and _key(*row) not in seen:
                    seen.add(_key(*row))
                    rows.append(row)
    if not rows:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    b, lr, tau = np.array(rows).T
    ok = stable(problem, b, lr)
    return b[ok], lr[ok], tau[ok]


@dataclass(frozen=True)
class _Best:
    """A batch's best row: steps-to-target when ``reached``, else the run length and final EWA risk."""

    batch: float
    lr: float
    tau: float
    steps: int
    reached: bool
    final_ewa: float

    def better(self, other: _Best | None) -> bool:
        if other is None:
            return True
        if self.reached != other.reached:
            return self.reached
        return self.steps < other.steps if self.reached else self.final_ewa < other.final_ewa


def _search(
    problem: PowerLawProblem,
    batches: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
    caps: np.ndarray,
    target: float | None,
    best: Sequence[_Best | None],
) -> list[_Best | None]:
    """Run ``rows`` (stopping each batch at its first hit of ``target``) and update each batch's best."""
    b, lr, tau = rows
    if b.size == 0:
        return list(best)
    group = np.searchsorted(batches, b)
    run = propagate(problem, b, lr, tau, caps, target=target, group=group)
    out = list(best)
    for k in range(batches.size):
        idx = np.flatnonzero(group == k)
        if idx.size == 0:
            continue
        hits = idx[run.hit_step[idx] > 0]
        row = hits[np.argmin(run.hit_step[hits])] if hits.size else idx[np.argmin(run.final_ewa_risk[idx])]
        cand = _Best(
            batches[k], lr[row], tau[row], int(run.steps[row]), bool(hits.size), run.final_ewa_risk[row]
        )
        if cand.better(out[k]):
            out[k] = cand
    return out


def _tune(
    problem: PowerLawProblem, batches: np.ndarray, grid: Grid, max_steps: int, target: float | None
) -> list[_Best]:
    """Coarse-to-fine search: each batch's fastest row to ``target`` (lowest final EWA risk if None).

    After the coarse grid, each batch's best moves to its best fine neighbour until none is better
    (a local search on the fine lattice γ·r^i, K·2^j, at most ``MAX_REFINE`` rounds).
    """
    rows = _coarse(problem, batches, grid, max_steps)
    seen = {_key(*row) for row in zip(*rows, strict=True)}
    best = _found(
        batches,
        _search(problem, batches, rows, np.full(rows[0].size, max_steps), target, [None] * batches.size),
    )
    moved = list(best)
    for _ in range(MAX_REFINE):
        fine = _fine(problem, [(bb.batch, bb.lr, bb.tau) for bb in moved], grid, max_steps, seen)
        if fine[0].size == 0:
            break
        caps = np.array([best[int(np.searchsorted(batches, x))].steps for x in fine[0]], dtype=np.int64)
        new = _found(batches, _search(problem, batches, fine, caps, target, best))
        moved = [nb for nb, ob in zip(new, best, strict=True) if nb is not ob]
        best = new
        if not moved:
            break
    return best


def _found(batches: np.ndarray, best: list[_Best | None]) -> list[_Best]:
    """``best`` when every batch has a stable row; a `ConfigError` naming the batches without one otherwise."""
    missing = [float(size) for size, bb in zip(batches, best, strict=True) if bb is None]
    if missing:
        raise ConfigError(f"no step size in the grid is stable at B={missing}; add smaller step sizes")
    return [bb for bb in best if bb is not None]


def _curves(problem: PowerLawProblem, best: list[_Best], max_steps: int) -> list:
    """Re-run the best row of each batch and keep its thinned risk curve up to its last step."""
    last = np.array([bb.steps for bb in best])
    schedule = np.unique(np.geomspace(1, max_steps, CURVE_POINTS).round().astype(np.int64))
    schedule = np.union1d(np.r_[0, schedule], np.r_[last, np.maximum(last - 1, 0)])
    b, lr, tau = (np.array([getattr(bb, name) for bb in best]) for name in ("batch", "lr", "tau"))
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
    (ref,) = _tune(problem, np.array([float(grid.b_ref)]), grid, max_steps, None)
    target = float(ref.final_ewa) * (1 + TARGET_SLACK)
    batches = np.array(sorted(set(grid.batch_sizes)), dtype=np.float64)
    best = _tune(problem, batches, grid, max_steps, target)
    curves = _curves(problem, best, max_steps)
    results = tuple(
        BatchResult(int(bb.batch), float(bb.lr), float(bb.tau), bb.steps if bb.reached else None, *curve)
        for bb, curve in zip(best, curves, strict=True)
    )
    return CellResult(problem, int(data_size), target, max_steps, results, grid.b_ref)
