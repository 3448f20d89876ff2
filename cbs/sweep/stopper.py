"""The driver's side of `cbs.sweep.prune`: a Ray Tune ``Stopper`` that learns each (cell, B) group's best
steps-to-target and each cell's first batch size past its CBS from the trials' reports, and publishes them;
with the spec's opt-in inexact rules (cbs.sweep.inexact) also the arms successive halving ranks out and the
batch sizes that get a lower cap."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from ray.tune import Stopper

from cbs.fit.steps_to_target import first_crossing
from cbs.sweep.inexact import LOWER_CAP, PruneOptions, halve, rule_of
from cbs.sweep.prune import FINAL, REACHED, Arm, Board, Bound, curve_losses, metric_loss


@dataclass
class PruneStopper(Stopper):
    """The driver's side (a Ray Tune ``Stopper``): from every evaluation the trials report it keeps each
    group's best interpolated steps-to-target, and from their last reports each cell's smallest batch size
    whose every arm missed the target; it publishes both on ``board`` and never stops a trial itself. With
    ``options`` it also publishes the arms successive halving ranks out and the lowered caps."""

    board: Board
    arms: dict[str, Arm]  # run_id -> arm, every target arm of the cells added so far (done ones included)
    options: PruneOptions = field(default_factory=PruneOptions)
    history: dict[str, dict[int, float]] = field(default_factory=dict)  # run_id -> step -> loss
    final: dict[str, str] = field(default_factory=dict)  # run_id -> final status
    reasons: dict[str, str | None] = field(default_factory=dict)  # run_id -> stop_reason of its last report

    def seed(self, runs: pd.DataFrame, curves: pd.DataFrame) -> None:
        """Start from the store: the statuses and stop reasons of arms already done, their curves, and the
        bounds of those that reached."""
        for row in runs.itertuples():
            if row.run_id in self.arms and row.status in FINAL:
                self.final[row.run_id] = row.status
                self.reasons[row.run_id] = row.stop_reason if isinstance(row.stop_reason, str) else None
        primary = {r.run_id: r.eval_sets[0] for r in runs.itertuples() if r.eval_sets is not None}
        for run_id, c in curves.groupby("run_id"):
            if run_id in self.final:
                c = c[c.eval_set == primary.get(run_id)]
                self.history[run_id] = dict(zip(c.step.astype(int), curve_losses(c), strict=True))
                if self.final[run_id] == REACHED:
                    self._offer(run_id)
        for run_id in self.final:
            self._close(self.arms[run_id])

    def add(self, trials: list, runs: pd.DataFrame, curves: pd.DataFrame) -> None:
        """Take on the target ``trials`` (cbs.sweep.plan.Trial) of a cell, seeded from the store's ``runs`` of
        them and the ``curves`` of those done."""
        for t in trials:
            c = t.config
            self.arms[t.run_id] = Arm(
                t.run_id,
                t.cell.id,
                c.batch_size,
                float(c.target_loss),
                c.seed,
                cap_steps=t.tokens / t.batch_tokens,
                batch_tokens=t.batch_tokens,
                data_tokens=t.data_tokens,
            )
        self.seed(runs, curves)

    def __call__(self, trial_id: str, result: dict) -> bool:
        arm = self.arms.get(result.get("run_id", ""))
        if arm is None:
            return False
        if "status" in result:  # the trial's last report
            self.final[arm.run_id] = result["status"]
            self.reasons[arm.run_id] = result.get("stop_reason")
            self._close(arm)
        elif "step" in result and math.isfinite(loss := metric_loss(result)):
            self.history.setdefault(arm.run_id, {})[int(result["step"])] = loss  # a retried step: same loss
            if loss <= arm.target:
                self._offer(arm.run_id)
        else:
            return False
        if self.options.halving is not None:
            self._halve(arm)
        return False

    def stop_all(self) -> bool:
        return False

    def _offer(self, run_id: str) -> None:
        arm = self.arms[run_id]
        steps, losses = np.array(sorted(self.history[run_id].items()), dtype=float).T
        crossing = first_crossing(steps, losses, arm.target)
        best = self.board.bound(arm.group)
        if math.isfinite(crossing) and (best is None or crossing < best.steps):
            self.board.set_bound(arm.group, Bound(float(crossing), run_id))

    def _close(self, arm: Arm) -> None:
        if self.options.lower_cap is not None:
            self._lower_next(arm)
        # past the CBS only once every arm of this batch size, of every seed, ended without reaching the target
        group = [a for a in self.arms.values() if (a.cell, a.batch_size) == (arm.cell, arm.batch_size)]
        statuses = [self.final.get(a.run_id) for a in group]
        if None in statuses or REACHED in statuses or not any(map(self._at_cap, group)):
            return
        failed = self.board.failed_batch(arm.cell)
        if failed is None or arm.batch_size < failed:
            self.board.set_failed_batch(arm.cell, arm.batch_size)

    def _at_cap(self, arm: Arm) -> bool:
        """Ended at its token cap, or at its lowered cap, without reaching the target."""
        status = self.final.get(arm.run_id)
        return status == "completed" or (
            status == "pruned" and rule_of(self.reasons.get(arm.run_id)) == LOWER_CAP
        )

    def _halve(self, arm: Arm) -> None:
        """Publish the arms of ``arm``'s group that successive halving ranks out (cbs.sweep.inexact.halve)."""
        rule = self.options.halving
        if rule is None:
            return
        group = [a for a in self.arms.values() if a.group == arm.group]
        curves = {a.run_id: sorted(self.history.get(a.run_id, {}).items()) for a in group}
        ended = {a.run_id for a in group if a.run_id in self.final}
        cap_steps = max(a.cap_steps for a in group)
        for run_id, ranked in halve(rule, cap_steps, curves, ended).items():
            if run_id not in ended and self.board.halved(run_id) is None:
                self.board.set_halved(run_id, ranked)

    def _lower_next(self, arm: Arm) -> None:
        """Once every arm of ``arm``'s group ended: a lower cap for the next larger batch size of its (cell,
        seed) where this one needed more than m·D tokens (cbs.sweep.inexact.LowerCap)."""
        rule = self.options.lower_cap
        if rule is None or any(
            a.run_id not in self.final for a in self.arms.values() if a.group == arm.group
        ):
            return
        larger = [
            a
            for a in self.arms.values()
            if (a.cell, a.seed) == (arm.cell, arm.seed) and a.batch_size > arm.batch_size
        ]
        bound = self.board.bound(arm.group)
        if not larger or bound is None:
            return
        nxt = min(larger, key=lambda a: a.batch_size)
        needed = bound.steps * arm.batch_tokens
        steps = rule.steps(needed, arm.data_tokens, nxt.batch_tokens)
        if steps is not None and steps < nxt.cap_steps and self.board.lower_cap(nxt.group) is None:
            self.board.set_lower_cap(nxt.group, rule, steps, needed)


def new_stopper(store_root, options: PruneOptions | None = None) -> PruneStopper:
    """A stopper with no arms yet on a fresh board under ``store_root/.prune`` (`PruneStopper.add` gives it
    each cell's target arms once the cell's target is known), applying the opt-in inexact rules of ``options``."""
    from cbs.sweep.prune import PRUNE_DIR

    board = Board(store_root / PRUNE_DIR)
    board.reset()
    return PruneStopper(board, {}, options or PruneOptions())
