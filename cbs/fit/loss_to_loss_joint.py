"""Joint bootstrap of a loss-to-loss law: the uncertainty of E_x and E_y carried into κ and K.

Each resample draws the (N, D) cells — every model size and token count run in the x or the y group — with
replacement; the L(N, D) laws that gave E_x and E_y are refitted on the drawn cells' runs (warm-started from
the full-data optimum: one batched L-BFGS over all resamples), then κ and K on the drawn pairs with those
shifts. An interval that holds E fixed leaves that uncertainty out, and κ is very sensitive to E_y.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cbs.errors import FitError
from cbs.fit.bootstrap import ci_tuple, resample_counts
from cbs.fit.loss_to_loss import fit_kappa
from cbs.fit.result import SolverDiagnostics, empty_samples, interval
from cbs.fit.scaling_law import ScalingLawFit, refit_weighted


@dataclass(frozen=True)
class LawData:
    """The runs an L(N, D) law was fitted to: N, D and loss, and the fitted law."""

    law: ScalingLawFit
    n: np.ndarray
    d: np.ndarray
    loss: np.ndarray


@dataclass(frozen=True)
class JointInterval:
    """Percentile intervals of κ, K, E_x, E_y over ``n_ok`` of ``n_boot`` cell resamples (the rest failed:
    a refitted shift at or above a drawn loss, or a law that did not converge); ``seconds`` is its cost."""

    kappa_ci: tuple[float, float]
    K_ci: tuple[float, float]  # noqa: N815 - the paper's name
    E_x_ci: tuple[float, float]  # noqa: N815
    E_y_ci: tuple[float, float]  # noqa: N815
    n_boot: int
    n_ok: int
    seconds: float
    samples: np.ndarray = field(repr=False, compare=False)  # (n_ok, 4): κ, log K, E_x, E_y
    law_x_samples: np.ndarray | None = field(repr=False, compare=False)  # (n_ok, 5), rows as ``samples``
    law_y_samples: np.ndarray | None = field(repr=False, compare=False)

    @property
    def diagnostics(self) -> SolverDiagnostics:
        """How many resamples could be refitted (laws by a batched L-BFGS, then κ and K)."""
        return SolverDiagnostics(
            "batched L-BFGS refits of the L(N, D) laws, then least squares for κ, K",
            self.n_ok > 0,
            0,
            f"{self.n_ok} of {self.n_boot} cell resamples fitted",
            self.n_boot,
            self.n_ok,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "kappa_ci": list(self.kappa_ci),
            "K_ci": list(self.K_ci),
            "E_x_ci": list(self.E_x_ci),
            "E_y_ci": list(self.E_y_ci),
            "n_boot": self.n_boot,
            "n_ok": self.n_ok,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JointInterval:
        """The intervals ``to_dict`` wrote (without the resamples themselves)."""
        return cls(
            kappa_ci=interval(data["kappa_ci"]),
            K_ci=interval(data["K_ci"]),
            E_x_ci=interval(data["E_x_ci"]),
            E_y_ci=interval(data["E_y_ci"]),
            n_boot=int(data["n_boot"]),
            n_ok=int(data["n_ok"]),
            seconds=float(data["seconds"]),
            samples=empty_samples(4),
            law_x_samples=None,
            law_y_samples=None,
        )


def _cell_index(n: object, d: object, cells: pd.MultiIndex) -> np.ndarray:
    return cells.get_indexer(pd.MultiIndex.from_arrays([np.asarray(n, float), np.asarray(d, float)]))


def _shift_samples(side: LawData | None, fixed: float, counts: np.ndarray, cells: pd.MultiIndex):
    """(E per resample, refitted law parameters or None)."""
    if side is None:
        return np.full(len(counts), fixed), None
    params = refit_weighted(
        side.law, side.n, side.d, side.loss, counts[:, _cell_index(side.n, side.d, cells)]
    )
    return np.exp(params[:, 2]), params


def joint_bootstrap(
    pairs: pd.DataFrame,
    *,
    law_x: LawData | None,
    law_y: LawData | None,
    E_x: float,  # noqa: N803
    E_y: float | None,  # noqa: N803
    n_boot: int,
    seed: int,
) -> JointInterval:
    """Resample the (N, D) cells of ``pairs`` (columns n, d, x, y) and of the laws' runs ``n_boot`` times;
    refit each given law (E_x, E_y from it; else the fixed ``E_x``/``E_y``; ``E_y=None`` profiles E_y) and
    then κ, K. Resamples that cannot be fitted are counted, not kept; refuses when none can."""
    start = time.perf_counter()
    keys = [(pairs["n"], pairs["d"])] + [(s.n, s.d) for s in (law_x, law_y) if s is not None]
    cells = pd.MultiIndex.from_arrays(
        [
            np.concatenate([np.asarray(k[0], float) for k in keys]),
            np.concatenate([np.asarray(k[1], float) for k in keys]),
        ]
    ).unique()
    counts = resample_counts(len(cells), n_boot, seed)
    e_x, params_x = _shift_samples(law_x, E_x, counts, cells)
    e_y, params_y = _shift_samples(law_y, np.nan if E_y is None else E_y, counts, cells)
    x, y = pairs["x"].to_numpy(float), pairs["y"].to_numpy(float)
    reps = counts[:, _cell_index(pairs["n"], pairs["d"], cells)].astype(int)
    out, ok = [], []
    for b in range(n_boot):
        idx = np.repeat(np.arange(x.size), reps[b])
        fixed_y = None if E_y is None and law_y is None else e_y[b]
        if idx.size < 3 or not e_x[b] < x[idx].min() or not (fixed_y is None or fixed_y < y[idx].min()):
            continue  # NaN (a law that failed) or a shift at or above a drawn loss
        try:
            kappa, log_k, ey, _ = fit_kappa(x[idx], y[idx], e_x[b], fixed_y)
        except FitError:
            continue
        out.append((kappa, log_k, e_x[b], ey))
        ok.append(b)
    if not out:
        raise FitError(
            f"none of the {n_boot} joint bootstrap resamples could be fitted; use --interval e-fixed"
        )
    s = np.asarray(out)
    return JointInterval(
        kappa_ci=ci_tuple(s[:, 0]),
        K_ci=ci_tuple(np.exp(s[:, 1])),
        E_x_ci=ci_tuple(s[:, 2]),
        E_y_ci=ci_tuple(s[:, 3]),
        n_boot=n_boot,
        n_ok=len(out),
        seconds=time.perf_counter() - start,
        samples=s,
        law_x_samples=None if params_x is None else params_x[ok],
        law_y_samples=None if params_y is None else params_y[ok],
    )
