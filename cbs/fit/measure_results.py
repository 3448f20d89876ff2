"""The result objects of the three CBS measures of one group (cell), carried by `CbsGroup.measures`.

Beside the steps-to-target B* (and B_noise) of the group's S(B) fit: the in-run gradient noise scale B_simple
(McCandlish et al. 2018) read at the target step, and the branched B* at each branch point (Merrill et al.
2025), each with the compute it cost. Computed by `cbs.fit.measures.group_measures`; this module only holds,
writes and reads them (JSON keys beside the fit's ``cbs`` and ``b_noise``: ``steps_to_target_cost``,
``b_simple``, ``b_simple_note``, ``branched``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from cbs.fit.result import interval, number
from cbs.fit.steps_to_target import GROUP_KEYS

if TYPE_CHECKING:
    from cbs.fit.cbs_laws import CbsGroup

MEASURE_COLUMNS = [*GROUP_KEYS, "measure", "value", "lo", "hi", "tokens", "flops", "wall_time_s", "note"]
NO_STORE = "fitted from a steps table, not a results store: no runs to read B_simple or branches from"
B_SIMPLE_WINDOW = (0.5, 2.0)  # the interval's evaluations: steps in [s*/2, 2·s*] of the run's target step s*


@dataclass(frozen=True)
class Cost:
    """What a measure trained: tokens, FLOPs (tokens × the runs' FLOPs per token), wall seconds, runs."""

    tokens: int
    flops: float
    wall_time_s: float
    n_runs: int

    def to_dict(self) -> dict[str, object]:
        return {
            "tokens": self.tokens,
            "flops": self.flops,
            "wall_time_s": self.wall_time_s,
            "n_runs": self.n_runs,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cost:
        return cls(
            int(data["tokens"]), number(data["flops"]), number(data["wall_time_s"]), int(data["n_runs"])
        )


@dataclass(frozen=True)
class BSimpleMeasure:
    """B_simple of one run at its first evaluation at or after its steps-to-target ``step``, and the range of
    its in-run values over its evaluations in [s*/2, 2·s*] (``ci``; None with one evaluation there). ``cost``:
    that run's tokens up to the evaluation read (no extra training)."""

    value: float
    ci: tuple[float, float] | None
    run_id: str
    batch_size: float
    reference: bool  # the run is at the group's reference batch size B_opt
    step: int  # the evaluation read
    target_step: float  # the run's steps-to-target s*
    n_evaluations: int  # evaluations with a b_simple value in the window
    cost: Cost

    @property
    def source(self) -> str:
        """'B=2 run 1a2b3c4d, step 40 (target 37.2)': which run and evaluation the value comes from."""
        ref = " (B_opt)" if self.reference else ""
        return f"B={self.batch_size:g}{ref} run {self.run_id[:8]}, step {self.step} (target {self.target_step:.4g})"

    def to_dict(self) -> dict[str, object]:
        return {
            "value": self.value,
            "ci": list(self.ci) if self.ci else None,
            "interval": f"range over evaluations in [{B_SIMPLE_WINDOW[0]:g}·s*, {B_SIMPLE_WINDOW[1]:g}·s*]",
            "run_id": self.run_id,
            "batch_size": self.batch_size,
            "reference": self.reference,
            "step": self.step,
            "target_step": self.target_step,
            "n_evaluations": self.n_evaluations,
            **self.cost.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BSimpleMeasure:
        return cls(
            value=number(data["value"]),
            ci=interval(data["ci"]) if data.get("ci") is not None else None,
            run_id=str(data["run_id"]),
            batch_size=float(data["batch_size"]),
            reference=bool(data["reference"]),
            step=int(data["step"]),
            target_step=float(data["target_step"]),
            n_evaluations=int(data["n_evaluations"]),
            cost=Cost.from_dict(data),
        )


@dataclass(frozen=True)
class BranchedMeasure:
    """The branched B* of one parent run at one branch point (`cbs.fit.branched`): k*, B* = k*·B and its
    interval [k*·B, next k·B] (NaN without an estimate: ``note`` says why), the smoothed losses per k, and
    the branches' cost."""

    parent_run_id: str
    batch_size: float  # the parent's B
    fraction: float
    branch_step: int
    k_star: int | None
    cbs: float
    cbs_ci: tuple[float, float]
    losses: dict[int, float]
    epsilon: float
    ema: float
    cost: Cost
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "fraction": self.fraction,
            "branch_step": self.branch_step,
            "parent_run_id": self.parent_run_id,
            "batch_size": self.batch_size,
            "k_star": self.k_star,
            "cbs": self.cbs,
            "cbs_ci": list(self.cbs_ci),
            "losses": {str(k): v for k, v in self.losses.items()},
            "epsilon": self.epsilon,
            "ema": self.ema,
            **self.cost.to_dict(),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BranchedMeasure:
        k_star = data.get("k_star")
        return cls(
            parent_run_id=str(data["parent_run_id"]),
            batch_size=float(data["batch_size"]),
            fraction=float(data["fraction"]),
            branch_step=int(data["branch_step"]),
            k_star=None if k_star is None else int(k_star),
            cbs=number(data["cbs"]),
            cbs_ci=_interval_or_nan(data["cbs_ci"]),
            losses={int(k): number(v) for k, v in data["losses"].items()},
            epsilon=float(data["epsilon"]),
            ema=float(data["ema"]),
            cost=Cost.from_dict(data),
            note=str(data.get("note", "")),
        )


@dataclass(frozen=True)
class GroupMeasures:
    """A group's measures besides its S(B) fit: the grid's cost (``steps_cost``: every grid run of the cell),
    B_simple (None, with ``b_simple_note`` saying why), and the branched B* per parent and branch point."""

    steps_cost: Cost
    b_simple: BSimpleMeasure | None
    b_simple_note: str = ""
    branched: list[BranchedMeasure] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """The group's JSON keys (beside ``cbs`` and ``b_noise``)."""
        return {
            "steps_to_target_cost": self.steps_cost.to_dict(),
            "b_simple": self.b_simple.to_dict() if self.b_simple else None,
            "b_simple_note": self.b_simple_note,
            "branched": [b.to_dict() for b in self.branched],
        }

    @staticmethod
    def absent() -> dict[str, object]:
        """The same keys for a group fitted without a store: null, and the note saying so."""
        return {"steps_to_target_cost": None, "b_simple": None, "b_simple_note": NO_STORE, "branched": None}

    @classmethod
    def from_group_dict(cls, data: Mapping[str, Any]) -> GroupMeasures | None:
        """The measures a group's JSON holds; None where it has none (no store, or written before them)."""
        if data.get("steps_to_target_cost") is None:
            return None
        b_simple = data.get("b_simple")
        return cls(
            steps_cost=Cost.from_dict(data["steps_to_target_cost"]),
            b_simple=BSimpleMeasure.from_dict(b_simple) if b_simple is not None else None,
            b_simple_note=str(data.get("b_simple_note") or ""),
            branched=[BranchedMeasure.from_dict(b) for b in data.get("branched") or []],
        )


def _interval_or_nan(value: Sequence[float | None]) -> tuple[float, float]:
    """[lo, hi] back from JSON where null is NaN (no estimate) at both ends, else `interval`."""
    lo, hi = value
    if lo is None and hi is None:
        return (math.nan, math.nan)
    return interval(value)


def measures_frame(groups: Sequence[CbsGroup]) -> pd.DataFrame:
    """One row per group and measure (MEASURE_COLUMNS): ``steps-to-target`` (B* and its bootstrap interval,
    the grid's cost), ``branched@<fraction> (B=<parent batch>)`` per parent and branch point, ``b_simple``;
    NaN where a measure has no value or interval, and ``note`` saying why. Groups without measures (fitted
    from a steps table) have no rows."""
    rows = []
    for g in groups:
        m = g.measures
        if m is None:
            continue
        key = g.cell
        lo, hi = g.fit.cbs_ci if g.fit else (math.nan, math.nan)
        rows.append(
            _row(
                key, "steps-to-target", g.fit.cbs if g.fit else math.nan, lo, hi, m.steps_cost, g.error or ""
            )
        )
        for b in m.branched:
            label = f"branched@{b.fraction:g} (B={b.batch_size:g})"
            rows.append(_row(key, label, b.cbs, *b.cbs_ci, b.cost, b.note))
        s = m.b_simple
        if s is None:
            rows.append(
                _row(key, "b_simple", math.nan, math.nan, math.nan, Cost(0, 0.0, 0.0, 0), m.b_simple_note)
            )
        else:
            lo, hi = s.ci or (math.nan, math.nan)
            gap = "" if s.ci else "one evaluation in the window: no interval"
            note = "; ".join(n for n in (s.source, m.b_simple_note, gap) if n)
            rows.append(_row(key, "b_simple", s.value, lo, hi, s.cost, note))
    return pd.DataFrame(rows, columns=MEASURE_COLUMNS)


def _row(key: tuple, measure: str, value: float, lo: float, hi: float, cost: Cost, note: str) -> dict:
    values = [*key, measure, value, lo, hi, cost.tokens, cost.flops, cost.wall_time_s, note]
    return dict(zip(MEASURE_COLUMNS, values, strict=True))


def measures_display(frame: pd.DataFrame) -> pd.DataFrame:
    """``measures_frame`` as text, one row per group and measure: cell, measure, 'B [interval]', tokens, FLOPs,
    wall seconds and the note (what `cbs fit cbs`, its Markdown and `cbs fit measures` print)."""
    rows = [
        {
            "cell": f"{r.model}, D={r.data_tokens:g}"
            + ("" if r.optimizer == "adamw" else f", {r.optimizer}"),
            "measure": r.measure,
            "B (seqs) [interval]": _value(r.value, r.lo, r.hi),
            "tokens": f"{r.tokens:,}",
            "FLOPs": f"{r.flops:.3g}",
            "wall s": f"{r.wall_time_s:.3g}",
            "note": r.note,
        }
        for r in frame.itertuples()
    ]
    return pd.DataFrame(
        rows, columns=["cell", "measure", "B (seqs) [interval]", "tokens", "FLOPs", "wall s", "note"]
    )


def render_measures(frame: pd.DataFrame, width: int | None = None) -> str:
    """A ``measures_frame`` as a table fitted to ``width`` columns, or one line saying why it is empty."""
    from cbs.console import Column, render_fitted_table

    if frame.empty:
        return f"B_simple and branched B*: not measured ({NO_STORE})"
    columns = (
        Column("cell"),
        Column("measure"),
        Column("B (seqs)\n[interval]", justify="right"),
        Column("tokens", justify="right"),
        Column("FLOPs", drop=2, justify="right"),
        Column("wall s", drop=4, justify="right"),
        Column("note", drop=3, wrap=True),
    )
    rows = [tuple(r) for r in measures_display(frame).itertuples(index=False)]
    return render_fitted_table(
        columns, rows, width, title="Critical batch size: three measures and their cost"
    )


def _value(value: float, lo: float, hi: float) -> str:
    """'512 [512, 1024]', '512' without an interval, '—' without a value."""
    if not math.isfinite(value):
        return "—"
    return f"{value:.4g}" + (f" [{lo:.4g}, {hi:.4g}]" if math.isfinite(lo) else "")
