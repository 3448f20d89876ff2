"""The driver's side of `cbs.sweep.prune`: a Ray Tune ``Stopper`` that learns each (cell, B) group's best
steps-to-target and each cell's first batch size past its CBS from the trials' reports, and publishes them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from ray.tune import Stopper

from cbs.fit.steps_to_target import first_crossing
from cbs.sweep.prune import FINAL, REACHED, Arm, Board, Bound, curve_losses, metric_loss


@dataclass
class PruneStopper(Stopper):
    """The driver's side (a Ray Tune ``Stopper``): from every evaluation the trials report it keeps each
    group's best interpolated steps-to-target, and from their last reports each cell's smallest batch size
    whose every arm missed the target; it publishes both on ``board`` and never stops a trial itself."""

    board: Board
    arms: dict[str, Arm]  # run_id -> arm, every target arm of the cells added so far (done ones included)
    history: dict[str, dict[int, float]] = field(default_factory=dict)  # run_id -> step -> loss
    final: dict[str, str] = field(default_factory=dict)  # run_id -> final status

    def seed(self, runs: pd.DataFrame, curves: pd.DataFrame) -> None:
        """Start from the store: the statuses of arms already done, and the bounds of those that reached."""
        for row in runs.itertuples():
            if row.run_id in self.arms and row.status in FINAL:
                self.final[row.run_id] = row.status
        primary = {r.run_id: r.eval_sets[0] for r in runs.itertuples() if r.eval_sets is not None}
        for run_id, c in curves.groupby("run_id"):
            if self.final.get(run_id) == REACHED:
                c = c[c.eval_set == primary.get(run_id)]
                self.history[run_id] = dict(zip(c.step.astype(int), curve_losses(c), strict=True))
                self._offer(run_id)
        for run_id in self.final:
            self._close(self.arms[run_id])

    def add(self, trials: list, runs: pd.DataFrame, curves: pd.DataFrame) -> None:
        """Take on the target ``trials`` (cbs.sweep.plan.Trial) of a cell, seeded from the store's ``runs`` of
        them and the ``curves`` of those that reached the target."""
        for t in trials:
            self.arms[t.run_id] = Arm(
                t.run_id, t.cell.id, t.config.batch_size, float(t.config.target_loss), t.config.seed
            )
        self.seed(runs, curves)

    def __call__(self, trial_id: str, result: dict) -> bool:
        arm = self.arms.get(result.get("run_id", ""))
        if arm is None:
            return False
        if "status" in result:  # the trial's last report
            self.final[arm.run_id] = result["status"]
            self._close(arm)
        elif "step" in result and math.isfinite(loss := metric_loss(result)):
            self.history.setdefault(arm.run_id, {})[int(result["step"])] = loss  # a retried step: same loss
            if loss <= arm.target:
                self._offer(arm.run_id)
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
        # past the CBS only once every arm of this batch size, of every seed, ended without reaching the target
        group = [a for a in self.arms.values() if (a.cell, a.batch_size) == (arm.cell, arm.batch_size)]
        statuses = [self.final.get(a.run_id) for a in group]
        if None in statuses or REACHED in statuses or "completed" not in statuses:
            return
        failed = self.board.failed_batch(arm.cell)
        if failed is None or arm.batch_size < failed:
            self.board.set_failed_batch(arm.cell, arm.batch_size)


def new_stopper(store_root) -> PruneStopper:
    """A stopper with no arms yet on a fresh board under ``store_root/.prune`` (`PruneStopper.add` gives it
    each cell's target arms once the cell's target is known)."""
    from cbs.sweep.prune import PRUNE_DIR

    board = Board(store_root / PRUNE_DIR)
    board.reset()
    return PruneStopper(board, {})
