"""Opt-in spending rules that may change the answer (inexact), one implementation for the live sweep
(cbs.sweep.stopper publishes, cbs.sweep.prune.Guard stops) and for the replay on a stored sweep
(cbs.sweep.replay, benchmarks/bench_prune.py).

**Successive halving** (``prune: {halving: {eta, rungs}}``, ``cbs sweep --halving``). Within each
(cell, B, seed) group, at each rung (``cap/eta^k`` steps, k = rungs..1, ``cap`` the group's step cap) the arms
still running are ranked by their loss (EWA where logged) at their first evaluation at or after the rung, and
all but the best ``ceil(n/eta)`` are stopped (status ``pruned``, a ``stop_reason`` starting ``halving``). An
arm that is behind early is not always the one that reaches the target first, so S(B), its argmin and the
CBS may differ from the unpruned protocol.

**Lower cap** (``prune: {lower_cap: {m, cap}}``). A target-phase batch size whose next-smaller target-phase
batch size of the same (cell, seed) needed more than ``m``·D tokens to reach the target (its best arm, interpolated as `cbs fit cbs`)
trains at most ``cap``·D tokens instead of ``budget_multiple``·D (stopped at its first evaluation at or after
that: ``pruned``, ``stop_reason`` starting ``lower_cap``), and counts as having missed the target within its
cap, so the batch-range rule skips the larger ones. It assumes that such a batch size is far past the CBS, so
whether it reaches the target between ``cap``·D and ``budget_multiple``·D does not matter; it is wrong where it
does: that batch size then drops out of the S(B) fit (and the larger ones with it), which can move the fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cbs.errors import ConfigError

HALVING, LOWER_CAP = "halving", "lower_cap"  # the first word of the stop_reason of a run such a rule stopped


def rule_of(reason: object) -> str | None:
    """The inexact rule (HALVING or LOWER_CAP) that wrote ``reason``, None for any other reason (or a null)."""
    if not isinstance(reason, str):
        return None
    word = reason.split(":", 1)[0]
    return word if word in (HALVING, LOWER_CAP) else None


@dataclass(frozen=True)
class Halving:
    """Successive halving across the arms of a (cell, B, seed): keep the best 1/eta at each of ``rungs`` rungs."""

    eta: int = 3
    rungs: int = 2

    def check(self) -> None:
        if self.eta < 2:
            raise ConfigError(
                f"prune.halving.eta must be >= 2 (keep the best 1/eta at each rung), got {self.eta}"
            )
        if self.rungs < 1:
            raise ConfigError(
                f"prune.halving.rungs must be >= 1 (rungs at cap/eta^k, k = rungs..1), got {self.rungs}"
            )

    def rung_steps(self, cap_steps: float) -> list[float]:
        """The rungs of a group whose step cap is ``cap_steps``, earliest first."""
        return [cap_steps / self.eta**k for k in range(self.rungs, 0, -1)]


@dataclass(frozen=True)
class LowerCap:
    """A cap of ``cap``·D tokens for a batch size whose next-smaller one needed more than ``m``·D tokens."""

    m: float
    cap: float

    def check(self, budget_multiple: float) -> None:
        if not 0 < self.m <= self.cap < budget_multiple:
            raise ConfigError(
                f"prune.lower_cap needs 0 < m <= cap < target.budget_multiple ({budget_multiple:g}), got "
                f"m={self.m:g}, cap={self.cap:g}"
            )

    def steps(self, needed_tokens: float, data_tokens: int, batch_tokens: int) -> float | None:
        """The lowered step cap of a batch size of ``batch_tokens`` tokens per step whose next-smaller batch size
        needed ``needed_tokens`` to reach the target (NaN: it did not); None where the rule does not apply."""
        if not needed_tokens > self.m * data_tokens:
            return None
        return self.cap * data_tokens / batch_tokens

    def reason(self, step: int, needed_tokens: float, data_tokens: int) -> str:
        return (
            f"{LOWER_CAP}: stopped at step {step}, at its lowered cap of {self.cap:g}·D tokens: the next-smaller "
            f"batch size needed {needed_tokens / data_tokens:.3g}·D > {self.m:g}·D to reach the target (inexact)"
        )


@dataclass(frozen=True)
class PruneOptions:
    """The spec's ``prune:`` section: the opt-in inexact rules (the exact ones are on unless ``--no-prune``)."""

    halving: Halving | None = None
    lower_cap: LowerCap | None = None

    @property
    def inexact(self) -> bool:
        return self.halving is not None or self.lower_cap is not None

    def check(self, budget_multiple: float | None) -> None:
        """Raise ConfigError naming the bad field (``budget_multiple``: the spec's target rule, None if none)."""
        if self.inexact and budget_multiple is None:
            raise ConfigError(
                "prune.halving and prune.lower_cap act on the target phase: add a `target:` section"
            )
        if self.halving is not None:
            self.halving.check()
        if self.lower_cap is not None and budget_multiple is not None:  # None raised above
            self.lower_cap.check(budget_multiple)

    def describe(self) -> str:
        parts = []
        if self.halving is not None:
            parts.append(f"successive halving (eta={self.halving.eta}, {self.halving.rungs} rungs)")
        if self.lower_cap is not None:
            parts.append(
                f"a lower cap ({self.lower_cap.cap:g}·D after a batch size that needed > {self.lower_cap.m:g}·D)"
            )
        return " and ".join(parts)


@dataclass(frozen=True)
class Ranked:
    """An arm that successive halving ranks out: its evaluation at the rung and its place there."""

    step: int  # its first evaluation at or after the rung
    loss: float
    rank: int  # 1 = best
    of: int  # arms running at the rung
    rung: float

    def reason(self, stopped_at: int) -> str:
        return (
            f"{HALVING}: stopped at step {stopped_at}, ranked {self.rank} of {self.of} by loss {self.loss:.6g} at "
            f"step {self.step} (rung {self.rung:.6g}) (inexact)"
        )


def halve(
    rule: Halving, cap_steps: float, curves: Mapping[str, Sequence[tuple[int, float]]], ended: set[str]
) -> dict[str, Ranked]:
    """The arms of one group that successive halving ranks out, given each arm's evaluations so far
    (``curves``: run_id -> (step, loss) in step order) and the arms that ended (no more evaluations). Rungs are
    decided in order, each only once every arm still running has an evaluation at or after it (an arm ranked
    out at a rung is not ranked again): the same curves give the same answer whether they are complete (a
    replay) or still growing (the driver), and a rung is never decided on part of its arms. Ties go by
    run_id; a NaN loss ranks last."""
    alive = sorted(curves)
    out: dict[str, Ranked] = {}
    for rung in rule.rung_steps(cap_steps):
        at = {r: next(((s, x) for s, x in curves[r] if s >= rung), None) for r in alive}
        if any(at[r] is None and r not in ended for r in alive):
            break  # an arm may still reach this rung
        seen = {r: v for r, v in at.items() if v is not None}
        running = sorted(seen, key=lambda r: (_nan_last(seen[r][1]), r))
        keep = math.ceil(len(running) / rule.eta)
        for rank, r in enumerate(running[keep:], start=keep + 1):
            out[r] = Ranked(int(seen[r][0]), float(seen[r][1]), rank, len(running), rung)
            alive.remove(r)
    return out


def _nan_last(loss: float) -> tuple[bool, float]:
    return (math.isnan(loss), 0.0 if math.isnan(loss) else loss)
