"""Replay the sweep's spending rules (cbs.sweep.prune) on a store trained without them: which runs and curves
each rule would have left, and the tokens it would have trained.

Levels: ``cap`` every arm to its token cap (the paper's protocol; stopped arms counted at their cap), ``target``
stop at the target (the store as it is), ``prune`` + exact pruning, ``batch_range`` + batch sizes past the CBS
not run; the opt-in inexact rules of cbs.sweep.inexact (successive halving, a lower cap) on top of the last,
through the same rule functions the live sweep uses. The replay assumes the arms of one (cell, B) run in lockstep and a cell's batch sizes one after the
other in increasing order (what `cbs sweep` schedules); a live sweep with fewer cores than arms saves less (and a
live sweep stops an arm ranked out by successive halving at its first evaluation after the driver's decision, not
at the rung's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cbs.errors import ResultsError
from cbs.fit.steps_to_target import first_crossing
from cbs.sweep.inexact import LOWER_CAP, PruneOptions, halve, rule_of
from cbs.sweep.prune import Bound, curve_losses, past_cbs_reason, prune_reason

LEVELS = ("cap", "target", "prune", "batch_range")
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


def replay(
    runs: pd.DataFrame, curves: pd.DataFrame, level: str, options: PruneOptions | None = None
) -> Replayed:
    """The store (``runs``, ``curves``: a stop-at-target sweep without pruning) as ``level`` would leave it, with
    the inexact rules of ``options`` on top of level ``batch_range`` (the only level they combine with)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    options = options or PruneOptions()
    if options.inexact and level != "batch_range":
        raise ValueError(f"the inexact rules combine with level 'batch_range' only, got {level!r}")
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
        needed: dict[int, float] = {}  # seed -> tokens the previous batch size's best arm needed
        for batch, arms in cell.groupby("batch_size", sort=True):
            if level != "prune" and (reason := past_cbs_reason(int(batch), failed)):
                cut.update({r: ("skipped_past_cbs", 0, reason) for r in arms.run_id})
                continue
            for seed, group in arms.groupby("seed", sort=True):  # a seed's arms are one group
                cut.update(_cut_group(group, primary, options, needed.get(seed, np.nan)))
            seen = {r: _kept(primary[r], cut.get(r)) for r in arms.run_id if r in primary}
            target = arms.target_loss.iloc[0]
            crossings = {r: _crossing(seen, r, target) for r in arms.run_id}
            for seed, group in arms.groupby("seed", sort=True):
                best = np.nanmin([crossings[r] for r in group.run_id] + [np.inf])
                needed[seed] = best * group.batch_tokens.iloc[0] if np.isfinite(best) else np.nan
            reached = any(np.isfinite(s) for s in crossings.values())
            at_cap = (arms.status.eq("completed") & ~arms.run_id.isin(cut)) | arms.run_id.map(
                lambda r: r in cut and rule_of(cut[r][2]) == LOWER_CAP
            )
            if failed is None and not reached and at_cap.any():
                failed = int(batch)
    for run_id, (status, step, reason) in cut.items():
        i = runs.index[runs.run_id == run_id]
        runs.loc[i, ["status", "steps", "stop_reason"]] = [status, step, reason]
        runs.loc[i, "tokens"] = step * runs.loc[i, "batch_tokens"]
    keep = curves.run_id.map(lambda r: cut[r][1] if r in cut else np.inf)
    return Replayed(level, runs, curves[curves.step <= keep])


def _cut_group(
    arms: pd.DataFrame, primary: dict[str, pd.DataFrame], options: PruneOptions, needed: float
) -> dict[str, tuple[str, int, str]]:
    """The arms of one (cell, B, seed) the rules stop, each at the evaluation it stops at: the lower cap (where
    the previous batch size needed ``needed`` tokens), then successive halving, then exact pruning, each on the
    curves the rules before it left (so a later rule only stops an arm earlier)."""
    out: dict[str, tuple[str, int, str]] = {}
    seen = {r: primary[r] for r in arms.run_id if r in primary}
    rule = options.lower_cap
    low = rule.steps(needed, int(arms.data_tokens.iloc[0]), int(arms.batch_tokens.iloc[0])) if rule else None
    if rule is not None and low is not None:
        for r, c in seen.items():
            step = c.step[c.step >= low].min()
            if step < c.step.max() and curve_losses(c[c.step == step])[0] > arms.target_loss.iloc[0]:
                out[r] = ("pruned", int(step), rule.reason(int(step), needed, int(arms.data_tokens.iloc[0])))
    if options.halving is not None:
        seen = {r: _kept(c, out.get(r)) for r, c in seen.items()}
        cap_steps = float((arms.token_budget / arms.batch_tokens).max())
        curves = {r: list(zip(c.step.astype(int), curve_losses(c), strict=True)) for r, c in seen.items()}
        for r, ranked in halve(options.halving, cap_steps, curves, set(curves)).items():
            if ranked.step < seen[r].step.max():  # not its last evaluation anyway
                out[r] = ("pruned", ranked.step, ranked.reason(ranked.step))
    seen = {r: _kept(c, out.get(r)) for r, c in seen.items()}
    return {**out, **_prune_group(arms, seen)}


def _kept(curve: pd.DataFrame, cut: tuple[str, int, str] | None) -> pd.DataFrame:
    return curve if cut is None else curve[curve.step <= cut[1]]


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
