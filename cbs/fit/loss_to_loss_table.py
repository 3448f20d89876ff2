"""Loss-to-loss from wide tables (one row per run, one column per loss) or a results store.

Rows of ``x_group`` give x = ``x_col``, rows of ``y_group`` give y = ``y_col``; models are paired on equal
(N, D). Same group with two columns = train-to-test; same column, two groups = test-to-test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from cbs.errors import FitError
from cbs.fit.diagnostics import FitWarning
from cbs.fit.loss_to_loss import LossToLossFit, fit_loss_to_loss
from cbs.fit.loss_to_loss_joint import JointInterval, LawData, joint_bootstrap
from cbs.fit.result import JsonEquality, SolverDiagnostics, fmt
from cbs.fit.scaling_law import FORMS, ScalingLawFit, fit_scaling_law
from cbs.fit.tables import Numeric, numeric_columns, require_columns, require_run_tables
from cbs.results import without_branches

INTERVALS = ("joint", "e-fixed")


@dataclass(frozen=True)
class Columns:
    """Where the pairing variables and the two losses live in the table."""

    group: str
    n: str
    d: str
    x_group: str
    x_col: str
    y_group: str
    y_col: str


PAIR_COLUMNS = ["n", "d", "x", "y", "y_pred"]


def _law(data: Mapping[str, Any] | None) -> ScalingLawFit | None:
    return ScalingLawFit.from_dict(data) if data else None


@dataclass(frozen=True, eq=False)
class LossToLossAnalysis(JsonEquality):
    """A loss-to-loss fit with the L(N, D) laws that gave its shifts; equal to another when their JSON is."""

    fit: LossToLossFit  # its kappa_ci, K_ci, E_y_ci hold E_x (and a given or L(N, D) E_y) fixed
    law_x: ScalingLawFit | None  # the L(N, D) fit that gave E_x (None when E_x was given)
    law_y: ScalingLawFit | None
    translated: ScalingLawFit | None  # law_x carried to the y losses
    pairs: pd.DataFrame  # n, d, x, y, y_pred
    holdout: pd.DataFrame | None  # n, d, x, y, y_pred, rel_error
    form: str = "kaplan"  # of the L(N, D) fits that gave E_x, E_y
    joint: JointInterval | None = None  # intervals that refit E_x, E_y on every resample
    columns: Columns | None = None  # where the losses came from (None: not recorded)

    @property
    def interval(self) -> str:
        """Which interval the headline ``kappa_ci``/``K_ci`` are: "joint" when computed, else "e-fixed"."""
        return "joint" if self.joint is not None else "e-fixed"

    @property
    def diagnostics(self) -> SolverDiagnostics:
        """The κ fit, the L(N, D) fits and the joint bootstrap as one verdict."""
        parts = [self.fit.diagnostics] + [law.diagnostics for law in (self.law_x, self.law_y) if law]
        return SolverDiagnostics.combine(
            parts + ([self.joint.diagnostics] if self.joint else []), "loss-to-loss with its L(N, D) fits"
        )

    @property
    def warnings(self) -> list[FitWarning]:
        """The κ fit's and the L(N, D) fits' warnings."""
        return self.fit.warnings + [w for law in (self.law_x, self.law_y) if law for w in law.warnings]

    def intervals(self) -> dict[str, tuple[float, float]]:
        """The headline intervals of κ, K (and E_x, E_y): joint when computed, else E-fixed."""
        if self.joint is None:
            return self.fit.intervals()
        j = self.joint
        return {"kappa": j.kappa_ci, "K": j.K_ci, "E_x": j.E_x_ci, "E_y": j.E_y_ci}

    def predict(self, x: object) -> np.ndarray:
        """ŷ = K·(x − E_x)^κ + E_y."""
        return self.fit.predict(x)

    def report(self) -> str:
        """What `cbs fit loss-to-loss` prints: κ, K, E_x, E_y with the headline intervals, where E came from,
        the E-fixed interval beside a joint one, held-out errors, solver verdicts and warnings."""
        f, j, c, ci = self.fit, self.joint, self.columns, self.intervals()
        where = f"{c.x_group}:{c.x_col} → {c.y_group}:{c.y_col}" if c else "x → y"
        fitted = [name for name, law in (("E_x", self.law_x), ("E_y", self.law_y)) if law is not None]
        source = f"{', '.join(fitted)} from {self.form}-form L(N, D) fits; " if fitted else ""
        lines = [
            f"{where} on {f.n_points} (N, D) pairs",
            f"  {source}intervals: {self.interval}",
            f"  κ = {fmt(f.kappa, ci['kappa'])}   K = {fmt(f.K, ci['K'])}",
            f"  E_x = {fmt(f.E_x, ci.get('E_x'))}   E_y = {fmt(f.E_y, ci.get('E_y'))}   "
            f"R² = {f.r2:.4f} (log-log {f.r2_log:.4f})",
        ]
        if j:
            lines.append(
                f"  E-fixed κ interval {fmt(f.kappa, f.kappa_ci)}; joint bootstrap: {j.n_ok}/{j.n_boot} "
                f"resamples in {j.seconds:.1f} s"
            )
        if self.holdout is not None:
            lines += [
                f"  held out N={r.n:.3g} D={r.d:.3g}: y={r.y:.4f} ŷ={r.y_pred:.4f} rel. error {r.rel_error:+.2%}"
                for r in self.holdout.itertuples()
            ]
        lines += [f"  {name}: {d.describe()}" for name, d in self._solvers()]
        return "\n".join(lines + [f"warning: {w.code} — {w.message}" for w in self.warnings])

    def _solvers(self) -> list[tuple[str, SolverDiagnostics]]:
        laws = [
            (f"L(N, D) of {n}", law.diagnostics) for n, law in (("x", self.law_x), ("y", self.law_y)) if law
        ]
        return [("κ fit", self.fit.diagnostics), *laws]

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.fit.to_dict())
        out["kappa_diagnostics"] = out.pop("diagnostics")
        e_fixed = {k: out[k] for k in ("kappa_ci", "K_ci", "E_y_ci", "n_boot")}
        out["form"] = self.form
        out["interval"] = self.interval
        out["intervals"] = {"e_fixed": e_fixed, "joint": self.joint.to_dict() if self.joint else None}
        if self.joint is not None:
            out.update(
                {k: self.joint.to_dict()[k] for k in ("kappa_ci", "K_ci", "E_x_ci", "E_y_ci", "n_boot")}
            )
        out["columns"] = vars(self.columns) if self.columns else None
        out["E_x_source"] = "L(N, D) fit" if self.law_x is not None else "given"
        out["E_y_source"] = "fitted" if self.fit.E_y_fitted else ("L(N, D) fit" if self.law_y else "given")
        out["law_x"] = self.law_x.to_dict() if self.law_x else None
        out["law_y"] = self.law_y.to_dict() if self.law_y else None
        out["translated_law"] = self.translated.to_dict() if self.translated else None
        out["pairs"] = self.pairs[PAIR_COLUMNS].to_dict(orient="records")
        if self.holdout is not None:
            out["holdout"] = self.holdout.to_dict(orient="records")
            out["holdout_mean_abs_rel_error"] = float(self.holdout["rel_error"].abs().mean())
        out["diagnostics"] = self.diagnostics.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossToLossAnalysis:
        """The analysis ``to_dict`` wrote; the κ fit takes the E-fixed intervals (the headline ones may be
        the joint bootstrap's). A file without ``pairs`` (older) gives an empty pairs table."""
        e_fixed = (data.get("intervals") or {}).get("e_fixed") or {}
        fit = LossToLossFit.from_dict({**data, **e_fixed, "diagnostics": data.get("kappa_diagnostics")})
        joint = (data.get("intervals") or {}).get("joint")
        held = data.get("holdout")
        cols = data.get("columns")
        return cls(
            fit=fit,
            law_x=_law(data.get("law_x")),
            law_y=_law(data.get("law_y")),
            translated=_law(data.get("translated_law")),
            pairs=pd.DataFrame.from_records(data.get("pairs", []), columns=PAIR_COLUMNS),
            holdout=pd.DataFrame.from_records(held) if held is not None else None,
            form=str(data.get("form", "chinchilla")),
            joint=JointInterval.from_dict(joint) if joint else None,
            columns=Columns(**cols) if cols else None,
        )


def final_loss_table(runs: pd.DataFrame, curves: pd.DataFrame, *, ewa: bool = True) -> pd.DataFrame:
    """A wide table from a runs table and its curves (``ResultsStore.tables()``): one row per run with dataset,
    n_params, data_tokens and the final (last evaluated step) loss on every eval set as a column named after
    the set."""
    require_run_tables(runs, curves, "final_loss_table")
    runs = without_branches(runs)  # `cbs branch` runs are no grid points
    loss = "ewa_eval_loss" if ewa else "eval_loss"
    last = curves.dropna(subset=[loss]).sort_values("step").groupby(["run_id", "eval_set"])[loss].last()
    wide = last.unstack("eval_set").reset_index()
    runs = runs.assign(data_tokens=runs["data_tokens"].fillna(runs["token_budget"]))
    return runs[["run_id", "dataset", "n_params", "data_tokens"]].merge(wide, on="run_id", how="inner")


def pair_losses(table: pd.DataFrame, cols: Columns, what: str = "the loss-to-loss table") -> pd.DataFrame:
    """(n, d, x, y) for the models present in both groups with equal (N, D). N, D and the group's loss are
    checked finite and > 0 in every row of the x and y groups (`numeric_columns`; FitError names the cell)."""
    require_columns(table, [cols.group, cols.n, cols.d, cols.x_col, cols.y_col], what)
    groups = set(table[cols.group].astype(str))
    for g in (cols.x_group, cols.y_group):
        if g not in groups:
            raise FitError(f"group {g!r} is not in column {cols.group!r}; it holds {sorted(groups)}")

    def side(group: str, col: str, name: str) -> pd.DataFrame:
        mask = (table[cols.group].astype(str) == group).to_numpy()
        numbers = [Numeric(cols.n), Numeric(cols.d), Numeric(col)]
        rows = numeric_columns(table, numbers, what, rows=mask)[mask]
        out = pd.DataFrame({"n": rows[cols.n], "d": rows[cols.d], name: rows[col]})
        dup = out.duplicated(["n", "d"])
        if dup.any():
            raise FitError(
                f"group {group!r} has {int(dup.sum())} runs sharing (N, D); pairing needs one run per (N, D)"
            )
        return out

    pairs = side(cols.x_group, cols.x_col, "x").merge(side(cols.y_group, cols.y_col, "y"), on=["n", "d"])
    if pairs.empty:
        raise FitError(
            f"no (N, D) is shared by groups {cols.x_group!r} and {cols.y_group!r}; nothing to pair"
        )
    return pairs.sort_values(["n", "d"]).reset_index(drop=True)


LawCache = dict[tuple[object, ...], LawData]


def _law_data(
    table: pd.DataFrame, cols: Columns, group: str, col: str, form: str, n_starts: int, n_boot: int, seed: int,
    cache: LawCache | None,
) -> LawData:  # fmt: skip
    key = (group, col, form, n_starts, n_boot, seed)
    if cache is not None and key in cache:
        return cache[key]
    rows = table[table[cols.group].astype(str) == group]
    n, d, loss = (rows[c].to_numpy(float) for c in (cols.n, cols.d, col))
    law = fit_scaling_law(n, d, loss, form=form, n_starts=n_starts, n_boot=n_boot, seed=seed)
    out = LawData(law, n, d, loss)
    if cache is not None:
        cache[key] = out
    return out


def fit_loss_to_loss_table(
    table: pd.DataFrame,
    cols: Columns,
    *,
    E_x: float | None = None,  # noqa: N803
    E_y: float | None = None,  # noqa: N803
    fit_E_y: bool = False,  # noqa: N803
    holdout: pd.DataFrame | None = None,
    form: str = "kaplan",
    interval: str = "joint",
    n_starts: int = 4500,
    n_boot: int = 1000,
    seed: int = 0,
    law_cache: LawCache | None = None,
) -> LossToLossAnalysis:
    """Pair, fit E_x/E_y by per-(group, column) L(N, D) fits of ``form`` unless given, fit the loss-to-loss
    law, translate the x law to y, and score relative errors of ŷ on ``holdout`` runs (paired the same way).

    ``form`` defaults to the paper's (Kaplan). The E-fixed pairs bootstrap is always computed; with
    ``interval="joint"`` and an E from an L(N, D) fit, the joint cell bootstrap (``joint_bootstrap``) is too,
    and the laws' intervals come from its refits. ``law_cache`` (a dict, filled here) shares the L(N, D) fits
    between calls on the same ``table``, e.g. over every pair of training sets."""
    if form not in FORMS:
        raise FitError(f"unknown scaling-law form {form!r}; choose one of {FORMS}")
    if interval not in INTERVALS:
        raise FitError(f"unknown interval {interval!r}; choose one of {INTERVALS}")
    pairs = pair_losses(table, cols)
    held = pair_losses(holdout, cols, "the holdout table") if holdout is not None else None
    fit_y_law = E_y is None and not fit_E_y
    joint = interval == "joint" and n_boot > 0 and (E_x is None or fit_y_law)
    law_boot = 0 if joint else n_boot  # joint: the laws' samples are the joint refits
    side_x = None
    if E_x is None:
        side_x = _law_data(table, cols, cols.x_group, cols.x_col, form, n_starts, law_boot, seed, law_cache)
        E_x = side_x.law.E
    side_y = (
        _law_data(table, cols, cols.y_group, cols.y_col, form, n_starts, law_boot, seed, law_cache)
        if fit_y_law
        else None
    )
    e_x = float(E_x)
    e_y = side_y.law.E if side_y else E_y
    fit = fit_loss_to_loss(
        pairs["x"], pairs["y"], E_x=e_x, E_y=e_y, fit_E_y=fit_E_y, n_boot=n_boot, seed=seed
    )
    law_x = side_x.law if side_x else None
    law_y = side_y.law if side_y else None
    boot = None
    if joint:
        boot = joint_bootstrap(
            pairs, law_x=side_x, law_y=side_y, E_x=e_x, E_y=None if fit_E_y else e_y, n_boot=n_boot, seed=seed
        )
        if law_x is not None and boot.law_x_samples is not None:  # a law given is a law refitted
            law_x = replace(law_x, samples=boot.law_x_samples)
        if law_y is not None and boot.law_y_samples is not None:
            law_y = replace(law_y, samples=boot.law_y_samples)
    pairs = pairs.assign(y_pred=fit.predict(pairs["x"]))
    if held is not None:
        if (held["x"] <= fit.E_x).any():
            raise FitError(f"a held-out x loss is at or below E_x = {fit.E_x:.4g}; the law cannot predict it")
        held = held.assign(y_pred=fit.predict(held["x"]))
        held["rel_error"] = (held["y_pred"] - held["y"]) / held["y"]
    translated = None
    if law_x is not None:  # with the joint bootstrap, law and loss-to-loss samples are the same resamples
        paired = replace(fit, samples=boot.samples[:, [0, 1, 3]]) if boot is not None else fit
        translated = paired.translate(law_x)
    return LossToLossAnalysis(
        fit=fit,
        law_x=law_x,
        law_y=law_y,
        translated=translated,
        pairs=pairs,
        holdout=held,
        form=form,
        joint=boot,
        columns=cols,
    )
