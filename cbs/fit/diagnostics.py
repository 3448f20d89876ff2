"""Diagnostics of a CBS fit: the warnings that say when a group's numbers are not a measurement of the data.

`diagnose_group` reads one group's rows of a steps-to-target table (`cbs.fit.steps_to_target_table` or an
``--input`` table) and its `CbsFit` (None when the fit was refused) and returns `FitWarning`s with the codes
below; every output (JSON, CSV, Markdown, `cbs report`, figures) only displays them. docs/fit.md, "Diagnostics",
says what triggers each code and what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cbs.fit.hyperbola import ALPHA_BOUNDS
from cbs.fit.steps_to_target import HYPERPARAMETERS
from cbs.protocol import CBS_OVERHEAD

if TYPE_CHECKING:  # critical_batch imports the result interface, which imports FitWarning from here
    from cbs.fit.critical_batch import CbsFit

CODES = (
    "b_opt_floor",
    "b_opt_not_linear",
    "lr_edge",
    "cbs_outside_grid",
    "too_few_batches",
    "degenerate_fit",
    "unmeasured_b_opt",
    "target_unreachable",
    "target_trivial",
)

B_NOISE_FLOOR_FACTOR = 5.0
"""b_opt_floor below B_noise = 5·b_opt: B* = 1.2·b_opt + 0.2·B_noise then owes more than half of its value
(1.2 of 2.2 at the threshold) to the chosen b_opt rather than to the data (the paper has B_noise ≈ 8.6·b_opt)."""

LINEAR_RATIO_RANGE = (2 / (1 + CBS_OVERHEAD), 2 * (1 + CBS_OVERHEAD))
"""b_opt_not_linear outside S(B)/S(2B) ∈ [1.67, 2.4] for B = b_opt/2 or b_opt: linear scaling halves the steps
(ratio 2); below 2/(1+o) the doubling at b_opt already costs more than the overhead o = 0.2 that defines the
CBS, above 2·(1+o) the steps fall faster than linearly by more than o (a badly tuned or noisy neighbour)."""

MIN_REACHED_BATCHES = 4
"""too_few_batches below 4 reached batch sizes: 3 points leave one degree of freedom to a 2-parameter fit
(its bootstrap resamples one residual) and the free-exponent check needs 4."""

NEAR_ZERO_S_MIN = 0.05
"""degenerate_fit when S_min = a is below 5% of the fewest measured steps: the floor is not seen in the data
(B_noise ≳ 20× the batch sizes that give those steps)."""

REL_TOL = 1e-6
"""Relative tolerance for "at a bound", "on a grid edge" and "an interval of zero width"."""


@dataclass(frozen=True)
class FitWarning:
    """One diagnosis: a code from `CODES` (or the theory testbed's), a one-line message saying what to do, and
    the numbers that triggered it."""

    code: str
    message: str
    values: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, **self.values}


def _num(v: float) -> str:
    return f"{v:.4g}"


def _per_batch(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per batch size: the fastest row where the target was reached (else the first row), with the
    grid ends over all its rows (the table's ``*_grid_min/max`` columns and the rows' own values)."""
    steps = rows["steps_to_target"].to_numpy(float)
    rows = rows.assign(
        diag_reached=np.isfinite(steps), diag_steps=np.where(np.isfinite(steps), steps, np.inf)
    )
    out = []
    for batch, grp in rows.groupby("batch_size", sort=True):
        best = grp.iloc[int(np.argmin(grp["diag_steps"].to_numpy()))].copy()
        for hp in HYPERPARAMETERS:
            cols = [c for c in (hp, f"{hp}_grid_min", f"{hp}_grid_max") if c in grp]
            vals = (
                pd.to_numeric(grp[cols].stack(), errors="coerce").dropna() if cols else pd.Series(dtype=float)
            )
            best[f"diag_{hp}_lo"], best[f"diag_{hp}_hi"] = (
                (vals.min(), vals.max()) if len(vals) else (np.nan, np.nan)
            )
        for col in ("best_loss", "initial_loss"):
            best[col] = pd.to_numeric(grp[col], errors="coerce").min() if col in grp else np.nan
        best["batch_size"] = float(batch)
        out.append(best)
    return pd.DataFrame(out).reset_index(drop=True)


def _target(rows: pd.DataFrame) -> float | None:
    values = (
        pd.to_numeric(rows["target_loss"], errors="coerce").dropna().unique() if "target_loss" in rows else []
    )
    return float(values[0]) if len(values) == 1 else None


def _target_warnings(per: pd.DataFrame, target: float | None) -> list[FitWarning]:
    out = []
    if not per["diag_reached"].any():
        best = per["best_loss"].min()
        below = f" below every run's best loss (lowest {_num(best)})" if np.isfinite(best) else ""
        out.append(
            FitWarning(
                "target_unreachable",
                f"target {_num(target) if target is not None else '(given)'}{below}: no batch size reached it; "
                "raise the target (--target) or train longer",
                {"target_loss": target, "lowest_best_loss": float(best)},
            )
        )
    trivial = per["diag_reached"] & (per["diag_steps"] <= 0)
    if target is not None:
        trivial |= per["initial_loss"].to_numpy(float) <= target
    if trivial.any():
        batches = per.loc[trivial, "batch_size"].tolist()
        out.append(
            FitWarning(
                "target_trivial",
                f"target {_num(target) if target is not None else '(given)'} is at or above the initial loss at "
                f"B = {', '.join(map(_num, batches))}: reached at the first evaluation, so its steps measure "
                "nothing; lower the target (--target)",
                {"target_loss": target, "batch_sizes": batches},
            )
        )
    return out


def _edge_warnings(per: pd.DataFrame, b_opt: float | None, target: float | None) -> list[FitWarning]:
    out = []
    reached = per[per["diag_reached"]]
    for hp in HYPERPARAMETERS:
        if hp not in reached:
            continue
        edges = []
        values = pd.to_numeric(reached[hp], errors="coerce").to_numpy(float)
        for row, value in zip(reached.itertuples(index=False), values, strict=True):
            lo, hi = float(getattr(row, f"diag_{hp}_lo")), float(getattr(row, f"diag_{hp}_hi"))
            if not (np.isfinite(value) and np.isfinite(lo) and hi > lo):
                continue  # a grid of one value has no edge
            at_lo, at_hi = np.isclose(value, lo, rtol=REL_TOL), np.isclose(value, hi, rtol=REL_TOL)
            if not (at_lo or at_hi):
                continue
            sets_target = row.batch_size == b_opt and target is not None and np.isclose(row.best_loss, target)
            edges.append(
                {
                    "batch_size": row.batch_size,
                    "value": float(value),
                    "edge": "bottom" if at_lo else "top",
                    "grid": [lo, hi],
                    "sets_target": bool(sets_target),
                }
            )
        if edges:
            where = ", ".join(
                f"B = {_num(e['batch_size'])} ({e['edge']} {_num(e['value'])}"
                + (", its best loss sets the target" if e["sets_target"] else "")
                + ")"
                for e in edges
            )
            out.append(
                FitWarning(
                    "lr_edge",
                    f"{hp} of the fastest run sits on the edge of its grid at {where}: the optimum may lie "
                    f"outside the grid; extend the {hp} grid past that edge",
                    {"hyperparameter": hp, "edges": edges},
                )
            )
    return out


def _linear_warning(per: pd.DataFrame, b_opt: float) -> list[FitWarning]:
    steps = dict(
        zip(
            per.loc[per["diag_reached"], "batch_size"],
            per.loc[per["diag_reached"], "diag_steps"],
            strict=True,
        )
    )
    lo, hi = LINEAR_RATIO_RANGE
    ratios = {}
    for small in (b_opt / 2, b_opt):
        if steps.get(small, 0) > 0 and steps.get(2 * small, 0) > 0:  # 0 steps: target_trivial
            ratios[f"S({_num(small)})/S({_num(2 * small)})"] = steps[small] / steps[2 * small]
    bad = {k: r for k, r in ratios.items() if not lo <= r <= hi}
    if not bad:
        return []
    text = ", ".join(f"{k} = {r:.3g}" for k, r in bad.items())
    return [
        FitWarning(
            "b_opt_not_linear",
            f"b_opt = {_num(b_opt)} is not in the linear-scaling regime: {text} (linear: 2, accepted "
            f"{lo:.3g}–{hi:.3g}); choose a smaller --b-opt, or check the lr tuning next to it",
            {"b_opt": b_opt, "ratios": bad},
        )
    ]


def _fit_warnings(fit: CbsFit, reached: np.ndarray) -> list[FitWarning]:
    out = []
    if fit.b_noise < B_NOISE_FLOOR_FACTOR * fit.b_opt:
        out.append(
            FitWarning(
                "b_opt_floor",
                f"B_noise = {_num(fit.b_noise)} < {B_NOISE_FLOOR_FACTOR:g}·b_opt = {_num(B_NOISE_FLOOR_FACTOR * fit.b_opt)}: "
                f"B* = {_num(fit.cbs)} is mostly (1+o)·b_opt, not the data; measure with a smaller --b-opt",
                {"b_noise": fit.b_noise, "b_opt": fit.b_opt, "cbs": fit.cbs},
            )
        )
    lo_b, hi_b = float(reached.min()), float(reached.max())
    lo_ci, hi_ci = fit.cbs_ci
    values = [fit.cbs, *(v for v in (lo_ci, hi_ci) if not np.isnan(v))]
    if min(values) < lo_b or max(values) > hi_b:
        out.append(
            FitWarning(
                "cbs_outside_grid",
                f"B* = {_num(fit.cbs)} [{_num(lo_ci)}, {_num(hi_ci)}] reaches outside the batch sizes that reached the "
                f"target ({_num(lo_b)}–{_num(hi_b)}): extrapolated; measure batch sizes around B*",
                {"cbs": fit.cbs, "cbs_ci": [lo_ci, hi_ci], "reached_range": [lo_b, hi_b]},
            )
        )
    reasons = []
    if fit.b <= REL_TOL * fit.a * lo_b:
        reasons.append(f"b = {_num(fit.b)} at its bound 0 (steps do not depend on B)")
    if fit.a < NEAR_ZERO_S_MIN * float(fit.steps.min()):
        reasons.append(f"S_min = {_num(fit.a)} near 0 (< {NEAR_ZERO_S_MIN:g}× the fewest measured steps)")
    v = fit.alpha_variant
    if v is not None and any(np.isclose(v.alpha, bound, rtol=1e-3) for bound in ALPHA_BOUNDS):
        reasons.append(f"free exponent α = {v.alpha:.3g} at its bound {ALPHA_BOUNDS}")
    if np.isfinite(hi_ci) and np.isfinite(lo_ci) and hi_ci - lo_ci <= REL_TOL * abs(fit.cbs):
        reasons.append("the interval of B* has zero width (the fit leaves no residuals to resample)")
    if reasons:
        out.append(
            FitWarning(
                "degenerate_fit",
                f"degenerate fit: {'; '.join(reasons)}; measure more batch sizes around B*",
                {"reasons": reasons, "a": fit.a, "b": fit.b},
            )
        )
    return out


def diagnose_group(rows: pd.DataFrame, fit: CbsFit | None, b_opt: float | None) -> list[FitWarning]:
    """The warnings of one (model, data size) group, in `CODES` order, from its steps-table rows (columns
    ``batch_size``, ``steps_to_target`` and, where present, ``target_loss``, ``lr``, ``beta2``, ``ewa_tau``,
    their ``*_grid_min/max``, ``best_loss``, ``initial_loss``), its fit (None if refused) and its B_opt
    (None if it could not be resolved). Checks that need what is missing are left out, never guessed."""
    per = _per_batch(rows)
    target = _target(rows)
    reached = per.loc[per["diag_reached"], "batch_size"].to_numpy(float)
    out: list[FitWarning] = []
    if fit is not None:
        out += _fit_warnings(fit, reached)
    if b_opt is not None:
        out += _linear_warning(per, b_opt)
    out += _edge_warnings(per, b_opt, target)
    if reached.size < MIN_REACHED_BATCHES:
        out.append(
            FitWarning(
                "too_few_batches",
                f"only {reached.size} batch size(s) reached the target (need ≥ {MIN_REACHED_BATCHES} for a "
                "trustworthy S(B) fit); measure more batch sizes or train longer",
                {"n_reached": int(reached.size), "min_reached": MIN_REACHED_BATCHES},
            )
        )
    if b_opt is not None and not np.isclose(per["batch_size"].to_numpy(float), b_opt, rtol=REL_TOL).any():
        out.append(
            FitWarning(
                "unmeasured_b_opt",
                f"b_opt = {_num(b_opt)} is not a batch size any run used ({', '.join(map(_num, per['batch_size']))}): "
                "S(b_opt) is the fit's extrapolation; pass a measured --b-opt",
                {"b_opt": b_opt, "batch_sizes": per["batch_size"].tolist()},
            )
        )
    out += _target_warnings(per, target)
    order = {code: i for i, code in enumerate(CODES)}
    return sorted(out, key=lambda w: order[w.code])
