"""A runs table and its curves as the table of `cbs fit hparams`: one row per run with its loss at the budget D.

A run counts for its cell (N, D) when its loss at D tokens is the loss of a run trained to D: it trained
through D tokens (to within one optimizer step) and either its budget was D or its lr schedule is constant (a constant-lr run stopped later,
e.g. by the stop-at-target protocol, passed through exactly the state a D-token run ends in). The loss is the
EWA eval loss of its primary eval set at D, interpolated in log tokens between the evaluations bracketing D
(the last evaluation for a run that ended within a step short of D).
Other runs stay in the table with ``loss`` NaN and ``loss_note`` saying why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cbs.fit.steps_to_target import _primary_curves
from cbs.fit.tables import require_run_tables
from cbs.results import without_branches

RUN_COLUMNS = ["run_id", "preset", "n_params", "flops_per_token", "batch_size", "batch_tokens", "lr", "beta2",
               "ewa_tau", "schedule", "token_budget", "status", "tokens"]  # fmt: skip


def _loss_at(run: pd.Series, curve: pd.DataFrame | None) -> tuple[float, str]:
    d = float(run["data_tokens"])
    if run["status"] in ("diverged", "failed"):
        return np.nan, run["status"]
    if curve is None or curve.empty:
        return np.nan, "no evaluated loss"
    tokens, loss = curve["tokens"].to_numpy(float), curve["loss"].to_numpy(float)
    if tokens[-1] < d - float(run["batch_tokens"]):  # a D-token run ends within one step of D
        return np.nan, f"stopped at {tokens[-1]:.0f} tokens, before D (censored: {run['status']})"
    if run["schedule"] != "constant" and run["token_budget"] != d:
        return np.nan, f"{run['schedule']} schedule decays to its own budget {run['token_budget']}, not D"
    return float(np.interp(np.log(d), np.log(tokens), loss)), ""


def run_hparam_table(
    runs: pd.DataFrame, curves: pd.DataFrame, *, eval_set: str | None = None
) -> pd.DataFrame:
    """One row per run of a runs table and its curves (``ResultsStore.tables()``): the run's config columns,
    ``data_tokens`` (D, else its token budget), ``compute`` = flops_per_token·D, ``loss`` (EWA eval loss at D, NaN
    where it is not a D-token run's) and ``loss_note``."""
    require_run_tables(runs, curves, "run_hparam_table")
    runs = without_branches(runs)  # `cbs branch` runs are no grid points
    curves = _primary_curves(runs, curves, eval_set)
    by_run = dict(tuple(curves.sort_values(["run_id", "tokens"]).groupby("run_id")))
    out = runs[RUN_COLUMNS].copy()
    out["data_tokens"] = runs["data_tokens"].fillna(runs["token_budget"]).astype(float)
    out["compute"] = runs["flops_per_token"].astype(float) * out["data_tokens"]
    loss_note = [_loss_at(run, by_run.get(run["run_id"])) for _, run in out.iterrows()]
    out["loss"] = [x[0] for x in loss_note]
    out["loss_note"] = [x[1] for x in loss_note]
    return out.reset_index(drop=True)
