"""Three measures of the critical batch size on the same store, side by side, each with what it cost: the one
place they are computed (`cbs fit cbs`, `cbs fit measures`, the figures and `cbs report` all read them here).

Per cell: the steps-to-target B* (the paper's grid, `fit_cbs_table`), the branched B* at each branch point
(Merrill et al. 2025, `cbs.fit.branched`), and the in-run gradient noise scale B_simple (McCandlish et al.
2018) read from the curves' ``b_simple`` column. B_simple comes from the cell's reference run (B = B_opt) if it
logged it, else from the smallest batch size of the cell whose target-phase run (its fastest arm, the run the
steps table names) logged it — a one-sequence step on one rank sees a single batch size and logs none. It is
read at that run's first evaluation at or after its steps-to-target s*; its interval is the range of the run's
in-run values over its evaluations in [s*/2, 2·s*] (how far the reading moves within a factor 2 of the target
step: the EMA's noise and B_simple's drift over training together). Costs: the whole grid of the cell; the
branches; the B_simple run up to the evaluation read (no extra training).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from cbs.errors import FitError
from cbs.fit.branched import EMA_ALPHA, EPSILON, branched_table
from cbs.fit.cbs_laws import CbsAnalysis, CbsGroup, fit_cbs_table
from cbs.fit.measure_results import (
    B_SIMPLE_WINDOW,
    BranchedMeasure,
    BSimpleMeasure,
    Cost,
    GroupMeasures,
    measures_frame,
)
from cbs.fit.steps_to_target import GROUP_KEYS, steps_to_target_table
from cbs.protocol import CBS_OVERHEAD
from cbs.results import without_branches
from cbs.results.cell import with_cells

NO_GNS = (
    "no run of the cell logged b_simple (in-run GNS needs ≥ 2 micro-batches or ranks per step, and a store of "
    "schema v2 or later)"
)


def group_measures(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    steps: pd.DataFrame,
    *,
    epsilon: float = EPSILON,
    alpha: float = EMA_ALPHA,
) -> dict[tuple, GroupMeasures]:
    """The measures of every cell (keyed by its GROUP_KEYS values) of ``runs`` (branches included) and their
    ``curves``, given the cells' steps-to-target table ``steps`` (`steps_to_target_table` of the same runs)."""
    grid = with_cells(without_branches(runs))
    branched = branched_table(runs, curves, epsilon=epsilon, alpha=alpha)
    parent_cell = with_cells(runs).set_index("run_id")[GROUP_KEYS]
    branch_cells = [tuple(parent_cell.loc[p]) for p in branched["parent_run_id"]]
    out = {}
    for key, cell in grid.groupby(GROUP_KEYS, sort=True):
        mine = branched[[c == key for c in branch_cells]]
        cell_steps = steps[(steps[GROUP_KEYS] == pd.Series(key, index=GROUP_KEYS)).all(axis=1)]
        b_simple, note = _b_simple(cell_steps, cell, curves)
        out[key] = GroupMeasures(
            steps_cost=_cost(cell),
            b_simple=b_simple,
            b_simple_note=note,
            branched=[_branched(b, epsilon, alpha) for b in mine.itertuples()],
        )
    return out


def with_measures(analysis: CbsAnalysis, measures: dict[tuple, GroupMeasures]) -> CbsAnalysis:
    """``analysis`` with each group's measures attached (groups of no cell in ``measures`` keep None)."""
    groups = [dataclasses.replace(g, measures=measures.get(g.cell)) for g in analysis.groups]
    return dataclasses.replace(analysis, groups=groups)


def fit_store_cbs(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    steps: pd.DataFrame,
    *,
    b_opt: float | None = None,
    overhead: float = CBS_OVERHEAD,
    n_boot: int = 1000,
    seed: int = 0,
    epsilon: float = EPSILON,
    alpha: float = EMA_ALPHA,
) -> CbsAnalysis:
    """`fit_cbs_table` of a store's steps table ``steps``, each group carrying its `group_measures`."""
    analysis = fit_cbs_table(steps, b_opt=b_opt, overhead=overhead, n_boot=n_boot, seed=seed)
    return with_measures(analysis, group_measures(runs, curves, steps, epsilon=epsilon, alpha=alpha))


def measures_table(
    source: object,
    *,
    b_opt: float | None = None,
    target: str | float = "auto",
    overhead: float = CBS_OVERHEAD,
    epsilon: float = EPSILON,
    alpha: float = EMA_ALPHA,
    n_boot: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """`measures_frame` of the store's groups: one row per cell and measure with value, interval, cost and a
    note; where no cell's S(B) can be fitted, the steps-to-target rows are NaN with the reason and the other
    measures are still given. ``source``: a results store (or its path) or a (runs, curves) pair."""
    runs, curves = _full(source)
    steps = steps_to_target_table(runs, curves, b_opt=b_opt, target=target)
    measures = group_measures(runs, curves, steps, epsilon=epsilon, alpha=alpha)
    try:
        analysis = fit_cbs_table(steps, b_opt=b_opt, overhead=overhead, n_boot=n_boot, seed=seed)
        groups = with_measures(analysis, measures).groups
    except FitError as exc:
        groups = [
            CbsGroup(model=str(m), n_params=float(n), data_tokens=float(d), dataset=str(ds), optimizer=str(o),
                     fit=None, error=str(exc), measures=gm)
            for (m, n, d, ds, o), gm in measures.items()
        ]  # fmt: skip
    return measures_frame(groups)


def _full(source: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs (branches included) and curves of a store or a (runs, curves) pair."""
    if isinstance(source, tuple) and len(source) == 2:
        return source[0].copy(), source[1]
    from cbs.results import ResultsStore

    store = source if isinstance(source, ResultsStore) else ResultsStore(Path(source))  # type: ignore[arg-type]
    return store.tables()


def _cost(runs: pd.DataFrame) -> Cost:
    """Tokens, FLOPs and wall seconds that ``runs`` trained."""
    flops = float((runs["tokens"] * runs["flops_per_token"]).sum())
    return Cost(int(runs["tokens"].sum()), flops, float(runs["wall_time_s"].sum()), len(runs))


def _branched(b: Any, epsilon: float, alpha: float) -> BranchedMeasure:
    """A `branched_table` row as a result object."""
    cost = Cost(int(b.tokens), float(b.flops), float(b.wall_time_s), int(b.n_runs))
    return BranchedMeasure(
        parent_run_id=str(b.parent_run_id),
        batch_size=float(b.batch_size),
        fraction=float(b.branch_fraction),
        branch_step=int(b.branch_step),
        k_star=None if pd.isna(b.k_star) else int(b.k_star),
        cbs=float(b.cbs),
        cbs_ci=(float(b.cbs_lo), float(b.cbs_hi)),
        losses={int(k): float(v) for k, v in b.losses.items()},
        epsilon=epsilon,
        ema=alpha,
        cost=cost,
        note=str(b.note),
    )


def _b_simple(
    steps: pd.DataFrame, cell: pd.DataFrame, curves: pd.DataFrame
) -> tuple[BSimpleMeasure | None, str]:
    """B_simple of the cell (see the module docstring), and a note: why it is None, or why it was not read
    from the reference run."""
    if (
        "b_simple" not in curves
        or not curves[curves["run_id"].isin(cell["run_id"])]["b_simple"].notna().any()
    ):
        return None, NO_GNS
    reached = steps[steps["run_id"].notna()]
    if reached.empty:
        return None, "no batch size of the cell reached the target"
    b_opt = float(reached["b_opt"].iloc[0])
    order = reached.assign(other=reached["batch_size"] != b_opt).sort_values(
        ["other", "batch_size", "steps_to_target", "seed"]
    )
    skipped: list[float] = []
    for row in order.itertuples():
        found = _read_b_simple(row, cell, curves, reference=float(row.batch_size) == b_opt)
        if found is not None:
            return found, _skipped_note(skipped, b_opt)
        skipped += [] if float(row.batch_size) in skipped else [float(row.batch_size)]  # seeds: once each
    return None, f"no run that reached the target (B = {_batches(skipped)}) logged b_simple at or after it"


def _skipped_note(skipped: list[float], b_opt: float) -> str:
    """Why B_simple is not read from the runs before the one it is read from ('' when from the first)."""
    others = [b for b in skipped if b != b_opt]
    ref = f"the reference B={b_opt:g} run" if b_opt in skipped else ""
    parts = [ref, f"B={_batches(others)}" if others else ""]
    return (
        (" and ".join(p for p in parts if p) + " logged no b_simple at or after the target step")
        if skipped
        else ""
    )


def _batches(values: list[float]) -> str:
    return ", ".join(f"{b:g}" for b in values)


def _read_b_simple(
    row: Any, cell: pd.DataFrame, curves: pd.DataFrame, reference: bool
) -> BSimpleMeasure | None:
    """B_simple of the steps table's run ``row`` at its first evaluation at or after its steps-to-target, with
    the range over [s*/2, 2·s*]; None where it logged none at or after s*."""
    at = float(row.steps_to_target)
    cur = (
        curves[curves["run_id"] == row.run_id]
        .dropna(subset=["b_simple"])
        .drop_duplicates("step")  # one value per evaluation, whatever the eval sets
        .sort_values("step")
    )
    after = cur[cur["step"] >= at]
    if after.empty:
        return None
    first = after.iloc[0]
    lo, hi = B_SIMPLE_WINDOW
    window = cur[(cur["step"] >= lo * at) & (cur["step"] <= max(hi * at, first["step"]))]["b_simple"]
    tokens = int(first["tokens"])
    fpt = float(cell.set_index("run_id").loc[row.run_id, "flops_per_token"])
    return BSimpleMeasure(
        value=float(first["b_simple"]),
        ci=(float(window.min()), float(window.max())) if len(window) >= 2 else None,
        run_id=str(row.run_id),
        batch_size=float(row.batch_size),
        reference=reference,
        step=int(first["step"]),
        target_step=at,
        n_evaluations=len(window),
        cost=Cost(tokens, tokens * fpt, float(first["wall_time_s"]), 1),
    )
