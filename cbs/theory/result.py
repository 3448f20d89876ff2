"""The result of a `cbs theory` study: B* per (dim, D) cell, the fitted B* ∝ D^k and the corollary's k."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbs.fit.diagnostics import FitWarning
from cbs.fit.result import NOT_RECORDED, JsonEquality, SolverDiagnostics, interval, warnings_from

Row = dict[str, Any]  # one cell's summary (`cbs.theory.study.CellFit.summary`)


def _ci(value: object) -> tuple[float, float] | None:
    return None if value is None else interval(value)


@dataclass(frozen=True, eq=False)
class StudyResult(JsonEquality):
    """Both sweeps of a study: per-cell rows and the exponents fitted across D (with 95% intervals).
    Equal to another study when their JSON is."""

    problem: dict[str, Any]  # a, b, sigma, dim
    conventions: dict[str, str]
    b_ref: int
    overhead: float
    exponent_theory: float
    exponent_data: float
    exponent_data_ci: tuple[float, float]
    exponent_data_b_noise: float
    exponent_data_b_noise_ci: tuple[float, float]
    exponent_data_direct: float | None
    exponent_data_direct_ci: tuple[float, float] | None
    cbs_by_data: list[Row]
    dim_data_size: int
    effective_dim: float
    cbs_by_dim: list[Row]
    dim_flatness: dict[str, Any]
    seconds: dict[str, float]
    experiment: str = "theory"
    warnings: list[FitWarning] = field(default_factory=list)
    coefficient_data: float | None = None  # c of B* = c·D^k (None: not recorded)
    diagnostics: SolverDiagnostics = NOT_RECORDED  # the cells' S(B) fits as one verdict
    gns: dict[str, Any] | None = None  # exact vs in-run B_simple (cbs.theory.noise_scale; None: not run)

    def predict(self, data_size: object) -> np.ndarray:
        """B* = c·D^k from the fitted law."""
        if self.coefficient_data is None:
            raise ValueError("this study's JSON has no coefficient_data; rerun `cbs theory` to predict B*")
        return self.coefficient_data * np.asarray(data_size, dtype=np.float64) ** self.exponent_data

    def intervals(self) -> dict[str, tuple[float, float]]:
        """The fitted exponents' intervals, and B* per cell ('cbs[dim=…, D=…]')."""
        out = {"exponent_data": self.exponent_data_ci, "exponent_data_b_noise": self.exponent_data_b_noise_ci}
        if self.exponent_data_direct_ci is not None:
            out["exponent_data_direct"] = self.exponent_data_direct_ci
        for row in (*self.cbs_by_data, *self.cbs_by_dim):
            if row["cbs_ci"] is not None:
                out[f"cbs[dim={row['dim']}, D={row['data_size']}]"] = interval(row["cbs_ci"])
        return out

    def report(self) -> str:
        """What `cbs theory` prints: one line per cell, the exponents beside the corollary, flatness in dim,
        warnings, the solver's verdict and the time taken."""
        p = self.problem
        lines = [
            f"power-law regression a={p['a']:g} b={p['b']:g} sigma={p['sigma']:g}; B_ref={self.b_ref}, "
            f"overhead={self.overhead:g}",
            f"{'dim':>5} {'D':>8} {'target':>10} {'S_min':>7} {'B_noise':>9} {'B*':>8}  {'95% CI':<16} {'direct':>7}",
        ]
        rows = (*self.cbs_by_data, *self.cbs_by_dim)
        for row in rows:
            head = f"{row['dim']:>5} {row['data_size']:>8} {row['target_excess_risk']:>10.3e}"
            if row["cbs"] is None:
                lines.append(f"{head}  fit refused: {row['error']}")
                continue
            lo, hi = row["cbs_ci"]
            lines.append(
                f"{head} {row['s_min']:>7.1f} {row['b_noise']:>9.1f} {row['cbs']:>8.1f}  "
                f"{f'[{lo:.1f}, {hi:.1f}]':<16} {row['cbs_direct'] or float('nan'):>7.1f}"
            )
        lo, hi = self.exponent_data_ci
        lines.append(
            f"B* ∝ D^k: fitted k = {self.exponent_data:.3f} [{lo:.3f}, {hi:.3f}]; "
            f"corollary 1 - a/min(b, 2a+1) = {self.exponent_theory:.3f}"
        )
        if self.exponent_data_direct is not None and self.exponent_data_direct_ci is not None:
            lo, hi = self.exponent_data_direct_ci
            lines.append(
                f"direct reading (no hyperbola): k = {self.exponent_data_direct:.3f} [{lo:.3f}, {hi:.3f}]"
            )
        flat = self.dim_flatness
        if "relative_change" in flat:
            lines.append(
                f"B* across dims {flat['dims']} (>= {flat['min_dim_factor']:g} k*, k* = {self.effective_dim:.1f}) "
                f"at D = {self.dim_data_size}: relative change {flat['relative_change']:.1%}"
            )
        for row in rows:
            lines += [
                f"warning: dim {row['dim']}, D {row['data_size']}: {w['code']} — {w['message']}"
                for w in row["warnings"]
            ]
        lines += [f"warning: {w.code} — {w.message}" for w in self.warnings]
        lines.append(self.diagnostics.describe())
        if self.gns:
            lines += _gns_lines(self.gns)
        gns_time = f", GNS check {self.seconds['gns']:.1f} s" if "gns" in self.seconds else ""
        lines.append(
            f"time: data sweep {self.seconds['data_sweep']:.1f} s, dim sweep {self.seconds['dim_sweep']:.1f} s"
            + gns_time
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "experiment": self.experiment,
            "warnings": [w.to_dict() for w in self.warnings],
            "problem": self.problem,
            "conventions": self.conventions,
            "b_ref": self.b_ref,
            "overhead": self.overhead,
            "exponent_theory": self.exponent_theory,
            "exponent_data": self.exponent_data,
            "exponent_data_ci": list(self.exponent_data_ci),
            "exponent_data_b_noise": self.exponent_data_b_noise,
            "exponent_data_b_noise_ci": list(self.exponent_data_b_noise_ci),
            "exponent_data_direct": self.exponent_data_direct,
            "exponent_data_direct_ci": None
            if self.exponent_data_direct_ci is None
            else list(self.exponent_data_direct_ci),
            "cbs_by_data": self.cbs_by_data,
            "dim_data_size": self.dim_data_size,
            "effective_dim": self.effective_dim,
            "cbs_by_dim": self.cbs_by_dim,
            "dim_flatness": self.dim_flatness,
            "seconds": self.seconds,
            "coefficient_data": self.coefficient_data,
            "diagnostics": self.diagnostics.to_dict(),
            "gns": self.gns,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyResult:
        """The study ``to_dict`` wrote; an older file lacks ``coefficient_data``, ``diagnostics`` and ``gns``."""
        direct = data.get("exponent_data_direct")
        return cls(
            experiment=str(data.get("experiment", "theory")),
            warnings=warnings_from(data.get("warnings")),
            problem=dict(data["problem"]),
            conventions=dict(data["conventions"]),
            b_ref=int(data["b_ref"]),
            overhead=float(data["overhead"]),
            exponent_theory=float(data["exponent_theory"]),
            exponent_data=float(data["exponent_data"]),
            exponent_data_ci=interval(data["exponent_data_ci"]),
            exponent_data_b_noise=float(data["exponent_data_b_noise"]),
            exponent_data_b_noise_ci=interval(data["exponent_data_b_noise_ci"]),
            exponent_data_direct=None if direct is None else float(direct),
            exponent_data_direct_ci=_ci(data.get("exponent_data_direct_ci")),
            cbs_by_data=[dict(r) for r in data["cbs_by_data"]],
            dim_data_size=int(data["dim_data_size"]),
            effective_dim=float(data["effective_dim"]),
            cbs_by_dim=[dict(r) for r in data["cbs_by_dim"]],
            dim_flatness=dict(data["dim_flatness"]),
            seconds={k: float(v) for k, v in data["seconds"].items()},
            coefficient_data=None
            if data.get("coefficient_data") is None
            else float(data["coefficient_data"]),
            diagnostics=SolverDiagnostics.from_dict(data.get("diagnostics")),
            gns=None if data.get("gns") is None else dict(data["gns"]),
        )


def _gns_lines(gns: Mapping[str, Any]) -> list[str]:
    """The exact vs in-run B_simple table of `cbs theory`."""
    lines = [
        f"gradient noise scale B_simple at dim {gns['dim']}, D {gns['data_size']}: B={gns['batch_size']}, "
        f"lr={gns['lr']:.3g}, in-run estimator b_small={gns['b_small']}, EMA decay {gns['ema_decay']:g}, "
        f"{gns['n_seeds']} sampled runs",
        f"{'step':>6} {'exact':>9} {'exact EMA':>10} {'estimated':>10} {'± se':>7} {'est/EMA':>8}",
    ]
    columns = ("steps", "b_simple_exact", "b_simple_exact_ema", "b_simple_estimated", "b_simple_estimated_se")
    for *row, ratio in zip(*(gns[c] for c in columns), gns["ratio_ema"], strict=True):
        step, exact, ema, est, se = row
        lines.append(f"{step:>6} {exact:>9.2f} {ema:>10.2f} {est:>10.2f} {se:>7.2f} {ratio:>8.3f}")
    return lines
