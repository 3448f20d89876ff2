"""Loss-to-loss laws (Brandfonbrener et al. 2024): y = K·(x − E_x)^κ + E_y between paired losses.

κ and K by least squares of log(y − E_y) on log(x − E_x); E_x (and E_y unless fitted within
0 ≤ E_y < min y) given, by default the E of per-(training set, eval column) L(N, D) fits. Intervals from a
pairs bootstrap over the paired models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import minimize_scalar

from cbs.errors import FitError
from cbs.fit.bootstrap import as_finite_array, ci_tuple, require_points
from cbs.fit.diagnostics import FitWarning
from cbs.fit.result import EXACT, SolverDiagnostics, empty_samples, fmt, interval
from cbs.fit.scaling_law import ScalingLawFit


def _check_shift(values: np.ndarray, shift: float, name: str) -> None:
    if not np.isfinite(shift):
        raise FitError(f"{name} must be finite, got {shift}")
    if shift >= values.min():
        raise FitError(
            f"the shift {name} = {shift:.6g} is at or above the smallest loss ({values.min():.6g}), so "
            f"log(loss − {name}) is undefined; use a smaller {name} (an L(N, D) fit's E is below every loss)"
        )


def _linear(lx: np.ndarray, ly: np.ndarray) -> tuple[float, float, float]:
    """(κ, log K, residual sum of squares) of ly = log K + κ·lx."""
    if np.ptp(lx) == 0:
        raise FitError("all x losses are equal; loss-to-loss needs models of different losses")
    kappa, log_k = np.polyfit(lx, ly, 1)
    ssr = float(((ly - log_k - kappa * lx) ** 2).sum())
    return float(kappa), float(log_k), ssr


class KappaFit(NamedTuple):
    """κ, log K and E_y of one fit, and what the solver said (the E_y search; exact when E_y is given)."""

    kappa: float
    log_k: float
    e_y: float
    diagnostics: SolverDiagnostics


def fit_kappa(x: np.ndarray, y: np.ndarray, e_x: float, e_y: float | None) -> KappaFit:
    """(κ, log K, E_y) by least squares of log(y − E_y) on log(x − E_x); E_y profiled over [0, min y) when
    ``e_y`` is None. Shifts must lie below every loss (unchecked here; see ``fit_loss_to_loss``)."""
    lx = np.log(x - e_x)
    if e_y is not None:
        kappa, log_k, _ = _linear(lx, np.log(y - e_y))
        return KappaFit(kappa, log_k, e_y, EXACT)
    # the profile SSR(E_y) is multimodal (it can fall towards E_y = 0 and again near the truth): scan a grid
    # that is dense near min y, then refine the best cell with bounded Brent
    top = y.min()
    grid = np.concatenate([[0.0], top * (1 - np.geomspace(1.0, 1e-8, 240))[1:]])
    ssr = np.array([_linear(lx, np.log(y - ey))[2] for ey in grid])
    i = int(np.argmin(ssr))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(
        lambda ey: _linear(lx, np.log(y - ey))[2],
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-12 * max(top, 1e-12)},
    )
    if not res.success:
        raise FitError(f"the E_y fit did not converge ({res.message}); give E_y instead")
    if res.fun > ssr[i]:
        res.x = grid[i]
    kappa, log_k, _ = _linear(lx, np.log(y - res.x))
    searched = SolverDiagnostics(
        "grid of 240 E_y, then scipy minimize_scalar (bounded)",
        bool(res.success),
        grid.size + int(res.nfev),
        str(res.message),
    )
    return KappaFit(kappa, log_k, float(res.x), searched)


@dataclass(frozen=True)
class LossToLossFit:
    """y = K·(x − E_x)^κ + E_y, with bootstrap intervals; ``E_y_fitted`` says whether E_y was fitted."""

    kappa: float
    K: float  # noqa: N815 - the paper's name
    E_x: float  # noqa: N815
    E_y: float  # noqa: N815
    E_y_fitted: bool  # noqa: N815
    r2: float  # in y
    r2_log: float  # of the log-log regression that is fitted
    n_points: int
    kappa_ci: tuple[float, float]
    K_ci: tuple[float, float]  # noqa: N815
    E_y_ci: tuple[float, float] | None  # noqa: N815
    samples: np.ndarray = field(repr=False, compare=False)  # (n_boot, 3): κ, log K, E_y
    diagnostics: SolverDiagnostics = EXACT  # resamples_ok: the bootstrap refits behind the intervals

    @property
    def warnings(self) -> list[FitWarning]:
        """``solver_not_converged`` when the E_y search stopped early."""
        return self.diagnostics.warning("E_y search")

    def predict(self, x: object) -> np.ndarray:
        """ŷ = K·(x − E_x)^κ + E_y."""
        xa = np.asarray(x, dtype=np.float64)
        return self.K * (xa - self.E_x) ** self.kappa + self.E_y

    def intervals(self) -> dict[str, tuple[float, float]]:
        """The pairs-bootstrap (E_x fixed) intervals of κ, K and, when fitted, E_y."""
        out = {"kappa": self.kappa_ci, "K": self.K_ci}
        return out | ({"E_y": self.E_y_ci} if self.E_y_ci is not None else {})

    def report(self) -> str:
        """The law with its E-fixed intervals, R² and the solver's verdict."""
        lines = [
            f"y = K·(x − E_x)^κ + E_y on {self.n_points} pairs",
            f"  κ = {fmt(self.kappa, self.kappa_ci)}   K = {fmt(self.K, self.K_ci)}",
            f"  E_x = {fmt(self.E_x)}   E_y = {fmt(self.E_y, self.E_y_ci)}{' (fitted)' if self.E_y_fitted else ''}"
            f"   R² = {self.r2:.4f} (log-log {self.r2_log:.4f})",
            f"  {self.diagnostics.describe()}",
        ]
        return "\n".join(lines + [f"warning: {w.code} — {w.message}" for w in self.warnings])

    def translate(self, law: ScalingLawFit) -> ScalingLawFit:
        """The L(N, D) law of dataset x carried to dataset y: α′ = κα, β′ = κβ, E′ = E_y and
        Kaplan form ((A/N)^{α/β} + B/D)^β + E: A′ = A·K^{1/(κα)}, B′ = B·K^{1/(κβ)} — the paper's map, exact;
        Chinchilla form E + A/N^α + B/D^β: A′ = K·A^κ, B′ = K·B^κ, exact where one power term dominates.
        Needs the law's E equal to E_x; interval samples pair the law's and this fit's samples row by row."""
        if abs(law.E - self.E_x) > 0.01 * self.E_x:
            raise FitError(
                f"the law's E = {law.E:.4g} is not this fit's E_x = {self.E_x:.4g}; fit loss-to-loss with "
                "E_x equal to the law's E before translating it"
            )
        ltl = np.array([[self.kappa, np.log(self.K), self.E_y]])
        params = self._map(law.params[None, :], ltl, law.form)[0]
        n = min(len(law.samples), len(self.samples))
        samples = self._map(law.samples[:n], self.samples[:n], law.form) if n else np.empty((0, 5))
        return ScalingLawFit(
            form=law.form,
            params=params,
            objective=float("nan"),
            n_points=law.n_points,
            n_starts=0,
            samples=samples,
            diagnostics=SolverDiagnostics("none: mapped from the x law by κ and K", True, 0, "not fitted"),
        )

    @staticmethod
    def _map(p: np.ndarray, ltl: np.ndarray, form: str) -> np.ndarray:
        kappa, log_k, e_y = ltl[:, 0], ltl[:, 1], ltl[:, 2]
        alpha, beta = kappa * p[:, 3], kappa * p[:, 4]
        if form == "kaplan":
            a, b = p[:, 0] + log_k / alpha, p[:, 1] + log_k / beta
        else:
            a, b = log_k + kappa * p[:, 0], log_k + kappa * p[:, 1]
        return np.column_stack([a, b, np.log(e_y), alpha, beta])

    def to_dict(self) -> dict[str, object]:
        return {
            "kappa": self.kappa,
            "kappa_ci": list(self.kappa_ci),
            "K": self.K,
            "K_ci": list(self.K_ci),
            "E_x": self.E_x,
            "E_y": self.E_y,
            "E_y_fitted": self.E_y_fitted,
            "E_y_ci": list(self.E_y_ci) if self.E_y_ci else None,
            "r2": self.r2,
            "r2_log": self.r2_log,
            "n_points": self.n_points,
            "n_boot": self.diagnostics.resamples_ok,
            "diagnostics": self.diagnostics.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossToLossFit:
        """The fit ``to_dict`` wrote (without its bootstrap samples)."""
        e_y_ci = data.get("E_y_ci")
        diagnostics = SolverDiagnostics.from_dict(data.get("diagnostics"))
        if data.get("diagnostics") is None:  # an older file: its n_boot is the count of resamples that fitted
            n = int(data.get("n_boot", 0))
            diagnostics = SolverDiagnostics(diagnostics.solver, None, 0, diagnostics.message, n, n)
        return cls(
            kappa=float(data["kappa"]),
            K=float(data["K"]),
            E_x=float(data["E_x"]),
            E_y=float(data["E_y"]),
            E_y_fitted=bool(data["E_y_fitted"]),
            r2=float(data["r2"]),
            r2_log=float(data["r2_log"]),
            n_points=int(data["n_points"]),
            kappa_ci=interval(data["kappa_ci"]),
            K_ci=interval(data["K_ci"]),
            E_y_ci=interval(e_y_ci) if e_y_ci is not None else None,
            samples=empty_samples(3),
            diagnostics=diagnostics,
        )


def fit_loss_to_loss(
    x: object,
    y: object,
    *,
    E_x: float,  # noqa: N803
    E_y: float | None = None,  # noqa: N803
    fit_E_y: bool = False,  # noqa: N803
    n_boot: int = 1000,
    seed: int = 0,
) -> LossToLossFit:
    """Fit y = K·(x − E_x)^κ + E_y to paired losses. Give ``E_y``, or ``fit_E_y=True`` to fit it within
    0 ≤ E_y < min y (then a given E_y is ignored). Refuses shifts at or above the smallest loss."""
    xa = as_finite_array(x, "x losses", positive=True)
    ya = as_finite_array(y, "y losses", positive=True)
    if xa.size != ya.size:
        raise FitError(f"x and y differ in length ({xa.size} vs {ya.size})")
    require_points(xa.size, 4 if fit_E_y else 3, "a loss-to-loss law")
    _check_shift(xa, E_x, "E_x")
    e_y = None  # fitted
    if not fit_E_y:
        if E_y is None:
            raise FitError(
                "E_y is needed: pass E_y (e.g. the E of an L(N, D) fit to the y losses) or fit_E_y=True"
            )
        _check_shift(ya, E_y, "E_y")
        e_y = float(E_y)
    kappa, log_k, e_y_hat, searched = fit_kappa(xa, ya, E_x, e_y)
    pred = np.exp(log_k) * (xa - E_x) ** kappa + e_y_hat
    r2 = 1.0 - float(((ya - pred) ** 2).sum() / ((ya - ya.mean()) ** 2).sum())
    ly = np.log(ya - e_y_hat)
    r2_log = 1.0 - _linear(np.log(xa - E_x), ly)[2] / float(((ly - ly.mean()) ** 2).sum())
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_boot):
        idx = rng.integers(0, xa.size, xa.size)
        try:
            samples.append(fit_kappa(xa[idx], ya[idx], E_x, e_y)[:3])
        except FitError:
            continue
    s = np.asarray(samples, dtype=np.float64).reshape(-1, 3)
    has = s.shape[0] > 0
    return LossToLossFit(
        kappa=kappa,
        K=float(np.exp(log_k)),
        E_x=float(E_x),
        E_y=e_y_hat,
        E_y_fitted=fit_E_y,
        r2=r2,
        r2_log=float(r2_log),
        n_points=int(xa.size),
        kappa_ci=ci_tuple(s[:, 0]) if has else (np.nan, np.nan),
        K_ci=ci_tuple(np.exp(s[:, 1])) if has else (np.nan, np.nan),
        E_y_ci=ci_tuple(s[:, 2]) if has and fit_E_y else None,
        samples=s,
        diagnostics=replace(searched, resamples=max(n_boot, 0), resamples_ok=s.shape[0]),
    )
