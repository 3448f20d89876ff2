"""The critical batch size from steps-to-target S(B): McCandlish's hyperbola S = a + b/B fitted on log S.

S_min = a (steps at infinite batch), B_noise = b/a, and the CBS with overhead o — the largest B whose steps
stay within (1 + o) of linear scaling from B_opt — is B* = (1 + o)·B_opt + o·b/a. The free-exponent
variant S = a + b·B^-α is fitted alongside as a check of the hyperbola's shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from cbs.errors import FitError
from cbs.fit.bootstrap import as_finite_array, ci_tuple, require_points, residual_draws
from cbs.fit.diagnostics import FitWarning
from cbs.fit.hyperbola import ALPHA_BOUNDS, cbs_of, fit_hyperbolas, model, start_and_scale
from cbs.fit.result import NOT_RECORDED, SolverDiagnostics, fmt, interval, number
from cbs.protocol import B_OPT, CBS_OVERHEAD

MAX_NOISE_RATIO = 100.0  # B_noise beyond this multiple of the largest measured B is not a measurement


SOLVER = "scipy.optimize.least_squares (trf)"


def _fit(
    batch: np.ndarray, log_steps: np.ndarray, free_alpha: bool, max_evaluations: int | None = None
) -> tuple[np.ndarray, SolverDiagnostics]:
    """(a, b[, α]) minimising Σ (log S_i − log(a + b·B_i^-α))² with a, b ≥ 0, by scipy's least_squares (the
    reference solver; the bootstrap solves the same problem batched, `cbs.fit.hyperbola`), and what the
    solver said. A fit that used up a given ``max_evaluations`` is returned, marked not converged; any
    other failure raises FitError."""
    start, scale = (v[0] for v in start_and_scale(batch, log_steps, free_alpha))
    lower = np.zeros(start.size)
    upper = np.full(start.size, np.inf)
    if free_alpha:
        lower[2], upper[2] = ALPHA_BOUNDS

    def resid(p: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(model(p, batch)[0], 1e-300)) - log_steps

    res = least_squares(
        resid,
        start,
        bounds=(lower, upper),
        x_scale=scale,
        xtol=1e-12,
        ftol=1e-12,
        gtol=1e-12,
        max_nfev=max_evaluations,
    )
    stopped = max_evaluations is not None and res.status == 0  # the caller's evaluation budget ran out
    if (not res.success and not stopped) or not np.all(np.isfinite(res.x)):
        raise FitError(f"the S(B) fit did not converge ({res.message}); check the steps-to-target values")
    return res.x, SolverDiagnostics(SOLVER, bool(res.success), int(res.nfev), str(res.message))


def cbs_from_params(params: np.ndarray, b_opt: float, overhead: float) -> float:
    """Largest B with S(B) ≤ (1 + o)·S(B_opt)·B_opt/B for one (a, b[, α]) (`cbs.fit.hyperbola.cbs_of`)."""
    return float(cbs_of(np.asarray(params, dtype=np.float64)[None, :], b_opt, overhead)[0])


@dataclass(frozen=True)
class AlphaVariant:
    """The free-exponent check S = a + b·B^-α and the CBS it implies."""

    a: float
    b: float
    alpha: float
    cbs: float
    alpha_ci: tuple[float, float]
    cbs_ci: tuple[float, float]
    diagnostics: SolverDiagnostics = field(default=NOT_RECORDED)

    def to_dict(self) -> dict[str, object]:
        return {
            "a": self.a,
            "b": self.b,
            "alpha": self.alpha,
            "alpha_ci": list(self.alpha_ci),
            "cbs": self.cbs,
            "cbs_ci": list(self.cbs_ci),
            "diagnostics": self.diagnostics.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlphaVariant:
        """The variant ``to_dict`` wrote."""
        return cls(
            a=float(data["a"]),
            b=float(data["b"]),
            alpha=float(data["alpha"]),
            cbs=number(data["cbs"]),
            alpha_ci=interval(data["alpha_ci"]),
            cbs_ci=interval(data["cbs_ci"]),
            diagnostics=SolverDiagnostics.from_dict(data.get("diagnostics")),
        )


@dataclass(frozen=True)
class CbsFit:
    """S(B) = a + b/B fitted on log S; CBS B* = (1 + o)·B_opt + o·b/a with residual-bootstrap intervals."""

    a: float
    b: float
    b_opt: float
    overhead: float
    cbs: float
    cbs_ci: tuple[float, float]
    a_ci: tuple[float, float]
    b_ci: tuple[float, float]
    b_noise_ci: tuple[float, float]
    n_points: int
    rmse_log: float
    alpha_variant: AlphaVariant | None
    alpha_variant_note: str
    batch_sizes: np.ndarray = field(repr=False, compare=False)
    steps: np.ndarray = field(repr=False, compare=False)
    diagnostics: SolverDiagnostics = NOT_RECORDED  # of the S(B) fit; resamples: the bootstrap refits

    @property
    def s_min(self) -> float:
        """Steps to target at infinite batch size."""
        return self.a

    @property
    def b_noise(self) -> float:
        """McCandlish's noise scale b/a (sequences)."""
        return self.b / self.a if self.a > 0 else float("inf")

    @property
    def warnings(self) -> list[FitWarning]:
        """``solver_not_converged`` when the S(B) fit stopped early (the group's other warnings come from
        `cbs.fit.diagnostics`)."""
        return self.diagnostics.warning("S(B) fit")

    def predict(self, batch_sizes: object) -> np.ndarray:
        """S(B) = a + b/B."""
        return self.a + self.b / np.asarray(batch_sizes, dtype=np.float64)

    def intervals(self) -> dict[str, tuple[float, float]]:
        """Bootstrap intervals of the CBS, a, b, S_min and B_noise (and α and its CBS, when fitted)."""
        out = {
            "cbs": self.cbs_ci,
            "a": self.a_ci,
            "b": self.b_ci,
            "s_min": self.a_ci,
            "b_noise": self.b_noise_ci,
        }
        if self.alpha_variant is not None:
            out |= {"alpha": self.alpha_variant.alpha_ci, "cbs_alpha_variant": self.alpha_variant.cbs_ci}
        return out

    def report(self) -> str:
        """The fitted hyperbola, the CBS and the solver's verdict, one item a line."""
        v = self.alpha_variant
        lines = [
            f"S(B) = a + b/B on {self.n_points} batch sizes, RMSE(log S) {self.rmse_log:.3g}",
            f"  B* = {fmt(self.cbs, self.cbs_ci)} seqs (B_opt {self.b_opt:g}, overhead {self.overhead:g})",
            f"  S_min = {fmt(self.s_min, self.a_ci)} steps   B_noise = {fmt(self.b_noise, self.b_noise_ci)} seqs",
            f"  free exponent: α = {fmt(v.alpha, v.alpha_ci)}, B* = {fmt(v.cbs, v.cbs_ci)}"
            if v
            else f"  free exponent: {self.alpha_variant_note}",
            f"  {self.diagnostics.describe()}",
        ]
        return "\n".join(lines + [f"warning: {w.code} — {w.message}" for w in self.warnings])

    def to_dict(self) -> dict[str, object]:
        return {
            "a": self.a,
            "b": self.b,
            "a_ci": list(self.a_ci),
            "b_ci": list(self.b_ci),
            "s_min": self.s_min,
            "s_min_ci": list(self.a_ci),
            "b_noise": self.b_noise,
            "b_noise_ci": list(self.b_noise_ci),
            "cbs": self.cbs,
            "cbs_ci": list(self.cbs_ci),
            "b_opt": self.b_opt,
            "overhead": self.overhead,
            "n_points": self.n_points,
            "rmse_log": self.rmse_log,
            "alpha_variant": self.alpha_variant.to_dict() if self.alpha_variant else None,
            "alpha_variant_note": self.alpha_variant_note,
            "batch_sizes": self.batch_sizes.tolist(),
            "steps_to_target": self.steps.tolist(),
            "diagnostics": self.diagnostics.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CbsFit:
        """The fit ``to_dict`` wrote (or the fit keys of a group's JSON)."""
        variant = data.get("alpha_variant")
        return cls(
            a=float(data["a"]),
            b=float(data["b"]),
            b_opt=float(data["b_opt"]),
            overhead=float(data["overhead"]),
            cbs=number(data["cbs"]),
            cbs_ci=interval(data["cbs_ci"]),
            a_ci=interval(data["a_ci"]),
            b_ci=interval(data["b_ci"]),
            b_noise_ci=interval(data["b_noise_ci"]),
            n_points=int(data["n_points"]),
            rmse_log=float(data["rmse_log"]),
            alpha_variant=AlphaVariant.from_dict(variant) if variant else None,
            alpha_variant_note=str(data["alpha_variant_note"]),
            batch_sizes=np.asarray(data["batch_sizes"], dtype=np.float64),
            steps=np.asarray(data["steps_to_target"], dtype=np.float64),
            diagnostics=SolverDiagnostics.from_dict(data.get("diagnostics")),
        )


def _bootstrap(
    batch: np.ndarray,
    log_steps: np.ndarray,
    params: np.ndarray,
    free_alpha: bool,
    b_opt: float,
    overhead: float,
    n_boot: int,
    seed: int,
) -> np.ndarray:
    """Residual-bootstrap samples of (a, b[, α], CBS), all resamples refitted at once; a resample whose fit
    does not converge is left out, as the serial bootstrap leaves out a failed refit."""
    fitted = np.log(model(params, batch)[0])
    draws = residual_draws(fitted, log_steps - fitted, params.size, n_boot=n_boot, seed=seed)
    fits = fit_hyperbolas(batch, draws, free_alpha)
    p = fits.params[fits.converged]
    if n_boot > 0 and p.size == 0:
        raise FitError("every bootstrap resample failed to fit; the data are too few or degenerate")
    return np.column_stack([p, cbs_of(p, b_opt, overhead)])


def fit_cbs(
    batch_sizes: object,
    steps: object,
    *,
    b_opt: float = B_OPT,
    overhead: float = CBS_OVERHEAD,
    n_boot: int = 1000,
    seed: int = 0,
    max_evaluations: int | None = None,
) -> CbsFit:
    """Fit S(B) = a + b/B to steps-to-target per batch size and derive the CBS with bootstrap intervals.

    Needs ≥ 3 points (≥ 4 for the free-exponent variant). Refuses (FitError) non-finite or non-positive
    values and a fit with S_min = 0, where steps never stop halving and the CBS lies beyond the data.
    ``max_evaluations`` caps least_squares' evaluations; a fit stopped by it is returned with
    ``diagnostics.converged`` False and a ``solver_not_converged`` warning (any other failure: FitError).
    """
    batch = as_finite_array(batch_sizes, "batch_sizes", positive=True)
    steps_a = as_finite_array(steps, "steps", positive=True)
    if batch.size != steps_a.size:
        raise FitError(f"batch_sizes and steps differ in length ({batch.size} vs {steps_a.size})")
    require_points(np.unique(batch).size, 3, "S(B) = a + b/B (distinct batch sizes)")
    if overhead < 0 or b_opt <= 0:
        raise FitError(f"need overhead ≥ 0 and b_opt > 0, got overhead={overhead}, b_opt={b_opt}")
    order = np.argsort(batch, kind="stable")
    batch, steps_a = batch[order], steps_a[order]
    log_steps = np.log(steps_a)
    params, diagnostics = _fit(batch, log_steps, False, max_evaluations)
    a, b = float(params[0]), float(params[1])
    if a <= 0 or b / a > MAX_NOISE_RATIO * batch.max():
        raise FitError(
            "S_min fitted as 0: steps keep halving with every doubling of B over the measured range (B_noise "
            f"> {MAX_NOISE_RATIO:g}× the largest batch), so the CBS lies far above the largest batch size "
            f"({batch.max():g}); measure larger batch sizes"
        )
    samples = _bootstrap(batch, log_steps, params, False, b_opt, overhead, n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        b_noise_samples = np.where(samples[:, 0] > 0, samples[:, 1] / samples[:, 0], np.inf)
    variant, note = None, "fitted"
    if np.unique(batch).size >= 4:
        try:
            p3, diag3 = _fit(batch, log_steps, True, max_evaluations)
            s3 = _bootstrap(batch, log_steps, p3, True, b_opt, overhead, n_boot, seed)
            variant = AlphaVariant(
                a=float(p3[0]),
                b=float(p3[1]),
                alpha=float(p3[2]),
                cbs=cbs_from_params(p3, b_opt, overhead),
                alpha_ci=ci_tuple(s3[:, 2]),
                cbs_ci=ci_tuple(s3[:, 3]),
                diagnostics=replace(diag3, resamples=max(n_boot, 0), resamples_ok=len(s3)),
            )
        except FitError as exc:
            note = f"free-exponent fit failed: {exc}"
    else:
        note = "needs at least 4 distinct batch sizes"
    resid = log_steps - np.log(model(params, batch)[0])
    return CbsFit(
        a=a,
        b=b,
        b_opt=float(b_opt),
        overhead=float(overhead),
        cbs=cbs_from_params(params, b_opt, overhead),
        cbs_ci=ci_tuple(samples[:, 2]),
        a_ci=ci_tuple(samples[:, 0]),
        b_ci=ci_tuple(samples[:, 1]),
        b_noise_ci=ci_tuple(b_noise_samples),
        n_points=int(batch.size),
        rmse_log=float(np.sqrt(np.mean(resid**2))),
        alpha_variant=variant,
        alpha_variant_note=note,
        batch_sizes=batch,
        steps=steps_a,
        diagnostics=replace(diagnostics, resamples=max(n_boot, 0), resamples_ok=len(samples)),
    )
