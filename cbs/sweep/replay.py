"""Replay the sweep's spending rules (cbs.sweep.prune) on a store trained without them: which runs and curves
each rule would have left, and the tokens it would have trained.

Levels: ``cap`` every arm to its token cap (the paper's protocol; stopped arms counted at their cap), ``target``
stop at the target (the store as it is), ``prune`` + exact pruning, ``batch_range`` + batch sizes past the CBS
not run. The replay assumes the arms of one (cell, B) run in lockstep and a cell's batch sizes one after the
other in increasing order (what `cbs sweep` schedules); a live sweep with fewer cores than arms saves less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cbs.errors import ResultsError
from cbs.fit.steps_to_target import first_crossing
from cbs.sweep.prune import Bound, curve_losses, past_cbs_reason, prune_reason

LEVELS = ("cap", "target", "prune", "batch_range")
# not exact, not in `cbs sweep`: batch_range + successive halving across the arms of a (cell, B) at matched steps
HALVING = "halving"
ETA, RUNGS = 3, 2  # keep the best 1/ETA of the running arms at ETA^-k of the cap's steps, k = RUNGS..1
# the steps-to-target table's columns the rules leave unchanged (best_loss, a diagnostic, may differ)
UNCHANGED = [
    "model",
    "n_params",
    "data_tokens",
    "batch_size",
    "steps_to_target",
    "run_id",
    "lr",
    "beta2",
    "ewa_tau",
]
CELL = ["experiment", "preset", "n_params", "dataset", "data_tokens", "seed", "target_loss"]


@dataclass(frozen=True)
class Replayed:
    """The runs and curves a store would hold under one level of the rules."""

    level: str
    runs: pd.DataFrame
    curves: pd.DataFrame

    @property
    def tokens(self) -> int:
        return int(self.runs.tokens.fillna(0).sum())

    @property
    def flops(self) -> float:
        """6·N·tokens summed over the runs."""
        return float((6.0 * self.runs.n_params * self.runs.tokens.fillna(0)).sum())


def replay(runs: pd.DataFrame, curves: pd.DataFrame, level: str) -> Replayed:
    """The store (``runs``, ``curves``: a stop-at-target sweep without pruning) as ``level`` would leave it."""
    if level not in (*LEVELS, HALVING):
        raise ValueError(f"level must be one of {(*LEVELS, HALVING)}, got {level!r}")
    if runs.status.isin(["pruned", "skipped_past_cbs"]).any():
        raise ResultsError("the store was already pruned: replay needs a sweep run with --no-prune")
    runs = runs.copy()
    if level == "cap":
        stopped = runs.status == "reached_target"
        runs.loc[stopped, "tokens"] = runs.loc[stopped, "token_budget"]
        return Replayed(level, runs, curves)
    if level == "target":
        return Replayed(level, runs, curves)
    primary = _primary(runs, curves)
    targeted = runs[runs.target_loss.notna()]
    cut: dict[str, tuple[str, int, str]] = {}  # run_id -> (status, last step kept, reason)
    for _, cell in targeted.groupby(CELL, dropna=False, sort=False):
        failed = None
        for batch, arms in cell.groupby("batch_size", sort=True):
            if level != "prune" and (reason := past_cbs_reason(int(batch), failed)):
                cut.update({r: ("skipped_past_cbs", 0, reason) for r in arms.run_id})
                continue
            replicates = [a for _, a in arms.groupby("seed", sort=True)]  # a seed's arms are one group
            halved = (
                {k: v for a in replicates for k, v in _halve(a, primary).items()} if level == HALVING else {}
            )
            seen = {r: c[c.step <= halved[r][1]] if r in halved else c for r, c in primary.items()}
            pruned = {k: v for a in replicates for k, v in _prune_group(a, seen).items()}
            cut.update({**halved, **pruned})
            reached = any(np.isfinite(_crossing(seen, r, arms.target_loss.iloc[0])) for r in arms.run_id)
            completed = arms.status.eq("completed") & ~arms.run_id.isin(halved)
            if failed is None and not reached and completed.any():
                failed = int(batch)
    for run_id, (status, step, reason) in cut.items():
        i = runs.index[runs.run_id == run_id]
        runs.loc[i, ["status", "steps", "stop_reason"]] = [status, step, reason]
        runs.loc[i, "tokens"] = step * runs.loc[i, "batch_tokens"]
    keep = curves.run_id.map(lambda r: cut[r][1] if r in cut else np.inf)
    return Replayed(level, runs, curves[curves.step <= keep])


def _primary(runs: pd.DataFrame, curves: pd.DataFrame) -> dict[str, pd.DataFrame]:
    sets = {
        r.run_id: r.eval_sets[0] for r in runs.itertuples() if r.eval_sets is not None and len(r.eval_sets)
    }
    cur = curves[curves.eval_set == curves.run_id.map(sets)].sort_values(["run_id", "step"])
    return dict(tuple(cur.groupby("run_id")))


def _crossing(primary: dict[str, pd.DataFrame], run_id: str, target: float) -> float:
    c = primary.get(run_id)
    if c is None:
        return float("nan")
    return first_crossing(c.step.to_numpy(float), np.array(curve_losses(c)), target)


def _prune_group(arms: pd.DataFrame, primary: dict[str, pd.DataFrame]) -> dict[str, tuple[str, int, str]]:
    """The arms of one (cell, B) stopped by exact pruning, with the evaluation they stop at. The rule is applied
    to every arm, the winner included, with the group's final best steps-to-target as the bound: the most a
    live sweep can know (its bound is learnt later and is never lower), so if this keeps the winner, a live
    sweep keeps it too."""
    target = float(arms.target_loss.iloc[0])
    crossings = {r: _crossing(primary, r, target) for r in arms.run_id}
    reached = {r: s for r, s in crossings.items() if np.isfinite(s)}
    if not reached:
        return {}
    winner = min(reached, key=reached.__getitem__)
    bound = Bound(reached[winner], winner)
    out = {}
    for run_id in arms.run_id:
        c = primary.get(run_id)
        if c is None:
            continue
        for step, loss in zip(c.step.astype(int), curve_losses(c), strict=True):
            if reason := prune_reason(step, loss, target, bound):
                if step < c.step.max():  # not already its last evaluation
                    out[run_id] = ("pruned", int(step), reason)
                break
    return out


def _halve(arms: pd.DataFrame, primary: dict[str, pd.DataFrame]) -> dict[str, tuple[str, int, str]]:
    """Successive halving (inexact): at the first evaluation at or after each rung (ETA^-k of the group's
    steps cap) the arms still running, ranked by their loss there, keep the best ceil(n / ETA)."""
    cap_steps = float((arms.token_budget / arms.batch_tokens).max())
    alive = [r for r in arms.run_id if r in primary]
    out = {}
    for k in range(RUNGS, 0, -1):
        rung = cap_steps / ETA**k
        at = {r: primary[r][primary[r].step >= rung].head(1) for r in alive}
        running = sorted((r for r in alive if len(at[r])), key=lambda r: curve_losses(at[r])[0])
        for r in running[math.ceil(len(running) / ETA) :]:
            step = int(at[r].step.iloc[0])
            if step < primary[r].step.max():  # not its last evaluation anyway
                out[r] = ("pruned", step, f"successive halving at step {step} (inexact)")
                alive.remove(r)
    return out
