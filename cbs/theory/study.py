"""The CBS study: B* against data size D (at a fixed dim) and against dim (at a fixed D), with fits.

Each (dim, D) cell gives S(B) per batch size (`cbs.theory.sweep`); `cbs.fit.fit_cbs` turns it into the CBS
B* = (1 + o)·B_ref + o·b/a, and `cbs.fit.fit_power_law` fits B* ∝ D^k, reported next to the corollary.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from cbs.config import GNSConfig
from cbs.errors import ConfigError, FitError
from cbs.fit import CbsFit, FitWarning, PowerLawFit, fit_cbs_table, fit_power_law, steps_to_target_table
from cbs.fit.result import SolverDiagnostics
from cbs.protocol import CBS_OVERHEAD
from cbs.results import CURVES_SCHEMA, RUNS_SCHEMA, ResultsStore
from cbs.results.store import to_table
from cbs.theory.noise_scale import noise_scale
from cbs.theory.problem import PowerLawProblem
from cbs.theory.result import StudyResult
from cbs.theory.runs import EXPERIMENT, cell_rows, dataset_name
from cbs.theory.sweep import CellResult, Grid, steps_to_target

DIM_FLAT_FACTOR = 4.0  # dims at least this multiple of k*(D) count as "dim ≫ effective dimension"


def _dim_covers(dim: int, k_star: float) -> bool:
    """dim >= DIM_FLAT_FACTOR·k* (up to float rounding: 4·(2^15)^0.4 is 256.00000000000006)."""
    return dim >= DIM_FLAT_FACTOR * k_star * (1 - 1e-9)


def default_grid() -> Grid:
    """B = 1..4096 (×2); coarse γ = 2^−12..2 (×2) and EWA windows 1/(1−τ) = 1..4^8 (×4; 1 = last iterate),
    refined to γ ×√2 and windows ×2 around each batch's best."""
    return Grid(
        batch_sizes=tuple(2**k for k in range(13)),
        lrs=tuple(2.0**k for k in range(-12, 2)),
        taus=tuple(1.0 - 4.0**-k for k in range(9)),
    )


@dataclass(frozen=True)
class StudySpec:
    """What `cbs theory` sweeps: D at ``dim``, and ``dims`` at ``dim_data_size``."""

    a: float = 2.0
    b: float = 4.0
    sigma: float = 1.0
    dim: int | None = None  # None: auto_dim(), the smallest power of 2 >= 4·k*(max D), at least 64
    data_sizes: tuple[int, ...] = tuple(2**k for k in range(10, 16))
    dims: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256)
    dim_data_size: int = 2**12
    grid: Grid = field(default_factory=default_grid)
    overhead: float = CBS_OVERHEAD
    n_boot: int = 1000
    seed: int = 0
    gns_seeds: int = 256  # sampled SGD runs for the in-run GNS beside the exact one (0: skip it)

    def __post_init__(self) -> None:
        PowerLawProblem(self.a, self.b, self.sigma, 1)  # validates a, b, sigma
        if self.dim is None:
            object.__setattr__(self, "dim", self.auto_dim())
        PowerLawProblem(self.a, self.b, self.sigma, self.sweep_dim)
        if len(set(self.data_sizes)) < 3:
            raise ConfigError("give at least 3 distinct --data-sizes to fit B* ∝ D^k (6 or more recommended)")
        if self.gns_seeds == 1 or self.gns_seeds < 0:
            raise ConfigError(f"--gns-seeds {self.gns_seeds}: give 0 (skip the GNS check) or at least 2")
        if len(set(self.dims)) < 2 or min(self.dims) < 1:
            raise ConfigError("give at least 2 distinct positive --dims to compare B* across dims")
        small = [d for d in (*self.data_sizes, self.dim_data_size) if d < 8 * self.grid.b_ref]
        if small:
            raise ConfigError(
                f"data sizes {small} leave fewer than 8 steps at the reference batch {self.grid.b_ref}; "
                "use data sizes of at least 8 × the smallest batch size"
            )

    def auto_dim(self) -> int:
        """Smallest power of 2 that is >= DIM_FLAT_FACTOR·k*(D) at the largest D (and >= 64)."""
        k_star = PowerLawProblem(self.a, self.b, self.sigma, 1).effective_dim(max(self.data_sizes))
        if not np.isfinite(k_star):
            raise ConfigError("with sigma = 0 the effective dimension is unbounded: pass --dim explicitly")
        return max(64, 1 << int(np.ceil(np.log2(max(DIM_FLAT_FACTOR * k_star, 1.0)))))

    def problem(self, dim: int) -> PowerLawProblem:
        return PowerLawProblem(self.a, self.b, self.sigma, dim)

    @property
    def sweep_dim(self) -> int:
        """The dim of the data sweep: ``dim``, or `auto_dim` where it was not given."""
        return cast(int, self.dim)  # __post_init__ fills it in


@dataclass(frozen=True)
class CellFit:
    """A cell's store rows, its steps-to-target table and CBS fit (``fit`` None, with ``error``, if refused)."""

    cell: CellResult
    rows: list[tuple[dict[str, object], list[dict[str, object]]]]
    table: pd.DataFrame  # cbs.fit.steps_to_target_table of the rows
    fit: CbsFit | None
    error: str | None
    seconds: float
    overhead: float
    warnings: list[FitWarning] = field(default_factory=list)  # the group's (cbs.fit.diagnostics)

    @property
    def reached(self) -> pd.DataFrame:
        """The rows of ``table`` whose batch size reached the target."""
        return self.table[np.isfinite(self.table.steps_to_target.to_numpy(float))]

    @property
    def cbs_direct(self) -> float | None:
        """The CBS read off the reached batch sizes without the hyperbola (`direct_cbs`)."""
        reached = self.reached
        return direct_cbs(
            reached.batch_size.to_numpy(float), reached.steps_to_target.to_numpy(float), self.overhead
        )

    @property
    def fitted(self) -> CbsFit:
        """The cell's CBS fit; FitError (with the reason) for a cell without one."""
        if self.fit is None:
            raise FitError(
                f"the cell dim={self.cell.problem.dim}, D={self.cell.data_size} has no CBS fit: {self.error}"
            )
        return self.fit

    def summary(self) -> dict[str, object]:
        reached = self.reached
        out: dict[str, object] = {
            "dim": self.cell.problem.dim,
            "data_size": self.cell.data_size,
            "target_excess_risk": self.cell.target,
            "batch_sizes": reached.batch_size.astype(int).tolist(),
            "steps_to_target": reached.steps_to_target.astype(float).tolist(),
            "unreached_batch_sizes": self.table.batch_size[~self.table.index.isin(reached.index)].tolist(),
            "effective_dim": self.cell.problem.effective_dim(self.cell.data_size),
            "seconds": self.seconds,
            "warnings": [w.to_dict() for w in self.warnings],
        }
        out["cbs_direct"] = self.cbs_direct
        if self.fit is None:
            return {**out, "cbs": None, "cbs_ci": None, "error": self.error}
        f = self.fit
        return {
            **out,
            "cbs": f.cbs,
            "cbs_ci": list(f.cbs_ci),
            "b_noise": f.b_noise,
            "b_noise_ci": list(f.b_noise_ci),
            "s_min": f.s_min,
            "rmse_log": f.rmse_log,
            "alpha_free": f.alpha_variant.alpha if f.alpha_variant else None,
            "diagnostics": f.diagnostics.to_dict(),
        }


def direct_cbs(batch_sizes: np.ndarray, steps: np.ndarray, overhead: float) -> float | None:
    """The CBS read off the measured S(B), no hyperbola: the largest B with S(B)·B <= (1 + o)·S(B_ref)·B_ref.

    B_ref is the smallest batch; the crossing is interpolated in (log B, log S·B) between the two grid batch
    sizes around it. None when every measured batch stays within the overhead (the CBS is beyond the grid).
    """
    order = np.argsort(batch_sizes)
    batch, cost = np.asarray(batch_sizes, float)[order], (np.asarray(steps, float) * batch_sizes)[order]
    ratio = cost / cost[0]
    above = np.flatnonzero(ratio > 1 + overhead)
    if above.size == 0:
        return None
    i = int(above[0])
    x = np.log(ratio[i - 1 : i + 1])
    return float(np.exp(np.interp(np.log1p(overhead), x, np.log(batch[i - 1 : i + 1]))))


def run_cell(spec: StudySpec, dim: int, data_size: int) -> CellFit:
    """Tune (γ, τ) per batch size for one (dim, D), then steps-to-target and CBS through the fit layer.

    The cell's runs go through `cbs.fit.steps_to_target_table` (first crossing of the target, interpolated
    between the stored evaluations at hit−1 and hit) and `cbs.fit.fit_cbs_table`, exactly as `cbs fit cbs`
    would read them from the store.
    """
    start = time.perf_counter()
    cell = steps_to_target(spec.problem(dim), data_size, spec.grid)
    seconds = time.perf_counter() - start
    rows = cell_rows(cell, seconds)
    runs = to_table([run for run, _ in rows], RUNS_SCHEMA, "runs").to_pandas()
    curves = [dict(point, run_id=run["run_id"]) for run, curve in rows for point in curve]
    curves = to_table(curves, CURVES_SCHEMA, "curves").to_pandas()
    table = steps_to_target_table(runs, curves, b_opt=spec.grid.b_ref, target="auto")
    try:
        analysis = fit_cbs_table(
            table, b_opt=spec.grid.b_ref, overhead=spec.overhead, n_boot=spec.n_boot, seed=spec.seed
        )
    except FitError as exc:  # reported per cell; the study goes on
        return CellFit(cell, rows, table, None, str(exc), seconds, spec.overhead)
    (group,) = analysis.groups
    return CellFit(cell, rows, table, group.fit, group.error, seconds, spec.overhead, group.warnings)


GNS_MICRO_BATCHES = 4  # the GNS check's b_small = B / 4, like 4 micro-batches of gradient accumulation


def gns_check(spec: StudySpec, cell: CellFit) -> dict[str, object]:
    """Exact vs in-run B_simple (cbs.theory.noise_scale) for the cell's batch size closest to its CBS (the
    hyperbola's, else the direct reading, else the median batch) among those >= 4, with its tuned step."""
    runs = [b for b in cell.cell.batches if b.batch_size >= GNS_MICRO_BATCHES]
    if not runs:
        raise ConfigError(f"the GNS check needs a batch size >= {GNS_MICRO_BATCHES} in --batch-sizes")
    centre = (
        (cell.fit.cbs if cell.fit else None)
        or cell.cbs_direct
        or float(np.median([b.batch_size for b in runs]))
    )
    run = min(runs, key=lambda b: abs(np.log(b.batch_size / centre)))
    n_steps = cell.cell.data_size // run.batch_size
    out = noise_scale(
        cell.cell.problem,
        run.batch_size,
        run.batch_size // GNS_MICRO_BATCHES,
        run.lr,
        n_steps,
        decay=GNSConfig().ema_decay,
        n_seeds=spec.gns_seeds,
        seed=spec.seed,
    )
    return {"dim": cell.cell.problem.dim, "data_size": cell.cell.data_size, **out}


def _power_law(x: Sequence[float], y: Sequence[float], spec: StudySpec) -> PowerLawFit:
    return fit_power_law(x, y, n_boot=spec.n_boot, seed=spec.seed)


def _grid_warnings(
    spec: StudySpec, by_data: list[CellFit], by_dim: list[CellFit], exponent: float, theory: float
) -> list[FitWarning]:
    """``b_noise_beyond_grid``: a cell's B_noise above the largest batch size (S_min is extrapolated, not seen);
    ``exponent_outside_grid``: the fitted k rests on cells whose B* lies outside the batch sizes that reached
    the target (their ``cbs_outside_grid``), or leaves out cells refused because B* lies beyond the grid."""
    top = max(spec.grid.batch_sizes)
    out = []
    beyond = [
        (c.cell.problem.dim, c.cell.data_size) for c in (*by_data, *by_dim) if c.fit and c.fit.b_noise > top
    ]
    if beyond:
        out.append(
            FitWarning(
                "b_noise_beyond_grid",
                f"B_noise above the largest batch size {top} at (dim, D) = {beyond}: S_min and B* are extrapolated "
                "from the hyperbola, not measured; add larger --batch-sizes",
                {"largest_batch_size": top, "cells": beyond},
            )
        )
    outside = [c.cell.data_size for c in by_data if any(w.code == "cbs_outside_grid" for w in c.warnings)]
    refused = [c.cell.data_size for c in by_data if c.fit is None]
    if outside or refused:
        parts = [f"B* outside the reached batch sizes at D = {outside}"] if outside else []
        parts += [f"no CBS fit at D = {refused} (left out)"] if refused else []
        out.append(
            FitWarning(
                "exponent_outside_grid",
                f"the fitted k = {exponent:.3f} (corollary {theory:.3f}) rests on {'; '.join(parts)}: "
                "an extrapolation, not a measurement; widen --batch-sizes",
                {
                    "exponent": exponent,
                    "exponent_theory": theory,
                    "data_sizes_outside": outside,
                    "data_sizes_refused": refused,
                },
            )
        )
    return out


def _check_store(store: ResultsStore, spec: StudySpec) -> None:
    """Refuse a store that already holds theory runs of another problem (their groups would be mixed)."""
    if not store.runs_dir.is_dir():
        return
    runs = store.runs()
    theirs = set(runs.loc[runs.experiment == EXPERIMENT, "dataset"]) - {dataset_name(spec.problem(1))}
    if theirs:
        raise ConfigError(
            f"{store.root} already holds theory runs of {sorted(theirs)}; write this problem "
            f"({dataset_name(spec.problem(1))}) to another --results folder"
        )


def run_study(spec: StudySpec, store: ResultsStore | None = None) -> StudyResult:
    """Run both sweeps (each distinct (dim, D) cell once), write the runs, and return the study's result."""
    if store is not None:
        _check_store(store, spec)
    dim = spec.sweep_dim
    cells: dict[tuple[int, int], CellFit] = {}
    timings = {}
    for name, keys in (
        ("data_sweep", [(dim, d) for d in sorted(set(spec.data_sizes))]),
        ("dim_sweep", [(d, spec.dim_data_size) for d in sorted(set(spec.dims))]),
    ):
        start = time.perf_counter()
        for key in keys:
            if key not in cells:
                cells[key] = run_cell(spec, *key)
                if store is not None:
                    for run, curve in cells[key].rows:
                        store.write_run(run, curve)
        timings[name] = time.perf_counter() - start

    by_data = [cells[(dim, d)] for d in sorted(set(spec.data_sizes))]
    by_dim = [cells[(d, spec.dim_data_size)] for d in sorted(set(spec.dims))]
    ok = [c for c in by_data if c.fit is not None]
    if len(ok) < 3:
        raise FitError(
            f"only {len(ok)} data sizes gave a CBS fit (need 3): "
            + "; ".join(f"D={c.cell.data_size}: {c.error}" for c in by_data if c.fit is None)
        )
    sizes = [c.cell.data_size for c in ok]
    exp_cbs = _power_law(sizes, [c.fitted.cbs for c in ok], spec)
    exp_noise = _power_law(sizes, [c.fitted.b_noise for c in ok], spec)
    direct = [(c.cell.data_size, v) for c in by_data if (v := c.cbs_direct) is not None]
    exp_direct = (
        _power_law([d for d, _ in direct], [v for _, v in direct], spec) if len(direct) >= 3 else None
    )
    problem = spec.problem(dim)
    k_star = problem.effective_dim(spec.dim_data_size)
    big = [c for c in by_dim if c.fit is not None and _dim_covers(c.cell.problem.dim, k_star)]
    flat: dict[str, object] = {"dims": [c.cell.problem.dim for c in big], "min_dim_factor": DIM_FLAT_FACTOR}
    if len(big) >= 2:
        values = np.array([c.fitted.cbs for c in big])
        flat["relative_change"] = float((values.max() - values.min()) / values.max())
        if len(big) >= 3:
            in_dim = _power_law([c.cell.problem.dim for c in big], values.tolist(), spec)
            flat["exponent"] = {
                "exponent": in_dim.exponent,
                "exponent_ci": list(in_dim.exponent_ci),
                "coefficient": in_dim.coefficient,
            }
    short = [d for d in sizes if not _dim_covers(dim, problem.effective_dim(d))]
    warnings = []
    if short:
        warnings.append(
            FitWarning(
                "dim_truncation",
                f"dim {dim} < {DIM_FLAT_FACTOR:g}·k*(D) for D = {short}: the truncation may bias B* there; "
                "raise --dim (or leave it out to choose it automatically)",
                {"dim": dim, "data_sizes": short},
            )
        )
    warnings += _grid_warnings(spec, by_data, by_dim, exp_cbs.exponent, problem.exponent_theory)
    fits = [c.fit.diagnostics for c in cells.values() if c.fit is not None]
    start = time.perf_counter()
    gns = gns_check(spec, by_data[-1]) if spec.gns_seeds else None
    timings["gns"] = time.perf_counter() - start
    return StudyResult(
        experiment=EXPERIMENT,
        warnings=warnings,
        problem={"a": spec.a, "b": spec.b, "sigma": spec.sigma, "dim": dim},
        conventions={
            "spectrum": "lambda_i = i^-a (lambda_1 = 1)",
            "source": "lambda_i * (w*_i)^2 = i^-b, w_0 = 0",
            "risk": "excess risk 1/2 (w - w*)^T H (w - w*) (the irreducible sigma^2/2 not counted)",
            "target": "best final bias-corrected-EWA excess risk over (lr, tau) after D samples at B_ref",
            "steps_to_target": "first crossing of the target, interpolated between steps (cbs.fit)",
            "cbs": "(1 + overhead) * B_ref + overhead * b / a from S(B) = a + b/B (cbs.fit.fit_cbs)",
            "cbs_direct": "largest B with measured S(B)*B <= (1 + overhead) * S(B_ref)*B_ref (log-interpolated)",
        },
        b_ref=spec.grid.b_ref,
        overhead=spec.overhead,
        exponent_theory=problem.exponent_theory,
        exponent_data=exp_cbs.exponent,
        exponent_data_ci=exp_cbs.exponent_ci,
        exponent_data_b_noise=exp_noise.exponent,
        exponent_data_b_noise_ci=exp_noise.exponent_ci,
        exponent_data_direct=exp_direct.exponent if exp_direct else None,
        exponent_data_direct_ci=exp_direct.exponent_ci if exp_direct else None,
        cbs_by_data=[c.summary() for c in by_data],
        dim_data_size=spec.dim_data_size,
        effective_dim=k_star,
        cbs_by_dim=[c.summary() for c in by_dim],
        dim_flatness=flat,
        gns=gns,
        seconds=timings,
        coefficient_data=exp_cbs.coefficient,
        diagnostics=SolverDiagnostics.combine(fits, "per-cell S(B) fits (scipy least_squares)"),
    )
