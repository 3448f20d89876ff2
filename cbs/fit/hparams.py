"""Optimal batch size and learning rate as power laws of the training budget.

DeepSeek LLM (2024): B_opt = c·C^k and lr_opt = c·C^k in compute C; Power Lines (Bergsma et al. 2025): B_opt
as a power law in data D, independent of model size N (checked by a joint law in N and D). Per budget (one C,
or one (N, D) cell) a quadratic bowl in (log B, log lr) is fitted to the final losses of the runs within a band
of the best loss; its minimum is the budget's optimum. A bowl that is not convex, or whose minimum lies outside
the grid of batch sizes and learning rates, falls back to the best run and says so with a warning code.
Intervals: a bootstrap over runs (resampled within each budget; every resample refits every bowl and both laws).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cbs.errors import FitError
from cbs.fit.bootstrap import ci_tuple, resample_counts
from cbs.fit.diagnostics import FitWarning
from cbs.fit.power_law import JointPowerLawFit, fit_joint_power_law
from cbs.fit.result import SolverDiagnostics, fmt, interval, law_intervals, number
from cbs.fit.tables import Numeric, numeric_columns, require_columns

DEFAULT_BAND = 0.05  # bowl fitted to runs within 5% of the budget's best loss (widened until identifiable)
MIN_RUNS = 6  # a quadratic in two variables has 6 coefficients
MIN_LEVELS = 3  # distinct batch sizes and distinct learning rates a bowl needs
MIN_BUDGETS = 3

NOT_CONVEX = "bowl_not_convex"
OUTSIDE_GRID = "bowl_optimum_outside_grid"
TOO_FEW_RUNS = "too_few_runs_for_bowl"
ON_EDGE = "optimum_on_grid_edge"
RUNS_WITHOUT_LOSS = "runs_without_loss"
WARNING_TEXT = {
    NOT_CONVEX: "the fitted bowl is not convex; the optimum is the best run (grid argmin)",
    OUTSIDE_GRID: "the bowl's minimum lies outside the grid; the optimum is the best run (grid argmin), "
    "a bound rather than an estimate — extend the grid",
    TOO_FEW_RUNS: "too few distinct runs for a bowl; the optimum is the best run (grid argmin)",
    ON_EDGE: "the optimum is a run at the smallest or largest batch size or lr of the grid: a bound, not an "
    "estimate",
    RUNS_WITHOUT_LOSS: "some runs have no finite loss (diverged, or censored before the budget) and were "
    "left out of the bowl",
}


@dataclass(frozen=True)
class HparamColumns:
    """Where a table holds the budget (``compute``, or ``n`` and ``d``), batch size, learning rate and loss."""

    batch: str = "batch_size"
    lr: str = "lr"
    loss: str = "loss"
    compute: str | None = None
    n: str | None = None
    d: str | None = None

    def __post_init__(self) -> None:
        if (self.compute is None) == (self.n is None or self.d is None):
            raise FitError(
                "give the budget as a compute column, or as N and D columns (not both, not neither)"
            )

    @property
    def budget(self) -> list[str]:
        """The columns that identify one budget."""
        if self.compute is not None:
            return [self.compute]
        assert self.n is not None and self.d is not None  # __post_init__ refuses anything else
        return [self.n, self.d]

    @property
    def law_variable(self) -> str:
        """The variable of the one-variable laws: compute (DeepSeek), else D (Power Lines)."""
        return self.budget[-1]


@dataclass(frozen=True)
class Optimum:
    """The (log B, log lr) minimising the loss of one budget's runs, and how it was found."""

    log_b: float
    log_lr: float
    loss: float  # the bowl's minimum (or the best run's loss on a fallback)
    method: str  # "bowl" | "grid_argmin"
    warning: str | None
    n_used: int  # runs the bowl was fitted to


@dataclass(frozen=True)
class BudgetOptimum:
    """The optimum of one budget with bootstrap intervals, or why it has none (``error``)."""

    budget: dict[str, float]
    n_runs: int
    n_without_loss: int
    best_loss: float
    optimum: Optimum | None
    b_opt_ci: tuple[float, float]
    lr_opt_ci: tuple[float, float]
    warnings: tuple[str, ...]
    error: str | None = None

    @property
    def b_opt(self) -> float:
        return float(np.exp(self.optimum.log_b)) if self.optimum else float("nan")

    @property
    def lr_opt(self) -> float:
        return float(np.exp(self.optimum.log_lr)) if self.optimum else float("nan")

    def to_dict(self) -> dict[str, object]:
        o = self.optimum
        return {
            **self.budget,
            "b_opt": self.b_opt,
            "b_opt_ci": list(self.b_opt_ci),
            "lr_opt": self.lr_opt,
            "lr_opt_ci": list(self.lr_opt_ci),
            "loss_at_opt": o.loss if o else None,
            "best_loss": self.best_loss,
            "method": o.method if o else None,
            "n_runs": self.n_runs,
            "n_bowl_runs": o.n_used if o else 0,
            "n_without_loss": self.n_without_loss,
            "warnings": list(self.warnings),
            "error": self.error,
            "log_b_opt": o.log_b if o else None,
            "log_lr_opt": o.log_lr if o else None,
            "bowl_warning": o.warning if o else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], budget: list[str]) -> BudgetOptimum:
        """The budget ``to_dict`` wrote, its columns named ``budget``; a file without ``log_b_opt`` (older)
        takes the logs of ``b_opt`` and ``lr_opt``."""
        optimum = None
        if data["method"] is not None:
            log_b = data.get("log_b_opt")
            log_lr = data.get("log_lr_opt")
            optimum = Optimum(
                log_b=float(np.log(data["b_opt"])) if log_b is None else float(log_b),
                log_lr=float(np.log(data["lr_opt"])) if log_lr is None else float(log_lr),
                loss=float(data["loss_at_opt"]),
                method=str(data["method"]),
                warning=data.get("bowl_warning"),
                n_used=int(data["n_bowl_runs"]),
            )
        return cls(
            budget={name: float(data[name]) for name in budget},
            n_runs=int(data["n_runs"]),
            n_without_loss=int(data["n_without_loss"]),
            best_loss=number(data["best_loss"]),
            optimum=optimum,
            b_opt_ci=interval(data["b_opt_ci"]),
            lr_opt_ci=interval(data["lr_opt_ci"]),
            warnings=tuple(data["warnings"]),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class HparamLaw:
    """y = coefficient·Π_j x_j^{exponents[j]} across budgets (y = B_opt or lr_opt).

    ``coefficient_ci``/``exponent_cis``: bootstrap over runs (every bowl refitted); ``*_residual``: the residual
    bootstrap across budgets of the power-law fit alone (the scatter of the optima about the law)."""

    target: str
    fit: JointPowerLawFit
    coefficient_ci: tuple[float, float]
    exponent_cis: dict[str, tuple[float, float]]

    @property
    def variables(self) -> list[str]:
        return list(self.fit.exponents)

    @property
    def coefficient(self) -> float:
        return self.fit.coefficient

    @property
    def exponents(self) -> dict[str, float]:
        return self.fit.exponents

    def predict(self, **xs: object) -> np.ndarray:
        """The law at the given budget variables (keyword per variable)."""
        return self.fit.predict(**xs)

    @property
    def diagnostics(self) -> SolverDiagnostics:
        """The power-law fit's (linear least squares; resamples: the residual bootstrap across budgets)."""
        return self.fit.diagnostics

    @property
    def warnings(self) -> list[FitWarning]:
        """The power-law fit's (none: the budgets' warnings belong to the analysis)."""
        return self.fit.warnings

    def intervals(self) -> dict[str, tuple[float, float]]:
        """Run-bootstrap intervals of the coefficient and each exponent ('exponent.<variable>')."""
        return law_intervals(self.coefficient_ci, self.exponent_cis)

    def report(self) -> str:
        """One line: the law with its run-bootstrap intervals, the across-budget interval and R²."""
        y = "B_opt" if self.target == "b_opt" else "lr_opt"
        terms = "·".join(f"{name}^{k:.4f}" for name, k in self.exponents.items())
        cis = ", ".join(
            f"{name} [{lo:.3f}, {hi:.3f}] (across budgets [{self.fit.exponent_cis[name][0]:.3f}, "
            f"{self.fit.exponent_cis[name][1]:.3f}])"
            for name, (lo, hi) in self.exponent_cis.items()
        )
        c_lo, c_hi = self.coefficient_ci
        return (
            f"{y} = {self.coefficient:.4g}·{terms}; coefficient [{c_lo:.4g}, {c_hi:.4g}], exponent {cis}; "
            f"R² {self.fit.r2:.3f} over {self.fit.n_points} budgets"
        )

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "target": self.target,
            "variables": self.variables,
            "coefficient": self.coefficient,
            "coefficient_ci": list(self.coefficient_ci),
            "coefficient_ci_residual": list(self.fit.coefficient_ci),
        }
        if len(self.variables) == 1:
            (name,) = self.variables
            out |= {
                "exponent": self.exponents[name],
                "exponent_ci": list(self.exponent_cis[name]),
                "exponent_ci_residual": list(self.fit.exponent_cis[name]),
            }
        else:
            out |= {
                "exponents": dict(self.exponents),
                "exponent_cis": {k: list(v) for k, v in self.exponent_cis.items()},
                "exponent_cis_residual": {k: list(v) for k, v in self.fit.exponent_cis.items()},
            }
        return out | {
            "r2": self.fit.r2,
            "n_points": self.fit.n_points,
            "diagnostics": self.fit.diagnostics.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HparamLaw:
        """The law ``to_dict`` wrote (its power-law fit without bootstrap samples)."""
        names = [str(v) for v in data["variables"]]
        if len(names) == 1:
            exponents = {names[0]: data["exponent"]}
            cis, residual = {names[0]: data["exponent_ci"]}, {names[0]: data["exponent_ci_residual"]}
        else:
            exponents, cis, residual = data["exponents"], data["exponent_cis"], data["exponent_cis_residual"]
        fit = JointPowerLawFit.from_dict(
            {
                "coefficient": data["coefficient"],
                "coefficient_ci": data["coefficient_ci_residual"],
                "exponents": exponents,
                "exponent_cis": residual,
                "n_points": data["n_points"],
                "r2": data["r2"],
                "diagnostics": data.get("diagnostics"),
            }
        )
        return cls(
            str(data["target"]),
            fit,
            interval(data["coefficient_ci"]),
            {name: interval(cis[name]) for name in names},
        )


@dataclass(frozen=True)
class HparamAnalysis:
    """Per-budget optima and the laws of B_opt and lr_opt across budgets."""

    budgets: list[BudgetOptimum]
    batch_law: HparamLaw
    lr_law: HparamLaw
    joint_laws: dict[str, HparamLaw]  # N/D budgets only: B_opt and lr_opt as c·N^a·D^b, where identifiable
    joint_laws_absent: str | None
    columns: HparamColumns
    band: float
    n_boot: int

    @property
    def warning_budgets(self) -> dict[str, list[dict[str, float]]]:
        """Each warning code with the budgets it applies to."""
        out: dict[str, list[dict[str, float]]] = {}
        for b in self.budgets:
            for code in b.warnings:
                out.setdefault(code, []).append(b.budget)
        return out

    @property
    def warnings(self) -> list[FitWarning]:
        """One warning per code, with the budgets it applies to (``values["budgets"]``)."""
        return [
            FitWarning(code, WARNING_TEXT[code], {"budgets": budgets})
            for code, budgets in self.warning_budgets.items()
        ]

    @property
    def laws(self) -> dict[str, HparamLaw]:
        """Every law by name: batch, lr and the joint laws (joint_batch, joint_lr)."""
        return {"batch": self.batch_law, "lr": self.lr_law} | {
            f"joint_{k}": v for k, v in self.joint_laws.items()
        }

    @property
    def diagnostics(self) -> SolverDiagnostics:
        """The laws' fits as one verdict (the bowls are linear least squares)."""
        return SolverDiagnostics.combine(
            [law.diagnostics for law in self.laws.values()], "bowls and power laws"
        )

    def intervals(self) -> dict[str, tuple[float, float]]:
        """Each law's intervals, keyed '<law>.coefficient' and '<law>.exponent.<variable>'."""
        return {f"{name}.{k}": v for name, law in self.laws.items() for k, v in law.intervals().items()}

    def predict(self, **xs: object) -> tuple[np.ndarray, np.ndarray]:
        """(B_opt, lr_opt) from the one-variable laws at their variable (keyword, e.g. ``C=1e20``)."""
        return self.batch_law.predict(**xs), self.lr_law.predict(**xs)

    def to_dict(self) -> dict[str, object]:
        return {
            "columns": vars(self.columns),
            "band": self.band,
            "n_boot": self.n_boot,
            "ci_level": 0.95,
            "budgets": [b.to_dict() for b in self.budgets],
            "batch_law": self.batch_law.to_dict(),
            "lr_law": self.lr_law.to_dict(),
            "joint_laws": {k: v.to_dict() for k, v in self.joint_laws.items()},
            "joint_laws_absent": self.joint_laws_absent,
            "warnings": [w.to_dict() for w in self.warnings],
            "diagnostics": self.diagnostics.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HparamAnalysis:
        """The analysis ``to_dict`` wrote (laws without their bootstrap samples)."""
        columns = HparamColumns(**data["columns"])
        return cls(
            budgets=[BudgetOptimum.from_dict(b, columns.budget) for b in data["budgets"]],
            batch_law=HparamLaw.from_dict(data["batch_law"]),
            lr_law=HparamLaw.from_dict(data["lr_law"]),
            joint_laws={k: HparamLaw.from_dict(v) for k, v in data["joint_laws"].items()},
            joint_laws_absent=data.get("joint_laws_absent"),
            columns=columns,
            band=float(data["band"]),
            n_boot=int(data["n_boot"]),
        )

    def report(self, width: int | None = None) -> str:
        """What `cbs fit hparams` prints: the budgets' table (fitted to ``width`` columns), then the laws."""
        from cbs.console import Column, render_fitted_table

        columns = (
            *(Column(c, justify="right") for c in self.columns.budget),
            Column("B_opt [CI]", justify="right"),
            Column("lr_opt [CI]", justify="right"),
            Column("loss at opt", drop=3, justify="right"),
            Column("method", drop=4),
            Column("runs (bowl)", drop=5, justify="right"),
            Column("warnings", drop=2, wrap=True),
        )
        rows = [
            (
                *(f"{v:.4g}" for v in b.budget.values()),
                fmt(b.b_opt, b.b_opt_ci) if b.optimum else "-",
                fmt(b.lr_opt, b.lr_opt_ci) if b.optimum else "-",
                f"{b.optimum.loss:.4f}" if b.optimum else "-",
                b.optimum.method if b.optimum else "-",
                f"{b.n_runs} ({b.optimum.n_used})" if b.optimum else str(b.n_runs),
                b.error or ", ".join(b.warnings),
            )
            for b in self.budgets
        ]
        title = f"Optimal batch size and lr per budget (bowl band {self.band:g}, 95% CI)"
        return "\n".join([render_fitted_table(columns, rows, width, title=title), *self.law_lines()])

    def markdown(self) -> str:
        """The budgets as a Markdown table, then the laws as a list (`cbs fit hparams --markdown`)."""
        from cbs.fit.tables import to_markdown

        return to_markdown(self.to_frame()) + "\n" + "\n".join(f"- {x}" for x in self.law_lines()) + "\n"

    def law_lines(self) -> list[str]:
        """The laws, absent joint laws and warning codes as lines of text."""
        lines = [law.report() for law in self.laws.values()]
        if self.joint_laws_absent:
            lines.append(f"no joint law in N and D: {self.joint_laws_absent}")
        fallback = sum(b.optimum.method == "grid_argmin" for b in self.budgets if b.optimum)
        if fallback:
            n_laws = self.batch_law.fit.n_points
            lines.append(f"{fallback} of the {n_laws} optima in the laws are grid argmins, not bowl minima")
        for code, budgets in self.warning_budgets.items():
            lines.append(
                f"warning {code} ({len(budgets)} of {len(self.budgets)} budgets): {WARNING_TEXT[code]}"
            )
        return lines

    def to_frame(self) -> pd.DataFrame:
        """One row per budget."""
        rows = []
        for b in self.budgets:
            d = {k: v for k, v in b.to_dict().items() if k not in ("b_opt_ci", "lr_opt_ci")}
            (d["b_opt_lo"], d["b_opt_hi"]), (d["lr_opt_lo"], d["lr_opt_hi"]) = b.b_opt_ci, b.lr_opt_ci
            d["warnings"] = ",".join(b.warnings)
            rows.append(d)
        return pd.DataFrame(rows)


def _identifiable(log_b: np.ndarray, log_lr: np.ndarray) -> bool:
    points = np.unique(np.column_stack([log_b, log_lr]), axis=0)
    return (
        len(points) >= MIN_RUNS
        and np.unique(log_b).size >= MIN_LEVELS
        and np.unique(log_lr).size >= MIN_LEVELS
    )


def _bowl_runs(log_b: np.ndarray, log_lr: np.ndarray, loss: np.ndarray, band: float) -> np.ndarray | None:
    """Indices of the runs within ``band`` (relative) of the best loss, widened run by run in order of loss
    until a quadratic is identifiable; None when even all runs do not identify one."""
    order = np.argsort(loss, kind="stable")
    k = int(np.sum(loss <= loss[order[0]] + band * abs(loss[order[0]])))
    for stop in range(k, loss.size + 1):
        if _identifiable(log_b[order[:stop]], log_lr[order[:stop]]):
            return order[:stop]
    return None


def bowl_optimum(
    log_b: np.ndarray, log_lr: np.ndarray, loss: np.ndarray, weight: np.ndarray, band: float
) -> Optimum:
    """Minimum of loss ≈ quadratic(log B, log lr), weighted least squares over the runs near the best loss.

    Falls back to the best run (method ``grid_argmin``) with a warning code when the bowl is not identifiable,
    not convex (Hessian not positive definite), or has its minimum outside the runs' range of B or lr."""
    keep = weight > 0
    log_b, log_lr, loss, weight = log_b[keep], log_lr[keep], loss[keep], weight[keep]
    best = int(np.argmin(loss))

    def fallback(warning: str, n_used: int) -> Optimum:
        return Optimum(
            float(log_b[best]), float(log_lr[best]), float(loss[best]), "grid_argmin", warning, n_used
        )

    idx = _bowl_runs(log_b, log_lr, loss, band)
    if idx is None:
        return fallback(TOO_FEW_RUNS, 0)
    x0, y0 = log_b[idx].mean(), log_lr[idx].mean()
    x, y = log_b[idx] - x0, log_lr[idx] - y0
    design = np.column_stack([np.ones_like(x), x, y, x * x, x * y, y * y])
    sw = np.sqrt(weight[idx])
    coef = np.linalg.lstsq(design * sw[:, None], loss[idx] * sw, rcond=None)[0]
    hessian = np.array([[2 * coef[3], coef[4]], [coef[4], 2 * coef[5]]])
    if np.linalg.eigvalsh(hessian).min() <= 0:
        return fallback(NOT_CONVEX, idx.size)
    dx, dy = np.linalg.solve(hessian, -coef[1:3])
    opt_b, opt_lr = x0 + dx, y0 + dy
    tol = 1e-9
    if not (
        log_b.min() - tol <= opt_b <= log_b.max() + tol and log_lr.min() - tol <= opt_lr <= log_lr.max() + tol
    ):
        return fallback(OUTSIDE_GRID, idx.size)
    at_min = coef[0] + 0.5 * (coef[1] * dx + coef[2] * dy)
    return Optimum(float(opt_b), float(opt_lr), float(at_min), "bowl", None, idx.size)


def _budget_label(key: tuple, cols: HparamColumns) -> dict[str, float]:
    return {name: float(v) for name, v in zip(cols.budget, key, strict=True)}


def _budget_optimum(
    key: tuple, runs: pd.DataFrame, cols: HparamColumns, band: float, n_boot: int, seed: int
) -> tuple[BudgetOptimum, np.ndarray]:
    """The budget's optimum and its (n_boot, 2) bootstrap samples of (log B_opt, log lr_opt)."""
    label = _budget_label(key, cols)
    loss = pd.to_numeric(runs[cols.loss], errors="coerce").to_numpy(float)  # text (e.g. "diverged") → NaN
    ok = np.isfinite(loss)
    log_b = np.log(runs[cols.batch].to_numpy(float)[ok])
    log_lr = np.log(runs[cols.lr].to_numpy(float)[ok])
    loss = loss[ok]
    n_bad = int((~ok).sum())
    warn = (RUNS_WITHOUT_LOSS,) if n_bad else ()
    nan2 = (float("nan"), float("nan"))
    n_b, n_lr = np.unique(log_b).size, np.unique(log_lr).size
    if n_b < MIN_LEVELS or n_lr < MIN_LEVELS:
        error = (
            f"{n_b} batch size(s) and {n_lr} learning rate(s) with a finite loss; an optimum needs at least "
            f"{MIN_LEVELS} of each"
        )
        best = float(loss.min()) if loss.size else float("nan")
        empty = BudgetOptimum(label, len(runs), n_bad, best, None, nan2, nan2, warn, error)
        return empty, np.full((n_boot, 2), np.nan)
    point = bowl_optimum(log_b, log_lr, loss, np.ones_like(loss), band)
    samples = np.full((n_boot, 2), np.nan)
    for i, w in enumerate(resample_counts(loss.size, n_boot, seed)):
        o = bowl_optimum(log_b, log_lr, loss, w, band)
        samples[i] = o.log_b, o.log_lr
    on_edge = point.method == "grid_argmin" and (
        point.log_b in (log_b.min(), log_b.max()) or point.log_lr in (log_lr.min(), log_lr.max())
    )
    warnings = warn + ((point.warning,) if point.warning else ()) + ((ON_EDGE,) if on_edge else ())
    result = BudgetOptimum(
        label,
        len(runs),
        n_bad,
        float(loss.min()),
        point,
        ci_tuple(np.exp(samples[:, 0])),
        ci_tuple(np.exp(samples[:, 1])),
        warnings,
    )
    return result, samples


def _law(
    target: str, xs: dict[str, object], log_y: np.ndarray, log_y_boot: np.ndarray, n_boot: int, seed: int
) -> HparamLaw:
    """Power law of exp(log_y) in ``xs``; the run-bootstrap intervals refit it to every resample's optima."""
    fit = fit_joint_power_law(xs, np.exp(log_y), n_boot=n_boot, seed=seed)
    boot = []
    for row in log_y_boot:
        if np.isfinite(row).all():
            f = fit_joint_power_law(xs, np.exp(row), n_boot=0)
            boot.append([f.coefficient, *f.exponents.values()])
    arr = np.asarray(boot, dtype=float).reshape(-1, 1 + len(xs))
    return HparamLaw(
        target,
        fit,
        ci_tuple(arr[:, 0]),
        {name: ci_tuple(arr[:, 1 + j]) for j, name in enumerate(xs)},
    )


def _joint_laws(
    fitted: list[BudgetOptimum],
    cols: HparamColumns,
    log_opt: np.ndarray,
    boot: np.ndarray,
    n_boot: int,
    seed: int,
) -> tuple[dict[str, HparamLaw], str | None]:
    if cols.compute is not None:
        return {}, "the budget is compute alone (give N and D columns for a law in both)"
    n_name, d_name = cols.budget
    n = np.array([b.budget[n_name] for b in fitted])
    d = np.array([b.budget[d_name] for b in fitted])
    if np.unique(n).size < 2:
        return {}, f"N takes a single value ({n[0]:g}) across the fitted budgets"
    xs: dict[str, object] = {n_name: n, d_name: d}
    try:
        return {
            "batch": _law("b_opt", xs, log_opt[:, 0], boot[:, :, 0], n_boot, seed),
            "lr": _law("lr_opt", xs, log_opt[:, 1], boot[:, :, 1], n_boot, seed),
        }, None
    except FitError as exc:
        return {}, str(exc)


def fit_hparam_laws(
    table: pd.DataFrame,
    cols: HparamColumns,
    *,
    band: float = DEFAULT_BAND,
    n_boot: int = 1000,
    seed: int = 0,
) -> HparamAnalysis:
    """Per-budget optima of (B, lr) and the power laws B_opt(x), lr_opt(x) across budgets.

    x is the compute column (DeepSeek) or the D column (Power Lines), plus a joint law in N and D when N varies.
    Raises FitError, before any fitting, on missing columns, non-positive batch sizes/lrs/budgets, a bad band,
    or fewer than 3 budgets; a budget without 3 batch sizes and 3 lrs with a finite loss keeps an ``error``
    and is left out of the laws, which then need 3 budgets with an optimum."""
    require_columns(table, [*cols.budget, cols.batch, cols.lr, cols.loss], "an optimal-hyperparameter fit")
    if not (band >= 0 and np.isfinite(band)):
        raise FitError(f"band must be a finite relative loss margin ≥ 0 (e.g. 0.05), got {band}")
    numeric = [Numeric(c) for c in (*cols.budget, cols.batch, cols.lr)]
    table = numeric_columns(table, numeric, "the hyperparameter table")
    groups = list(table.groupby(cols.budget, sort=True))
    if len(groups) < MIN_BUDGETS:
        raise FitError(
            f"{len(groups)} budget(s) in columns {cols.budget}; power laws across budgets need at least "
            f"{MIN_BUDGETS} — add runs at more budgets"
        )
    budgets, boots = [], []
    for i, (key, runs) in enumerate(groups):
        result, samples = _budget_optimum(
            key if isinstance(key, tuple) else (key,), runs, cols, band, n_boot, seed + i
        )
        budgets.append(result)
        boots.append(samples)
    fitted = [i for i, b in enumerate(budgets) if b.optimum is not None]
    if len(fitted) < MIN_BUDGETS:
        why = "; ".join(f"{b.budget}: {b.error}" for b in budgets if b.error)
        raise FitError(f"only {len(fitted)} budget(s) have an optimum, the laws need {MIN_BUDGETS} ({why})")
    fb = [budgets[i] for i in fitted]
    optima = [b.optimum for b in fb if b.optimum is not None]
    log_opt = np.array([[o.log_b, o.log_lr] for o in optima])
    boot = np.stack([boots[i] for i in fitted], axis=1)  # (n_boot, n_budgets, 2)
    x_name = cols.law_variable
    xs: dict[str, object] = {x_name: np.array([b.budget[x_name] for b in fb])}
    joint, absent = _joint_laws(fb, cols, log_opt, boot, n_boot, seed)
    return HparamAnalysis(
        budgets=budgets,
        batch_law=_law("b_opt", xs, log_opt[:, 0], boot[:, :, 0], n_boot, seed),
        lr_law=_law("lr_opt", xs, log_opt[:, 1], boot[:, :, 1], n_boot, seed),
        joint_laws=joint,
        joint_laws_absent=absent,
        columns=cols,
        band=band,
        n_boot=n_boot,
    )
