"""The teaser: CBS vs model size (fixed data), vs data size (fixed model), along the Chinchilla line.

Each panel shows the per-group CBS with its interval, the fitted power law B* = c·x^k (solid over the data,
dashed as a forecast beyond it) and its bootstrap band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cbs.fit import PowerLawFit, fit_power_law
from cbs.plots.style import OKABE_ITO, human, log_axis, new_figure, styled
from cbs.protocol import CHINCHILLA_TOKENS_PER_PARAM

FORECAST_DECADES = 1.0  # how far past the largest measured x the dashed forecast runs
MIN_POINTS = 3  # a power law with an interval needs three CBS values
CHINCHILLA_TOLERANCE = 1.5  # "on the Chinchilla line": D/N within a factor 1.5 of 20 tokens per parameter


@dataclass(frozen=True)
class CbsPoint:
    """The CBS of one (model, data size) group with its 95% interval."""

    model: str
    n_params: float
    data_tokens: float
    cbs: float
    cbs_lo: float
    cbs_hi: float
    warnings: tuple[str, ...] = ()  # the group's warning codes (cbs.fit.diagnostics): drawn hollow


@dataclass(frozen=True)
class ScalingPanel:
    """One panel: CBS at x (with 95% intervals) and the power law fitted to them."""

    title: str
    variable: str  # "N" or "D"
    x: np.ndarray
    cbs: np.ndarray
    cbs_lo: np.ndarray
    cbs_hi: np.ndarray
    law: PowerLawFit
    unit: float = 0.0  # x unit of the printed law; 0: millions of parameters (N) or billions of tokens (D)
    warned: np.ndarray | None = None  # per point: the group carries warnings (drawn hollow)

    def __post_init__(self) -> None:
        if not self.unit:
            object.__setattr__(self, "unit", 1e6 if self.variable == "N" else 1e9)


def law_panel(
    title: str, variable: str, points: list[CbsPoint], n_boot: int, seed: int, unit: float = 0.0
) -> ScalingPanel:
    """A panel of CBS vs ``variable`` ("N" or "D") with the power law fitted to ``points``."""
    points = sorted(points, key=lambda p: p.n_params if variable == "N" else p.data_tokens)
    x = np.array([p.n_params if variable == "N" else p.data_tokens for p in points])
    cbs = np.array([p.cbs for p in points])
    law = fit_power_law(x, cbs, n_boot=n_boot, seed=seed)
    lo, hi = (np.array([getattr(p, k) for p in points]) for k in ("cbs_lo", "cbs_hi"))
    warned = np.array([bool(p.warnings) for p in points])
    return ScalingPanel(title, variable, x, cbs, lo, hi, law, unit, warned)


def _widest(points: list[CbsPoint], fixed: str, varying: str) -> tuple[float, list[CbsPoint]]:
    """The value of ``fixed`` shared by the most distinct values of ``varying`` (ties: the largest)."""
    by_value: dict[float, dict[float, CbsPoint]] = {}
    for p in points:
        if np.isfinite(getattr(p, fixed)):
            by_value.setdefault(getattr(p, fixed), {})[getattr(p, varying)] = p
    if not by_value:
        return np.nan, []
    value = max(by_value, key=lambda v: (len(by_value[v]), v))
    return value, list(by_value[value].values())


def select_panels(
    points: Sequence[CbsPoint],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    chinchilla_tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM,
) -> tuple[list[ScalingPanel], list[str]]:
    """The teaser's panels that ``points`` support, and for each missing one the reason it cannot be drawn."""
    points = list(points)
    panels, reasons = [], []
    d_fixed, at_d = _widest(points, "data_tokens", "n_params")
    if len(at_d) >= MIN_POINTS:
        panels.append(law_panel(f"Fixed data (D = {human(d_fixed)})", "N", at_d, n_boot, seed))
    else:
        reasons.append(
            f"CBS vs model size: at most {len(at_d)} model size(s) share a data size; needs ≥ {MIN_POINTS}"
        )
    n_fixed, at_n = _widest(points, "n_params", "data_tokens")
    if len(at_n) >= MIN_POINTS:
        panels.append(law_panel(f"Fixed model (N = {human(n_fixed)})", "D", at_n, n_boot, seed))
    else:
        reasons.append(
            f"CBS vs data size: at most {len(at_n)} data size(s) share a model size; needs ≥ {MIN_POINTS}"
        )
    ratio = np.array([p.data_tokens / p.n_params for p in points])
    on_line = {
        p.n_params: p
        for p, r in zip(points, ratio, strict=True)
        if np.isfinite(r) and abs(np.log(r / chinchilla_tokens_per_param)) <= np.log(CHINCHILLA_TOLERANCE)
    }
    if len(on_line) >= MIN_POINTS:
        title = f"Chinchilla line (D ≈ {chinchilla_tokens_per_param:g}N)"
        panels.append(law_panel(title, "N", list(on_line.values()), n_boot, seed))
    else:
        reasons.append(
            f"CBS along the Chinchilla line: {len(on_line)} model size(s) trained on ≈ "
            f"{chinchilla_tokens_per_param:g} tokens/param; needs ≥ {MIN_POINTS}"
        )
    return panels, reasons


def law_label(law: PowerLawFit, variable: str, unit: float) -> str:
    """'B* = 93.2·(N/1M)^0.470 [0.41, 0.53]': coefficient for x in the paper's units, exponent 95% CI."""
    coef = law.coefficient * unit**law.exponent
    lo, hi = law.exponent_ci
    x = variable if unit == 1 else f"({variable}/{human(unit)})"
    return f"$B^* = {coef:.3g}\\,{x}^{{{law.exponent:.3f}}}$\nexponent 95% CI [{lo:.2f}, {hi:.2f}]"


def draw_panel(ax: Axes, panel: ScalingPanel, color: str) -> None:
    """Points with intervals, the law over the data (``gid="law"``), the forecast (``gid="forecast"``), band."""
    lo, hi = float(panel.x.min()), float(panel.x.max())
    inside = np.geomspace(lo, hi, 100)
    beyond = np.geomspace(hi, hi * 10**FORECAST_DECADES, 60)
    everywhere = np.concatenate([inside, beyond[1:]])
    band_lo, band_hi = panel.law.band(everywhere)
    ax.fill_between(
        everywhere, band_lo, band_hi, color=color, alpha=0.2, lw=0, label="95% band of the fit", gid="band"
    )
    ax.plot(inside, panel.law.predict(inside), "-", color=color, label="power-law fit", gid="law")
    ax.plot(beyond, panel.law.predict(beyond), "--", color=color, label="forecast", gid="forecast")
    yerr = np.vstack([panel.cbs - panel.cbs_lo, panel.cbs_hi - panel.cbs])
    ax.errorbar(
        panel.x,
        panel.cbs,
        yerr=yerr,
        fmt="o",
        color="0.15",
        ms=4,
        capsize=2,
        lw=0.9,
        label="measured CBS (95% CI)",
        gid="points",
    )
    if panel.warned is not None and panel.warned.any():
        ax.plot(panel.x[panel.warned], panel.cbs[panel.warned], "o", mfc="white", mec="0.15", ms=4, mew=0.9,
                label="group with warnings (see report)", gid="warned", zorder=5)  # fmt: skip
    ax.text(
        0.03,
        0.97,
        law_label(panel.law, panel.variable, panel.unit),
        transform=ax.transAxes,
        va="top",
        fontsize=7.5,
        bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "0.8", "alpha": 0.9},
    )
    log_axis(ax, "x")
    top = max(float(np.max(panel.cbs_hi)), float(np.max(band_hi)))
    bottom = min(float(np.min(panel.cbs_lo)), float(np.min(band_lo)))
    ax.set_ylim(bottom / 1.5, top * 2.5)  # head room for the equation
    log_axis(ax, "y", min_span=4.0)
    ax.set_title(panel.title)
    ax.set_xlabel("Model size N (non-embedding params)" if panel.variable == "N" else "Data size D (tokens)")


@styled
def cbs_scaling(panels: Sequence[ScalingPanel]) -> Figure:
    """One panel per entry (the paper's teaser has three), sharing the y label and one legend below."""
    fig, axes = new_figure(len(panels), height=2.9, width=min(7.0, 2.4 * len(panels) + 0.4))
    for i, (ax, panel) in enumerate(zip(axes[0], panels, strict=True)):
        draw_panel(ax, panel, OKABE_ITO[i])
    axes[0][0].set_ylabel("Critical batch size B* (sequences)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, 2 * len(panels)))
    return fig
