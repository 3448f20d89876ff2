"""Power laws y = c·x^k (and y = c·Π x_j^{k_j}) by least squares on logarithms, with bootstrap intervals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cbs.errors import FitError
from cbs.fit.bootstrap import (
    CI_LEVEL,
    as_finite_array,
    ci_tuple,
    percentile_ci,
    require_points,
    residual_bootstrap,
)
from cbs.fit.diagnostics import FitWarning
from cbs.fit.result import EXACT, SolverDiagnostics, empty_samples, fmt, interval, law_intervals


def log_covariance(samples: np.ndarray) -> list[list[float]] | None:
    """Bootstrap covariance of (log c, exponents...) — what a forecast's interval needs from the JSON alone
    (`cbs advise`); None without samples."""
    if samples.shape[0] < 2:
        return None
    return np.atleast_2d(np.cov(samples, rowvar=False)).tolist()


def _log_lstsq(logx: np.ndarray, logy: np.ndarray) -> np.ndarray:
    """Coefficients (log c, k_1, ..., k_p) of log y = log c + Σ k_j log x_j."""
    design = np.column_stack([np.ones(logy.size), logx])
    coef, _, rank, _ = np.linalg.lstsq(design, logy, rcond=None)
    if rank < design.shape[1]:
        raise FitError(
            "the power-law design is degenerate (a variable takes a single value, or two variables move "
            "together); vary each variable independently across at least two values"
        )
    return coef


@dataclass(frozen=True)
class JointPowerLawFit:
    """y = c·Π_j x_j^{k_j}. ``exponents`` and ``exponent_cis`` are keyed by variable name."""

    coefficient: float
    exponents: dict[str, float]
    coefficient_ci: tuple[float, float]
    exponent_cis: dict[str, tuple[float, float]]
    n_points: int
    r2: float
    samples: np.ndarray = field(repr=False, compare=False)  # (n_boot, 1 + p): log c, k_1..k_p
    diagnostics: SolverDiagnostics = EXACT
    # the bootstrap covariance of (log c, exponents) as the JSON carried it (None: computed from ``samples``)
    log_covariance: list[list[float]] | None = field(default=None, repr=False, compare=False)

    @property
    def warnings(self) -> list[FitWarning]:
        """None: a linear least-squares fit has no solver to fail."""
        return []

    def intervals(self) -> dict[str, tuple[float, float]]:
        """The coefficient's and each exponent's (``exponent.<name>``) interval."""
        return law_intervals(self.coefficient_ci, self.exponent_cis)

    def report(self) -> str:
        """'y = c·N^a·D^b' with intervals, R² and the number of points."""
        terms = "·".join(f"{name}^{fmt(k, self.exponent_cis[name])}" for name, k in self.exponents.items())
        return f"y = {fmt(self.coefficient, self.coefficient_ci)}·{terms}; R² {self.r2:.3f} over {self.n_points} points"

    def predict(self, **xs: object) -> np.ndarray:
        """y at the given variables (keyword per name)."""
        logy = np.log(self.coefficient) + sum(
            k * np.log(np.asarray(xs[name], dtype=np.float64)) for name, k in self.exponents.items()
        )
        return np.exp(logy)

    def to_dict(self) -> dict[str, object]:
        return {
            "coefficient": self.coefficient,
            "coefficient_ci": list(self.coefficient_ci),
            "exponents": dict(self.exponents),
            "exponent_cis": {k: list(v) for k, v in self.exponent_cis.items()},
            "n_points": self.n_points,
            "r2": self.r2,
            "diagnostics": self.diagnostics.to_dict(),
            "log_covariance": self.log_covariance
            if self.log_covariance is not None
            else log_covariance(self.samples),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JointPowerLawFit:
        """The fit ``to_dict`` wrote (without its bootstrap samples)."""
        exponents = {str(k): float(v) for k, v in data["exponents"].items()}
        return cls(
            coefficient=float(data["coefficient"]),
            exponents=exponents,
            coefficient_ci=interval(data["coefficient_ci"]),
            exponent_cis={str(k): interval(v) for k, v in data["exponent_cis"].items()},
            n_points=int(data["n_points"]),
            r2=float(data["r2"]),
            samples=empty_samples(1 + len(exponents)),
            diagnostics=SolverDiagnostics.from_dict(data.get("diagnostics")),
            log_covariance=data.get("log_covariance"),
        )


@dataclass(frozen=True)
class PowerLawFit:
    """y = c·x^k fitted by least squares on (log x, log y); intervals from a residual bootstrap."""

    coefficient: float
    exponent: float
    coefficient_ci: tuple[float, float]
    exponent_ci: tuple[float, float]
    n_points: int
    r2: float
    samples: np.ndarray = field(repr=False, compare=False)  # (n_boot, 2): log c, k
    diagnostics: SolverDiagnostics = EXACT
    # the bootstrap covariance of (log c, exponents) as the JSON carried it (None: computed from ``samples``)
    log_covariance: list[list[float]] | None = field(default=None, repr=False, compare=False)

    @property
    def warnings(self) -> list[FitWarning]:
        """None: a linear least-squares fit has no solver to fail."""
        return []

    def intervals(self) -> dict[str, tuple[float, float]]:
        """The coefficient's and the exponent's interval."""
        return {"coefficient": self.coefficient_ci, "exponent": self.exponent_ci}

    def report(self) -> str:
        """'y = c·x^k' with intervals, R² and the number of points."""
        return (
            f"y = {fmt(self.coefficient, self.coefficient_ci)}·x^{fmt(self.exponent, self.exponent_ci)}; "
            f"R² {self.r2:.3f} over {self.n_points} points"
        )

    def predict(self, x: object) -> np.ndarray:
        """c·x^k."""
        return self.coefficient * np.asarray(x, dtype=np.float64) ** self.exponent

    def band(self, x: ArrayLike, level: float = CI_LEVEL) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap band (lower, upper) of the fitted curve at ``x``."""
        logx = np.log(np.asarray(x, dtype=np.float64))
        curves = self.samples[:, :1] + self.samples[:, 1:2] * np.atleast_1d(logx)[None, :]
        lo, hi = percentile_ci(np.exp(curves), level)
        return lo.reshape(np.shape(x)), hi.reshape(np.shape(x))

    def to_dict(self) -> dict[str, object]:
        return {
            "coefficient": self.coefficient,
            "coefficient_ci": list(self.coefficient_ci),
            "exponent": self.exponent,
            "exponent_ci": list(self.exponent_ci),
            "n_points": self.n_points,
            "r2": self.r2,
            "diagnostics": self.diagnostics.to_dict(),
            "log_covariance": self.log_covariance
            if self.log_covariance is not None
            else log_covariance(self.samples),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PowerLawFit:
        """The fit ``to_dict`` wrote (without its bootstrap samples: ``band`` then has none to draw on)."""
        return cls(
            coefficient=float(data["coefficient"]),
            exponent=float(data["exponent"]),
            coefficient_ci=interval(data["coefficient_ci"]),
            exponent_ci=interval(data["exponent_ci"]),
            n_points=int(data["n_points"]),
            r2=float(data["r2"]),
            samples=empty_samples(2),
            diagnostics=SolverDiagnostics.from_dict(data.get("diagnostics")),
            log_covariance=data.get("log_covariance"),
        )


def _fit_log_linear(
    logx: np.ndarray, logy: np.ndarray, n_boot: int, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    coef = _log_lstsq(logx, logy)
    fitted = coef[0] + logx @ coef[1:]
    resid = logy - fitted
    ss_tot = float(((logy - logy.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    samples = residual_bootstrap(
        fitted, resid, coef.size, lambda ly: _log_lstsq(logx, ly), n_boot=n_boot, seed=seed
    )
    return coef, samples, r2


def fit_power_law(x: object, y: object, *, n_boot: int = 1000, seed: int = 0) -> PowerLawFit:
    """Fit y = c·x^k by least squares on logs; needs ≥ 3 points with at least two distinct x."""
    xa = as_finite_array(x, "x", positive=True)
    ya = as_finite_array(y, "y", positive=True)
    if xa.size != ya.size:
        raise FitError(f"x and y differ in length ({xa.size} vs {ya.size})")
    require_points(xa.size, 3, "a power law (2 parameters + 1 for an interval)")
    coef, samples, r2 = _fit_log_linear(np.log(xa)[:, None], np.log(ya), n_boot, seed)
    return PowerLawFit(
        coefficient=float(np.exp(coef[0])),
        exponent=float(coef[1]),
        coefficient_ci=ci_tuple(np.exp(samples[:, 0])),
        exponent_ci=ci_tuple(samples[:, 1]),
        n_points=int(xa.size),
        r2=r2,
        samples=samples,
        diagnostics=replace(EXACT, resamples=max(n_boot, 0), resamples_ok=len(samples)),
    )


def fit_joint_power_law(
    xs: dict[str, object], y: object, *, n_boot: int = 1000, seed: int = 0
) -> JointPowerLawFit:
    """Fit y = c·Π_j x_j^{k_j} (e.g. B*(N, D) = c·N^α·D^β) by least squares on logs."""
    names = list(xs)
    ya = as_finite_array(y, "y", positive=True)
    cols = [as_finite_array(xs[name], name, positive=True) for name in names]
    if any(c.size != ya.size for c in cols):
        raise FitError("all variables and y must have the same length")
    require_points(ya.size, len(names) + 2, f"a joint power law in {', '.join(names)}")
    logx = np.log(np.column_stack(cols))
    coef, samples, r2 = _fit_log_linear(logx, np.log(ya), n_boot, seed)
    return JointPowerLawFit(
        coefficient=float(np.exp(coef[0])),
        exponents={name: float(coef[1 + j]) for j, name in enumerate(names)},
        coefficient_ci=ci_tuple(np.exp(samples[:, 0])),
        exponent_cis={name: ci_tuple(samples[:, 1 + j]) for j, name in enumerate(names)},
        n_points=int(ya.size),
        r2=r2,
        samples=samples,
        diagnostics=replace(EXACT, resamples=max(n_boot, 0), resamples_ok=len(samples)),
    )
