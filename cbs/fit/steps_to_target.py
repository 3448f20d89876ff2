"""Steps-to-target from a runs table and its curves: the target loss per cell (cbs.results.cell: model, N, D,
dataset, optimizer; its seeds' reference runs set one target), and per batch size and seed the first evaluation
crossing of the target, interpolated between evaluations and minimised over lr, β2, τ: seeds are replicates,
each a point of the cell's S(B) fit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cbs.errors import FitError
from cbs.fit.tables import require_run_tables
from cbs.protocol import B_OPT
from cbs.results import without_branches
from cbs.results.cell import CELL_KEYS, Cell, with_cells

HYPERPARAMETERS = ("lr", "beta2", "ewa_tau")  # minimised over per batch size; their grid ends are kept
TABLE_COLUMNS = [
    *CELL_KEYS,
    "b_opt",
    "batch_size",
    "seed",
    "steps_to_target",
    "target_loss",
    "lr",
    "beta2",
    "ewa_tau",
    "run_id",
    "best_loss",
    "initial_loss",
    *(f"{hp}_grid_{end}" for hp in HYPERPARAMETERS for end in ("min", "max")),
]
GROUP_KEYS = CELL_KEYS


def first_crossing(steps: np.ndarray, losses: np.ndarray, target: float) -> float:
    """Step at which the loss curve first reaches ``target``, interpolated linearly (in step) between the two
    evaluations that bracket the crossing; the first evaluated step if already there; NaN if never reached."""
    below = np.flatnonzero(losses <= target)
    if below.size == 0:
        return float("nan")
    i = int(below[0])
    if i == 0:
        return float(steps[0])
    s0, s1, l0, l1 = steps[i - 1], steps[i], losses[i - 1], losses[i]
    return float(s0 + (l0 - target) / (l0 - l1) * (s1 - s0))


def _primary_curves(runs: pd.DataFrame, curves: pd.DataFrame, eval_set: str | None) -> pd.DataFrame:
    """One (run_id, step, loss) curve per run on its primary eval set, EWA loss where logged."""
    if eval_set is None:
        primary = runs.set_index("run_id")["eval_sets"].map(
            lambda sets: sets[0] if sets is not None and len(sets) else None
        )
        if primary.isna().any():
            missing = list(primary[primary.isna()].index[:3])
            raise FitError(f"runs {missing} list no eval_sets; pass eval_set= (--eval-set) to choose one")
        wanted = curves["run_id"].map(primary)
        cur = curves[curves["eval_set"] == wanted]
    else:
        cur = curves[curves["eval_set"] == eval_set]
        if cur.empty:
            raise FitError(
                f"no curve points on eval set {eval_set!r}; the store has {sorted(curves['eval_set'].unique())}"
            )
    cur = cur.copy()
    # runs trained without EWA log only the raw loss: fall back to it per run, never per point
    has_ewa = cur.groupby("run_id")["ewa_eval_loss"].transform(lambda s: s.notna().any())
    cur["loss"] = np.where(has_ewa, cur["ewa_eval_loss"], cur["eval_loss"])
    return cur.dropna(subset=["loss"]).sort_values(["run_id", "step"])


def reference_batch(grp: pd.DataFrame, b_opt: float | None, column: str = "reference_batch_size") -> float:
    """B_opt of one group: ``b_opt`` if given, else the one value its ``column`` holds (the runs'
    ``reference_batch_size``, which `cbs sweep` and `cbs theory` write, or a steps table's ``b_opt``),
    else the paper's 256."""
    if b_opt is not None:
        return float(b_opt)
    recorded = grp[column].dropna().unique() if column in grp else []
    if len(recorded) > 1:
        raise FitError(f"one group holds several {column} values {sorted(recorded)}; pass --b-opt")
    return float(recorded[0]) if len(recorded) else float(B_OPT)


def _group_targets(
    runs: pd.DataFrame, best: pd.Series, target: object, b_opts: dict[tuple, float]
) -> dict[tuple, float]:
    out = {}
    for key, grp in runs.groupby(GROUP_KEYS, dropna=False, sort=True):
        b_opt = b_opts[key]
        given = grp["target_loss"].dropna().unique()
        if isinstance(target, (int, float)) and not isinstance(target, bool):
            out[key] = float(target)
        elif target == "auto" and given.size == 1:
            out[key] = float(given[0])
        elif target in ("auto", "b-opt"):
            ref = best.reindex(grp.loc[grp["batch_size"] == b_opt, "run_id"]).dropna()
            if ref.empty:
                raise FitError(
                    f"group {Cell(*key).label} has no evaluated run at B_opt={b_opt:g} to set "
                    "the target loss; run that batch size, pass --b-opt, or give --target"
                )
            out[key] = float(ref.min())
        else:
            raise FitError(f"target must be 'auto', 'b-opt' or a loss value, got {target!r}")
    return out


def steps_to_target_table(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    *,
    b_opt: float | None = None,
    target: str | float = "auto",
    eval_set: str | None = None,
) -> pd.DataFrame:
    """Steps-to-target per cell, batch size and seed from a runs table and its curves (``ResultsStore.runs()`` and
    ``.curves()``; ``ResultsStore.tables()`` reads both). The table's first columns are
    the cell's (CELL_KEYS): two datasets or optimizers at the same model and D are two groups.

    b_opt: the reference batch size; None takes each group's recorded ``reference_batch_size`` (else 256).
    It is returned per row (column ``b_opt``) so that `fit_cbs_table` uses the same one.
    target: "auto" (the group's shared ``target_loss`` if its runs carry one, else the paper's rule), "b-opt"
    (the best EWA eval loss of the group's B_opt runs, minimised over lr/β2/τ), or a loss value. A batch size
    that never reached the target has ``steps_to_target`` NaN and no run_id. Per batch size the table also
    keeps what `cbs.fit.diagnostics` needs: ``best_loss`` and ``initial_loss`` (the lowest best and lowest
    first-evaluated loss of its runs) and the ends of the lr/β2/τ grid its runs tried (``lr_grid_min`` …
    ``ewa_tau_grid_max``).
    """
    require_run_tables(runs, curves, "steps_to_target_table")
    runs = with_cells(without_branches(runs))  # `cbs branch` runs are no grid points
    cur = _primary_curves(runs, curves, eval_set)
    best = cur.groupby("run_id")["loss"].min()
    initial = cur.groupby("run_id")["loss"].first()  # cur is sorted by (run_id, step)
    groups = dict(tuple(runs.groupby(GROUP_KEYS, dropna=False, sort=True)))
    b_opts = {key: reference_batch(grp, b_opt) for key, grp in groups.items()}
    targets = _group_targets(runs, best, target, b_opts)
    rows = []
    curve_by_run = dict(tuple(cur.groupby("run_id")))
    for key, grp in groups.items():
        tgt = targets[key]
        for (batch, seed), bgrp in grp.groupby(["batch_size", "seed"], sort=True, dropna=False):  # replicates
            best_row, best_steps = None, np.inf
            for _, run in bgrp.iterrows():
                c = curve_by_run.get(run["run_id"])
                if c is None:
                    continue
                s = first_crossing(c["step"].to_numpy(float), c["loss"].to_numpy(float), tgt)
                if np.isfinite(s) and s < best_steps:
                    best_row, best_steps = run, s
            grid = {
                f"{hp}_grid_{end}": getattr(bgrp[hp], end)()
                for hp in HYPERPARAMETERS
                for end in ("min", "max")
            }
            rows.append(
                {
                    **dict(zip(CELL_KEYS, key, strict=True)),
                    "b_opt": b_opts[key],
                    "batch_size": batch,
                    "seed": seed,
                    "steps_to_target": best_steps if best_row is not None else np.nan,
                    "target_loss": tgt,
                    "lr": best_row["lr"] if best_row is not None else np.nan,
                    "beta2": best_row["beta2"] if best_row is not None else np.nan,
                    "ewa_tau": best_row["ewa_tau"] if best_row is not None else np.nan,
                    "run_id": best_row["run_id"] if best_row is not None else None,
                    "best_loss": best.reindex(bgrp["run_id"]).min(),
                    "initial_loss": initial.reindex(bgrp["run_id"]).min(),
                    **grid,
                }
            )
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)
