"""The branched-training CBS (Merrill, Arora, Groeneveld, Hajishirzi 2025, arXiv 2505.23971).

From a checkpoint of a run at batch B, branches at k·B (k = 1 the baseline) each train the same Δ tokens; their
eval losses are smoothed by an EMA over the evaluations, s ← α·s + (1−α)·x, and compared at Δ. k* is the
largest k whose smoothed loss is within ε of every smaller k's (at most ε above each); B* = k*·B with the
interval [k*·B, next k·B] (the next k tried; +inf when k* is the largest). A branch that diverged (non-finite
loss) fails, and is left out of the comparisons of larger k.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cbs.errors import FitError

EPSILON = 0.01  # nats (the paper's)
EMA_ALPHA = 0.5  # weight of the previous smoothed value (the paper's)
BRANCH_COLUMNS = [
    "parent_run_id",
    "branch_fraction",
    "branch_step",
    "batch_size",
    "k_star",
    "cbs",
    "cbs_lo",
    "cbs_hi",
    "ks",
    "losses",
    "tokens",
    "flops",
    "wall_time_s",
    "n_runs",
    "note",
]


def ema(values: np.ndarray, alpha: float = EMA_ALPHA) -> np.ndarray:
    """s₀ = x₀, sₜ = α·sₜ₋₁ + (1−α)·xₜ (α = 0: no smoothing)."""
    if not 0 <= alpha < 1:
        raise FitError(f"the EMA weight must be in [0, 1), got {alpha}")
    out = np.empty(len(values), dtype=float)
    for i, x in enumerate(np.asarray(values, dtype=float)):
        out[i] = x if i == 0 else alpha * out[i - 1] + (1 - alpha) * x
    return out


@dataclass(frozen=True)
class BranchedCbs:
    """The branched CBS at one branch point of one parent run."""

    batch_size: int  # the parent's B
    k_star: int
    losses: dict[int, float]  # smoothed loss at Δ per k

    @property
    def cbs(self) -> float:
        return float(self.k_star * self.batch_size)

    @property
    def cbs_ci(self) -> tuple[float, float]:
        """[k*·B, next k·B]; the upper end is +inf when k* is the largest k tried."""
        larger = [k for k in self.losses if k > self.k_star]
        return self.cbs, float(min(larger) * self.batch_size) if larger else math.inf


def branched_cbs(losses: Mapping[int, float], batch_size: int, epsilon: float = EPSILON) -> BranchedCbs:
    """k* of the smoothed losses at Δ per multiplier k (k = 1, the parent's batch, must be among them)."""
    if epsilon <= 0:
        raise FitError(f"epsilon must be > 0 nats, got {epsilon}")
    if 1 not in losses:
        raise FitError(f"the k = 1 baseline branch is missing (have k = {sorted(losses)})")
    if not math.isfinite(losses[1]):
        raise FitError("the k = 1 baseline branch has no finite smoothed loss (no raw evaluation stored)")
    ks = sorted(losses)
    k_star = 1
    for i, k in enumerate(ks):
        smaller = [losses[j] for j in ks[:i] if math.isfinite(losses[j])]
        if math.isfinite(losses[k]) and all(losses[k] <= s + epsilon for s in smaller):
            k_star = k
    return BranchedCbs(int(batch_size), k_star, {k: float(losses[k]) for k in ks})


def branched_table(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    *,
    epsilon: float = EPSILON,
    alpha: float = EMA_ALPHA,
) -> pd.DataFrame:
    """One row per (parent run, branch fraction) of the branch runs in ``runs`` (rows with a
    ``parent_run_id``): the smoothed eval loss at Δ of each k (primary eval set, raw weights), k*, B* and its
    interval, and the tokens, FLOPs, wall seconds and number of the branches (``n_runs``, every status). Branches not completed are left out and named in
    ``note``; a branch point without its k = 1 branch has no estimate (``note`` says so)."""
    if "parent_run_id" not in runs:
        return pd.DataFrame(columns=BRANCH_COLUMNS)
    branches = runs[runs["parent_run_id"].notna()]
    rows = []
    for (parent, fraction), grp in branches.groupby(["parent_run_id", "branch_fraction"], sort=True):
        done = grp[grp["status"] == "completed"]
        losses = {
            int(r.branch_k): _final_smoothed(curves, r.run_id, r.eval_sets, alpha) for r in done.itertuples()
        }
        batch = int(grp["batch_size"].iloc[0] // grp["branch_k"].iloc[0])
        notes = [f"k={int(r.branch_k)} {r.status}" for r in grp.itertuples() if r.status != "completed"]
        try:
            est = branched_cbs(losses, batch, epsilon)
        except FitError as exc:
            est, notes = None, [*notes, str(exc)]
        lo, hi = est.cbs_ci if est else (math.nan, math.nan)
        rows.append(
            {
                "parent_run_id": parent,
                "branch_fraction": float(fraction),
                "branch_step": int(grp["branch_step"].iloc[0]),
                "batch_size": batch,
                "k_star": est.k_star if est else None,
                "cbs": est.cbs if est else math.nan,
                "cbs_lo": lo,
                "cbs_hi": hi,
                "ks": sorted(losses),
                "losses": {k: round(v, 5) for k, v in sorted(losses.items())},
                "tokens": int(grp["tokens"].sum()),
                "flops": float((grp["tokens"] * grp["flops_per_token"]).sum()),
                "wall_time_s": float(grp["wall_time_s"].sum()),
                "n_runs": len(grp),
                "note": "; ".join(notes),
            }
        )
    return pd.DataFrame(rows, columns=BRANCH_COLUMNS)


def _final_smoothed(
    curves: pd.DataFrame, run_id: str, eval_sets: Sequence[str] | None, alpha: float
) -> float:
    """The EMA-smoothed raw eval loss of run ``run_id`` at its last evaluation, on its primary (first) eval set,
    over the evaluations that scored the raw weights (every ``eval.raw_every``-th and the last; the others have
    none)."""
    primary = eval_sets[0] if eval_sets is not None and len(eval_sets) else None
    cur = curves[(curves["run_id"] == run_id) & (curves["eval_set"] == primary)].sort_values("step")
    cur = cur.dropna(subset=["eval_loss"])
    if cur.empty:
        return math.nan
    return float(ema(cur["eval_loss"].to_numpy(float), alpha)[-1])
