"""Spend less for the same CBS: exact pruning of dominated arms, and batch sizes past the CBS not run.

**Exact pruning.** S(B) is a minimum over the arms (lr, β2, τ, ...) of one (cell, B). `cbs fit cbs` takes an
arm's steps-to-target as the first crossing of the target, interpolated linearly between the evaluations
``e_{i-1} < e_i`` that bracket it (`cbs.fit.steps_to_target.first_crossing`). If an arm is above the target
at an evaluation ``e``, its crossing lies in ``(e, e']`` for a later evaluation ``e'``: strictly after ``e``.
So once some arm of the group crossed at ``s*``, an arm still above the target at an evaluation ``e >= s*``
can only cross at ``> s*``: it is neither the minimum nor tied with it, and stopping it there changes no
steps-to-target, no argmin (lr, β2, τ, run_id) and no fit. Any bound ``>= `` the true minimum keeps this
true, so a bound learnt late (or from a resumed arm whose early evaluations the driver never saw) is safe.

**Batch sizes past the CBS (a model-based rule).** A cell's batch sizes run in increasing order; once every
arm of a batch size has ended without reaching the target (at least one at its token cap), the larger batch
sizes of the cell are not trained (status ``skipped_past_cbs``) and count as unreached. This assumes the
tokens-to-target E(B) increase with B (McCandlish et al.: E(B) = E_min·(1 + B/B_noise)), so a batch size
that misses the target within a cap of m·D tokens implies every larger one misses it too. It would be wrong
where E(B) is not monotone: too coarse an lr/β2/τ grid for the larger batch (its best arm not in the grid),
a noisy target right at the cap, or caps that differ per batch size.

The opt-in inexact rules (successive halving, a lower cap) are in `cbs.sweep.inexact`; the board carries their
decisions too and the guard applies them.

The driver decides (`cbs.sweep.stopper.PruneStopper`, a Ray Tune ``Stopper`` fed by every reported evaluation)
and publishes its decisions in ``DIR/.prune/``; each trial reads them at its evaluations and ends itself (``RunStopped``), so its row and curve
are stored like any other run's (Tune's own stop ends the training thread without a row).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cbs.atomic import write_text_atomic
from cbs.errors import RunStopped
from cbs.sweep.inexact import LowerCap, Ranked

PRUNE_DIR = ".prune"
REACHED = "reached_target"
FINAL = ("completed", REACHED, "diverged", "pruned", "skipped_past_cbs")  # a trial's last word


@dataclass(frozen=True)
class Arm:
    """One target-phase trial and the (cell, batch size, seed) group it is minimised with (seeds are
    replicates: each seed has its own steps-to-target, `cbs.fit.steps_to_target_table`)."""

    run_id: str
    cell: str
    batch_size: int
    target: float
    seed: int = 0
    cap_steps: float = 0.0  # token cap / batch_tokens (the rungs of successive halving)
    batch_tokens: int = 0  # tokens per step
    data_tokens: int = 0  # the cell's D (the lower cap's unit)

    @property
    def group(self) -> str:
        return f"{self.cell}-B{self.batch_size}-s{self.seed}"


@dataclass(frozen=True)
class Bound:
    """The best interpolated steps-to-target of a (cell, B) group so far, and the arm that set it."""

    steps: float
    run_id: str


def prune_reason(step: int, loss: float, target: float, bound: Bound | None) -> str | None:
    """Why an arm evaluated at ``step`` with ``loss`` is dominated by ``bound`` (None while it is not): it is
    above the target at an evaluation at or after the group's best steps-to-target (exact, see module doc)."""
    if bound is None or not loss > target or step < bound.steps:
        return None
    return (
        f"pruned at step {step}: above the target {target:.6g} at or after step {bound.steps:.6g}, where "
        f"{bound.run_id} reached it"
    )


def past_cbs_reason(batch_size: int, failed: int | None) -> str | None:
    """Why ``batch_size`` is past its cell's CBS given its smallest batch size ``failed`` whose every arm missed
    the target within its cap (None if it is not larger)."""
    if failed is None or batch_size <= failed:
        return None
    return f"skipped past the CBS: every arm of batch size {failed} of this cell missed the target within its cap"


@dataclass(frozen=True)
class Board:
    """The driver's decisions under ``DIR/.prune/``: one small JSON file per bound and per cell past its CBS,
    written atomically (one writer: the driver), read by the trials."""

    root: Path

    def reset(self) -> None:
        """Forget every decision (each invocation re-derives them from the store)."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)

    def bound(self, group: str) -> Bound | None:
        data = self._read(f"bound-{group}")
        return Bound(**data) if data else None

    def set_bound(self, group: str, bound: Bound) -> None:
        write_text_atomic(self.root / f"bound-{group}.json", json.dumps(asdict(bound)))

    def failed_batch(self, cell: str) -> int | None:
        data = self._read(f"past-cbs-{cell}")
        return int(data["batch_size"]) if data else None

    def set_failed_batch(self, cell: str, batch_size: int) -> None:
        write_text_atomic(self.root / f"past-cbs-{cell}.json", json.dumps({"batch_size": batch_size}))

    def halved(self, run_id: str) -> dict[str, Any] | None:
        """How successive halving ranked ``run_id`` out (cbs.sweep.inexact.Ranked as a dict), None if it did not."""
        return self._read(f"halved-{run_id}")

    def set_halved(self, run_id: str, ranked: Ranked) -> None:
        write_text_atomic(self.root / f"halved-{run_id}.json", json.dumps(asdict(ranked)))

    def lower_cap(self, group: str) -> dict[str, Any] | None:
        """The lowered step cap of ``group``: {rule (LowerCap as a dict), steps, needed_tokens}, or None."""
        return self._read(f"lower-cap-{group}")

    def set_lower_cap(self, group: str, rule: LowerCap, steps: float, needed_tokens: float) -> None:
        data = {"rule": asdict(rule), "steps": steps, "needed_tokens": needed_tokens}
        write_text_atomic(self.root / f"lower-cap-{group}.json", json.dumps(data))

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / f"{name}.json").read_text())
        except FileNotFoundError:
            return None


@dataclass(frozen=True)
class Guard:
    """A trial's side of the rules: ``start()`` and ``check(metrics)`` raise ``RunStopped`` once the board
    says the arm is past its cell's CBS, dominated in its group, ranked out by successive halving or past its
    lowered cap (the last two only where the spec asks for them: cbs.sweep.inexact)."""

    board: Board
    arm: Arm

    def start(self) -> None:
        reason = past_cbs_reason(self.arm.batch_size, self.board.failed_batch(self.arm.cell))
        if reason:
            raise RunStopped("skipped_past_cbs", reason)

    def check(self, metrics: dict[str, Any]) -> None:
        if metrics.get("done"):
            return
        self.start()
        step, loss = int(metrics["step"]), metric_loss(metrics)
        reason = prune_reason(step, loss, self.arm.target, self.board.bound(self.arm.group))
        if reason:
            raise RunStopped("pruned", reason)
        if loss <= self.arm.target:  # reached: the run ends here anyway
            return
        if ranked := self.board.halved(self.arm.run_id):
            raise RunStopped("pruned", Ranked(**ranked).reason(step))
        cap = self.board.lower_cap(self.arm.group)
        if cap and step >= cap["steps"]:
            reason = LowerCap(**cap["rule"]).reason(step, cap["needed_tokens"], self.arm.data_tokens)
            raise RunStopped("pruned", reason)


def metric_loss(metrics: Any) -> float:
    """The loss the steps-to-target is taken on: EWA where logged, else raw (as `cbs fit cbs`)."""
    ewa = metrics.get("ewa_eval_loss")
    value = ewa if ewa is not None and not pd.isna(ewa) else metrics.get("eval_loss")
    return float("nan") if value is None or pd.isna(value) else float(value)


def curve_losses(curve: pd.DataFrame) -> list[float]:
    return [metric_loss(row) for row in curve[["ewa_eval_loss", "eval_loss"]].to_dict("records")]
