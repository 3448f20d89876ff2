"""L(N, D) scaling laws fitted as Hoffmann et al.'s Approach 3, done right (Besiroglu et al. 2024).

Chinchilla form  L = E + A/N^α + B/D^β,   log L̂ = LSE(a − α·log N, b − β·log D, e)
Kaplan form      L = ((A/N)^{α/β} + B/D)^β + E,   log L̂ = LSE(β·LSE((α/β)(a − log N), b − log D), e)
with a = log A, b = log B, e = log E. The objective is the Huber loss (δ = 1e-3) of the log residuals,
SUMMED over points, in float64 (cbs.fit.scaling_objective). The objective is evaluated at every start of a
grid (4500 by default); the ``SEARCHED`` lowest are minimised together by a batched L-BFGS
(cbs.fit.multistart) and the best distinct optima polished by scipy's L-BFGS-B in whitened coordinates,
where the valley along which A and B trade off (Hessian condition ~1e7) is round, to the float64 minimum.
Intervals come from a pairs bootstrap over data points, each resample warm-started from the distinct
full-data optima and converged in the same whitened coordinates.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from cbs.errors import FitError
from cbs.fit.bootstrap import (
    CI_LEVEL,
    as_finite_array,
    ci_tuple,
    percentile_ci,
    require_points,
    resample_counts,
)
from cbs.fit.diagnostics import FitWarning
from cbs.fit.multistart import Whitening, batched_lbfgs, whitening
from cbs.fit.result import NOT_RECORDED, JsonEquality, SolverDiagnostics, fmt, interval
from cbs.fit.scaling_objective import FORMS, huber_objective, log_prediction

PARAM_NAMES = ("a", "b", "e", "alpha", "beta")  # a = log A, b = log B, e = log E
SEARCHED = 256  # starts with the lowest objective that the batched L-BFGS minimises (docs/fit.md: checked)
SEARCH_ITERATIONS = 200  # L-BFGS iterations of the search; the polish converges its best optima
POLISHED = 8  # distinct best optima of the batched phase polished by scipy L-BFGS-B
DISTINCT = 1e-3  # optima whose parameters all agree within this are one optimum
CHINCHILLA_GRID = {  # Hoffmann et al. / Besiroglu et al.: 6 × 6 × 5 × 5 × 5 = 4500 starts
    "a": np.arange(0.0, 30.0, 5.0),
    "b": np.arange(0.0, 30.0, 5.0),
    "e": np.arange(-1.0, 1.5, 0.5),
    "alpha": np.arange(0.0, 2.5, 0.5),
    "beta": np.arange(0.0, 2.5, 0.5),
}
KAPLAN_GRID = {  # Kaplan's N_c, D_c are ~1e13: wider a, b; β > 0 as it divides α
    "a": np.arange(0.0, 48.0, 8.0),
    "b": np.arange(0.0, 48.0, 8.0),
    "e": np.arange(-1.0, 1.5, 0.5),
    "alpha": np.array([0.05, 0.2, 0.5, 1.0, 2.0]),
    "beta": np.array([0.05, 0.2, 0.5, 1.0, 2.0]),
}


def start_grid(form: str, n_starts: int, seed: int) -> np.ndarray:
    """The form's canonical 4500-point grid; a seeded subset when fewer starts are asked, random extras when more."""
    grid = KAPLAN_GRID if form == "kaplan" else CHINCHILLA_GRID
    full = np.array(list(itertools.product(*(grid[k] for k in PARAM_NAMES))), dtype=np.float64)
    rng = np.random.default_rng(seed)
    if n_starts <= len(full):
        return full[np.sort(rng.choice(len(full), size=n_starts, replace=False))]
    lo, hi = full.min(axis=0), full.max(axis=0)
    extra = rng.uniform(lo, hi, size=(n_starts - len(full), full.shape[1]))
    return np.vstack([full, extra])


def _distinct_best(x: np.ndarray, f: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best rows of ``x`` with finite ``f``, each differing from every better one kept by
    more than ``DISTINCT`` in some parameter."""
    keep: list[int] = []
    for i in np.argsort(f, kind="stable"):
        if not np.isfinite(f[i]) or len(keep) == k:
            break
        if all(np.abs(x[i] - x[j]).max() > DISTINCT for j in keep):
            keep.append(int(i))
    return np.array(keep, dtype=int)


@dataclass(frozen=True, eq=False)
class ScalingLawFit(JsonEquality):
    """A fitted L(N, D) law. ``params`` are (a, b, e, α, β) with A = e^a, B = e^b, E = e^e. Two fits are
    equal when their JSON is; a fit read from JSON keeps its intervals (``stored_intervals``), not samples."""

    form: str
    params: np.ndarray
    objective: float
    n_points: int
    n_starts: int
    samples: np.ndarray = field(repr=False)  # (n_boot, 5) bootstrap params; may be empty
    diagnostics: SolverDiagnostics = NOT_RECORDED
    stored_intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict, repr=False)
    stored_n_boot: int = 0

    @property
    def n_boot(self) -> int:
        """Bootstrap resamples behind the intervals."""
        return int(self.samples.shape[0]) or self.stored_n_boot

    @property
    def warnings(self) -> list[FitWarning]:
        """``solver_not_converged`` when the polish stopped early."""
        return self.diagnostics.warning(f"{self.form} fit")

    @property
    def E(self) -> float:  # noqa: N802 - the papers' names
        return float(np.exp(self.params[2]))

    @property
    def A(self) -> float:  # noqa: N802
        return float(np.exp(self.params[0]))

    @property
    def B(self) -> float:  # noqa: N802
        return float(np.exp(self.params[1]))

    @property
    def alpha(self) -> float:
        return float(self.params[3])

    @property
    def beta(self) -> float:
        return float(self.params[4])

    def intervals(self, level: float = CI_LEVEL) -> dict[str, tuple[float, float]]:
        """Bootstrap percentile intervals of E, A, B, alpha, beta (empty without bootstrap samples)."""
        if self.samples.size == 0:
            return dict(self.stored_intervals)
        s = self.samples
        named = {
            "E": np.exp(s[:, 2]),
            "A": np.exp(s[:, 0]),
            "B": np.exp(s[:, 1]),
            "alpha": s[:, 3],
            "beta": s[:, 4],
        }
        return {k: ci_tuple(v, level) for k, v in named.items()}

    def predict(self, n: object, d: object) -> np.ndarray:
        """L̂(N, D)."""
        log_n, log_d = np.broadcast_arrays(np.log(np.asarray(n, float)), np.log(np.asarray(d, float)))
        pred = log_prediction(self.params, log_n.ravel(), log_d.ravel(), self.form)[0]
        return np.exp(pred).reshape(log_n.shape)

    def predict_interval(
        self, n: object, d: object, level: float = CI_LEVEL
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap interval (lower, upper) of L̂(N, D)."""
        if self.samples.size == 0:
            raise FitError(
                "this fit has no bootstrap samples; refit with n_boot > 0 for prediction intervals"
            )
        log_n, log_d = np.broadcast_arrays(np.log(np.asarray(n, float)), np.log(np.asarray(d, float)))
        preds = np.exp(log_prediction(self.samples, log_n.ravel(), log_d.ravel(), self.form))
        lo, hi = percentile_ci(preds, level)
        return lo.reshape(log_n.shape), hi.reshape(log_n.shape)

    def compute_optimal(self, flops: object) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) minimising L at compute C = 6·N·D."""
        c6 = np.asarray(flops, dtype=np.float64) / 6.0
        alpha, beta = self.alpha, self.beta
        if alpha <= 0 or beta <= 0:
            raise FitError(f"no compute-optimal allocation for α={alpha:.3g}, β={beta:.3g}: both must be > 0")
        if self.form == "chinchilla":  # N_opt = G·(C/6)^{β/(α+β)}, G = (αA/(βB))^{1/(α+β)}
            g = (alpha * self.A / (beta * self.B)) ** (1.0 / (alpha + beta))
            n_opt = g * c6 ** (beta / (alpha + beta))
        else:  # minimise (A/N)^{α/β} + B·N/(C/6): N^{α/β+1} = (α/β)·A^{α/β}·(C/6)/B
            r = alpha / beta
            n_opt = (r * self.A**r * c6 / self.B) ** (1.0 / (r + 1.0))
        return n_opt, c6 / n_opt

    def predictions(self, points: Iterable[tuple[float, float]]) -> list[dict[str, Any]]:
        """L̂ with its interval (NaN without bootstrap samples) at each (N, D)."""
        out = []
        for n_p, d_p in points:
            lo, hi = self.predict_interval(n_p, d_p) if self.samples.size else (np.nan, np.nan)
            loss = float(self.predict(n_p, d_p))
            out.append({"n_params": n_p, "data_tokens": d_p, "loss": loss, "loss_ci": [float(lo), float(hi)]})
        return out

    def allocations(self, flops: Iterable[float]) -> list[dict[str, float]]:
        """The compute-optimal N and D at each compute C (FLOP)."""
        rows = []
        for c in flops:
            n_opt, d_opt = self.compute_optimal(c)
            rows.append({"flops": c, "n_opt": float(n_opt), "d_opt": float(d_opt)})
        return rows

    def report(self, predict: Sequence[tuple[float, float]] = (), compute: Sequence[float] = ()) -> str:
        """What `cbs fit scaling-law` prints: the parameters with intervals, the objective, the solver's
        verdict, and L̂ at ``predict`` (N, D) points and the optimal allocation at ``compute`` budgets."""
        ci = self.intervals()
        lines = [
            f"{self.form} fit on {self.n_points} points ({self.n_starts} starts, {self.n_boot} bootstrap resamples)"
        ]
        lines += [
            f"  {name:5s} = {fmt(getattr(self, name), ci.get(name))}"
            for name in ("E", "A", "B", "alpha", "beta")
        ]
        lines.append(f"  objective (summed Huber, δ=1e-3) = {self.objective:.10g}")
        lines.append(f"  {self.diagnostics.describe()}")
        for p in self.predictions(predict):
            lines.append(
                f"  L(N={p['n_params']:.4g}, D={p['data_tokens']:.4g}) = {fmt(p['loss'], p['loss_ci'])}"
            )
        for a in self.allocations(compute):
            lines.append(f"  C={a['flops']:.4g} FLOP: N_opt={a['n_opt']:.4g}, D_opt={a['d_opt']:.4g} tokens")
        return "\n".join(lines + [f"warning: {w.code} — {w.message}" for w in self.warnings])

    def to_dict(
        self, predict: Sequence[tuple[float, float]] | None = None, compute: Sequence[float] | None = None
    ) -> dict[str, object]:
        """The law's JSON; given ``predict``/``compute`` (even empty), also ``predictions`` (L̂ with its
        interval at each (N, D)) and ``compute_optimal`` (N, D at each C), as `cbs fit scaling-law` writes."""
        out: dict[str, object] = {
            "form": self.form,
            "E": self.E,
            "A": self.A,
            "B": self.B,
            "alpha": self.alpha,
            "beta": self.beta,
            "objective": self.objective,
            "n_points": self.n_points,
            "n_starts": self.n_starts,
            "n_boot": self.n_boot,
        }
        out.update({f"{k}_ci": list(v) for k, v in self.intervals().items()})
        out["params"] = dict(zip(PARAM_NAMES, map(float, self.params), strict=True))
        out["diagnostics"] = self.diagnostics.to_dict()
        if predict is not None:
            out["predictions"] = self.predictions(predict)
        if compute is not None:
            out["compute_optimal"] = self.allocations(compute)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScalingLawFit:
        """The law ``to_dict`` wrote; a file without ``params`` takes them from E, A, B, alpha, beta."""
        raw = data.get("params")
        if raw is not None:
            params = np.array([float(raw[k]) for k in PARAM_NAMES])
        else:
            logs = [np.log(float(data[k])) for k in ("A", "B", "E")]
            params = np.array([*logs, float(data["alpha"]), float(data["beta"])])
        names = ("E", "A", "B", "alpha", "beta")
        return cls(
            form=str(data["form"]),
            params=params,
            objective=float("nan") if data["objective"] is None else float(data["objective"]),
            n_points=int(data["n_points"]),
            n_starts=int(data["n_starts"]),
            samples=np.empty((0, 5)),
            diagnostics=SolverDiagnostics.from_dict(data.get("diagnostics")),
            stored_intervals={k: interval(data[f"{k}_ci"]) for k in names if f"{k}_ci" in data},
            stored_n_boot=int(data.get("n_boot", 0)),
        )


def _whitening(x: np.ndarray, data: tuple, form: str) -> Whitening:
    """Whitened coordinates for the unweighted objective at ``x`` (cbs.fit.multistart.whitening)."""
    log_n, log_d, log_l = data
    ones = np.ones(log_n.size)
    return whitening(lambda p: huber_objective(p, log_n, log_d, log_l, ones, form), x)


def _polish(p0: np.ndarray, data: tuple, form: str, white: Whitening) -> tuple[np.ndarray, float, bool, Any]:
    """scipy L-BFGS-B from ``p0`` in whitened coordinates, on the objective divided by its value at ``p0``:
    scipy's relative-decrease stop divides by max(|f|, 1), which for f ~ 1e-3 would stop it early."""
    log_n, log_d, log_l = data
    ones = np.ones(log_n.size)
    f0 = huber_objective(p0[None, :], log_n, log_d, log_l, ones, form)[0][0]
    scale = 1.0 / f0 if np.isfinite(f0) and f0 > 0 else 1.0

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = huber_objective(white.to_x(z[None, :]), log_n, log_d, log_l, ones, form)
        return float(f[0]) * scale, (g @ white.t)[0] * scale

    res = minimize(
        fun,
        white.to_z(p0[None, :])[0],
        jac=True,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000},
    )
    x = white.to_x(np.asarray(res.x)[None, :])[0]
    f = float(huber_objective(x[None, :], log_n, log_d, log_l, ones, form)[0][0])
    return x, f, bool(res.success or "ABNORMAL" in str(res.message)), res


def fit_scaling_law(
    n: object,
    d: object,
    loss: object,
    *,
    form: str = "chinchilla",
    n_starts: int = 4500,
    n_boot: int = 1000,
    seed: int = 0,
    boot_starts: int = 3,
) -> ScalingLawFit:
    """Fit L(N, D) (Approach 3: LSE parameters, summed Huber δ=1e-3 on log residuals, multi-start L-BFGS).

    The objective is evaluated at all ``n_starts`` starting points (4500 = the canonical grid); the
    ``SEARCHED`` lowest are minimised together, the best distinct optima polished. ``n_boot`` pairs-bootstrap
    resamples are each warm-started from the ``boot_starts`` best distinct polished optima.
    """
    if form not in FORMS:
        raise FitError(f"unknown scaling-law form {form!r}; choose one of {FORMS}")
    na = as_finite_array(n, "n_params", positive=True)
    da = as_finite_array(d, "data_tokens", positive=True)
    la = as_finite_array(loss, "loss", positive=True)
    if not na.size == da.size == la.size:
        raise FitError(f"n, d and loss differ in length ({na.size}, {da.size}, {la.size})")
    require_points(na.size, 6, f"a {form} scaling law (5 parameters)")
    for name, arr in (("n_params", na), ("data_tokens", da)):
        if np.unique(arr).size < 2:
            raise FitError(f"{name} takes a single value; L(N, D) needs both N and D to vary")
    if n_starts < 1:
        raise FitError("n_starts must be ≥ 1")
    data = (np.log(na), np.log(da), np.log(la))
    ones = np.ones(na.size)

    def fun(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return huber_objective(x, *data, ones, form)

    starts = start_grid(form, n_starts, seed)
    initial, _ = fun(starts, np.arange(n_starts))
    searched = starts[np.argsort(initial, kind="stable")[:SEARCHED]]
    # the batched phase only has to find the basins; the polish below converges the best of them tightly
    batch = batched_lbfgs(fun, searched, max_iter=SEARCH_ITERATIONS, ftol=1e-6)
    cand = _distinct_best(batch.x, batch.fun, max(POLISHED, boot_starts))
    if cand.size == 0:
        raise FitError(
            f"the {form} fit did not converge from any of {n_starts} starts (objective not finite)"
        )
    white = _whitening(batch.x[cand[0]], data, form)
    polished = [_polish(batch.x[i], data, form, white) for i in cand]
    optima = np.array([p[0] for p in polished])
    values = np.array([p[1] for p in polished])
    best_x, best_f, ok, res = polished[int(np.argmin(values))]
    if not ok or not np.isfinite(best_f):
        raise FitError(f"the {form} fit did not converge (L-BFGS-B stopped without meeting its tolerance)")
    warm = optima[_distinct_best(optima, values, boot_starts)]
    samples = _bootstrap(warm, data, form, n_boot, seed)
    diagnostics = SolverDiagnostics(
        solver=(
            f"batched L-BFGS from the {len(searched)} lowest of {n_starts} starts, "
            f"then scipy L-BFGS-B on the best {cand.size}"
        ),
        converged=ok,
        evaluations=int(res.nfev),
        message=f"{res.message}; {int(batch.converged.sum())} of {len(searched)} searched starts converged",
        resamples=max(n_boot, 0),
        resamples_ok=int(np.isfinite(samples).all(axis=1).sum()),
    )
    return ScalingLawFit(
        form=form,
        params=best_x,
        objective=best_f,
        n_points=int(na.size),
        n_starts=n_starts,
        samples=samples,
        diagnostics=diagnostics,
    )


def _bootstrap(warm: np.ndarray, data: tuple, form: str, n_boot: int, seed: int) -> np.ndarray:
    """Pairs bootstrap as point multiplicities; every resample starts from each of the ``warm`` optima."""
    if n_boot <= 0:
        return np.empty((0, 5))
    return _refit(warm, data, form, resample_counts(data[0].size, n_boot, seed))


def _refit(warm: np.ndarray, data: tuple, form: str, weights: np.ndarray) -> np.ndarray:
    """One fit per row of ``weights`` (point multiplicities), each from every ``warm`` optimum, best kept.
    The fits run in coordinates whitened at ``warm[0]`` and converge tightly (relative decrease 1e-14)."""
    log_n, log_d, log_l = data
    n_boot, k = len(weights), len(warm)
    rep = np.repeat(weights, k, axis=0)
    white = _whitening(warm[0], data, form)

    def fun(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return huber_objective(x, log_n, log_d, log_l, rep[rows], form)

    res = batched_lbfgs(
        white.objective(fun), white.to_z(np.tile(warm, (n_boot, 1))), max_iter=400, ftol=1e-14, gtol=1e-10
    )
    f = res.fun.reshape(n_boot, k)
    best = np.argmin(f, axis=1)
    out = white.to_x(res.x).reshape(n_boot, k, 5)[np.arange(n_boot), best]
    out[~np.isfinite(f[np.arange(n_boot), best])] = np.nan
    return out


def refit_weighted(law: ScalingLawFit, n: object, d: object, loss: object, weights: np.ndarray) -> np.ndarray:
    """Refit ``law`` (its form, on the points it was fitted to) once per row of ``weights`` — point
    multiplicities, e.g. a bootstrap plan — warm-started from the law's optimum. Returns (rows, 5) parameters
    (a, b, e, α, β); a row whose objective is not finite is NaN."""
    data = tuple(
        np.log(as_finite_array(v, name, positive=True)) for v, name in ((n, "n"), (d, "d"), (loss, "loss"))
    )
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != data[0].size:
        raise FitError(f"weights have {w.shape[1]} columns for {data[0].size} points")
    return _refit(law.params[None, :], data, law.form, w)
