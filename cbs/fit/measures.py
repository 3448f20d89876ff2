"""Three measures of the critical batch size on the same store, side by side, each with what it cost.

Per (model, data budget) cell: the steps-to-target B* (the paper's grid, `fit_cbs_table`), the branched B*
at each branch point (Merrill et al. 2025, `cbs.fit.branched`), and the in-run gradient noise scale
B_simple (McCandlish et al. 2018) of the cell's reference run at its target step, read from the curves'
``b_simple`` column where the store has one. Costs are the tokens (FLOPs, wall seconds) each measure trained: the whole
grid of the cell; the branches; the reference run up to its target step (B_simple needs no extra training).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from cbs.errors import FitError
from cbs.fit.branched import EMA_ALPHA, EPSILON, branched_table
from cbs.fit.cbs_laws import fit_cbs_table
from cbs.fit.steps_to_target import GROUP_KEYS, steps_to_target_table
from cbs.protocol import CBS_OVERHEAD
from cbs.results import without_branches
from cbs.results.cell import with_cells

if TYPE_CHECKING:
    from pathlib import Path

    from cbs.results import ResultsStore

MEASURE_COLUMNS = [*GROUP_KEYS, "measure", "value", "lo", "hi", "tokens", "flops", "wall_time_s", "note"]
NO_GNS = "no b_simple column in the curves (in-run GNS not logged by the cbs that trained these runs)"


def measures_table(
    source: ResultsStore | str | Path | tuple[pd.DataFrame, pd.DataFrame],
    *,
    b_opt: float | None = None,
    target: str | float = "auto",
    overhead: float = CBS_OVERHEAD,
    epsilon: float = EPSILON,
    alpha: float = EMA_ALPHA,
    n_boot: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per cell and measure (``steps-to-target``, ``branched@<fraction>`` per parent and branch point,
    ``b_simple``): value, interval (NaN where the measure has none), tokens, FLOPs and wall seconds trained for it, and a
    note saying why a value is missing. ``source``: a results store or a (runs, curves) pair."""
    all_runs, curves = _full(source)
    runs = without_branches(all_runs)
    steps = steps_to_target_table(runs, curves, b_opt=b_opt, target=target)
    runs = with_cells(runs)  # grouped by the one cell key, as the steps table is
    try:
        groups = {
            (g.model, g.n_params, g.data_tokens, g.dataset, g.optimizer): g
            for g in fit_cbs_table(steps, b_opt=b_opt, overhead=overhead, n_boot=n_boot, seed=seed).groups
        }
        why = None
    except FitError as exc:
        groups, why = {}, str(exc)
    branched = branched_table(all_runs, curves, epsilon=epsilon, alpha=alpha)
    parent_cell = with_cells(all_runs).set_index("run_id")[GROUP_KEYS]
    branch_cells = [tuple(parent_cell.loc[p]) for p in branched["parent_run_id"]]
    rows = []
    for key, cell in runs.groupby(GROUP_KEYS, sort=True):
        cost = _cost(cell)
        g = groups.get(key)
        fit = g.fit if g else None
        note = (g.error if g else why) or ""
        lo, hi = fit.cbs_ci if fit else (math.nan, math.nan)
        rows.append(_row(key, "steps-to-target", fit.cbs if fit else math.nan, lo, hi, *cost, note))
        mine = branched[[c == key for c in branch_cells]]
        for b in mine.itertuples():
            label = f"branched@{b.branch_fraction:g} (B={b.batch_size})"
            rows.append(_row(key, label, b.cbs, b.cbs_lo, b.cbs_hi, b.tokens, b.flops, b.wall_time_s, b.note))
        rows.append(_row(key, "b_simple", *_b_simple(steps, key, cell, curves)))
    return pd.DataFrame(rows, columns=MEASURE_COLUMNS)


def _full(
    source: ResultsStore | str | Path | tuple[pd.DataFrame, pd.DataFrame],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs (branches included) and curves of a store or a (runs, curves) pair."""
    if isinstance(source, tuple) and len(source) == 2:
        return source[0].copy(), source[1]
    from pathlib import Path

    from cbs.results import ResultsStore

    store = source if isinstance(source, ResultsStore) else ResultsStore(Path(source))
    runs = store.runs()
    return runs, store.curves(runs["run_id"])


def _cost(runs: pd.DataFrame) -> tuple[int, float, float]:
    """Tokens, FLOPs and wall seconds that ``runs`` trained."""
    flops = float((runs["tokens"] * runs["flops_per_token"]).sum())
    return int(runs["tokens"].sum()), flops, float(runs["wall_time_s"].sum())


def _row(key: tuple, measure: str, *values) -> dict:
    """A MEASURE_COLUMNS row: value, lo, hi, tokens, flops, wall_time_s, note after the cell and measure."""
    return dict(zip(MEASURE_COLUMNS, [*key, measure, *values], strict=True))


def _b_simple(steps: pd.DataFrame, key: tuple, cell: pd.DataFrame, curves: pd.DataFrame) -> tuple:
    """B_simple of the cell's reference run at its (first evaluation at or after the) target step, with the
    tokens of that run up to there; NaN and the reason where it is not available."""
    nan = (math.nan, math.nan, math.nan, 0, 0.0, 0.0)
    if "b_simple" not in curves:
        return (*nan, NO_GNS)
    grp = steps[(steps[GROUP_KEYS] == pd.Series(key, index=GROUP_KEYS)).all(axis=1)]
    ref = grp[(grp["batch_size"] == grp["b_opt"]) & grp["run_id"].notna()]
    if ref.empty:
        return (*nan, "the reference batch size did not reach the target")
    run_id, at = ref["run_id"].iloc[0], float(ref["steps_to_target"].iloc[0])
    cur = curves[(curves["run_id"] == run_id) & (curves["step"] >= at)].dropna(subset=["b_simple"])
    if cur.empty:
        return (*nan, f"run {run_id} logged no b_simple at or after its target step")
    first = cur.sort_values("step").iloc[0]
    fpt = float(cell.set_index("run_id").loc[run_id, "flops_per_token"])
    tokens = int(first["tokens"])
    wall = float(first["wall_time_s"])
    return float(first["b_simple"]), math.nan, math.nan, tokens, tokens * fpt, wall, ""
