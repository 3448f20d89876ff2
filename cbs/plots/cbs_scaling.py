"""The teaser: CBS vs model size (fixed data), vs data size (fixed model), along the Chinchilla line.

Each panel draws one of the fit's subset laws (`cbs.fit.cbs_laws.SubsetLaw`, carried by `cbs fit cbs` and its
JSON) with the CBS of its groups: the points with their intervals, the law (solid over the data, dashed as a
forecast beyond it) and its bootstrap band. Nothing here fits: the printed law is the fit's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cbs.errors import FitError
from cbs.fit import CbsAnalysis, CbsGroup
from cbs.fit.cbs_laws import MIN_DISTINCT, SubsetLaw
from cbs.plots.style import OKABE_ITO, human, log_axis, new_figure, styled

FORECAST_DECADES = 1.0  # how far past the largest measured x the dashed forecast runs
SCALE = {"n_params": 1e6, "data_tokens": 1.0}  # the laws' x units: N in millions, D in tokens


@dataclass(frozen=True)
class ScalingPanel:
    """One panel: a subset law and the CBS (with 95% intervals) of the groups it was fitted over, at x."""

    title: str
    law: SubsetLaw
    x: np.ndarray  # N in parameters or D in tokens
    cbs: np.ndarray
    cbs_lo: np.ndarray
    cbs_hi: np.ndarray
    warned: np.ndarray  # per point: the group carries warnings (drawn hollow)

    def predict(self, x: object) -> np.ndarray:
        """The law at ``x`` (parameters or tokens)."""
        return self.law.law.predict(np.asarray(x, dtype=np.float64) / SCALE[self.law.variable])

    def band(self, x: object) -> tuple[np.ndarray, np.ndarray]:
        """The law's pointwise 95% bootstrap band at ``x``."""
        return self.law.law.band(np.asarray(x, dtype=np.float64) / SCALE[self.law.variable])


def law_panel(title: str, law: SubsetLaw, groups: Sequence[CbsGroup]) -> ScalingPanel:
    """The panel of ``law``: its groups (found among ``groups`` by key) at their N or D, in the law's order."""
    by_key = {g.key: g for g in groups}
    missing = [k for k in law.groups if k not in by_key or by_key[k].fit is None]
    if missing:
        raise FitError(f"the law {law.name} names groups without a fit in the analysis: {missing}")
    members = [by_key[k] for k in law.groups]
    x = np.array([getattr(g, law.variable) for g in members])
    cbs, lo, hi = (
        np.array(v) for v in zip(*[(g.fitted.cbs, *g.fitted.cbs_ci) for g in members], strict=True)
    )
    warned = np.array([bool(g.warnings) for g in members])
    return ScalingPanel(title, law, x, cbs, lo, hi, warned)


def widest_law(laws: Sequence[SubsetLaw], variable: str, fixed: str) -> SubsetLaw | None:
    """The law in ``variable`` at a fixed ``fixed`` with the most groups (ties: the largest fixed value)."""
    candidates = [law for law in laws if law.variable == variable and fixed in law.fixed]
    return max(candidates, key=lambda law: (len(law.groups), law.fixed[fixed]), default=None)


def select_panels(analysis: CbsAnalysis) -> tuple[list[ScalingPanel], list[str]]:
    """The teaser's panels the fit's subset laws give, and for each missing one the reason it cannot be drawn."""
    laws, panels, reasons = analysis.subset_laws, [], []
    if law := widest_law(laws, "n_params", "data_tokens"):
        title = f"Fixed data (D = {human(law.fixed['data_tokens'])})"
        panels.append(law_panel(title, law, analysis.groups))
    else:
        reasons.append(f"CBS vs model size: no data size is shared by ≥ {MIN_DISTINCT} fitted model sizes")
    if law := widest_law(laws, "data_tokens", "n_params"):
        panels.append(law_panel(f"Fixed model (N = {human(law.fixed['n_params'])})", law, analysis.groups))
    else:
        reasons.append(f"CBS vs data size: no model size is shared by ≥ {MIN_DISTINCT} fitted data sizes")
    if law := widest_law(laws, "n_params", "tokens_per_param"):
        title = f"Chinchilla line (D ≈ {law.fixed['tokens_per_param']:g}N)"
        panels.append(law_panel(title, law, analysis.groups))
    else:
        reasons.append(
            f"CBS along the Chinchilla line: fewer than {MIN_DISTINCT} fitted model sizes trained on ≈ 20 "
            "tokens/param"
        )
    return panels, reasons


def law_label(law: SubsetLaw) -> str:
    """'B* = 2.05·(N/1M)^-0.123' and the exponent's 95% CI: the fit's coefficient (N in millions, D in
    tokens) and exponent as `cbs fit cbs` reports them."""
    fit = law.law
    lo, hi = fit.exponent_ci
    x = "(N/1M)" if law.variable == "n_params" else "D"
    return f"$B^* = {fit.coefficient:.3g}\\,{x}^{{{fit.exponent:.3f}}}$\nexponent 95% CI [{lo:.2f}, {hi:.2f}]"


def draw_panel(ax: Axes, panel: ScalingPanel, color: str) -> None:
    """Points with intervals, the law over the data (``gid="law"``), the forecast (``gid="forecast"``), band."""
    lo, hi = float(panel.x.min()), float(panel.x.max())
    inside = np.geomspace(lo, hi, 100)
    beyond = np.geomspace(hi, hi * 10**FORECAST_DECADES, 60)
    everywhere = np.concatenate([inside, beyond[1:]])
    band_lo, band_hi = panel.band(everywhere) if len(panel.law.law.samples) else (panel.cbs, panel.cbs)
    if len(panel.law.law.samples):  # no band without bootstrap resamples (--n-boot 0)
        ax.fill_between(
            everywhere,
            band_lo,
            band_hi,
            color=color,
            alpha=0.2,
            lw=0,
            label="95% band of the fit",
            gid="band",
        )
    ax.plot(inside, panel.predict(inside), "-", color=color, label="power-law fit", gid="law")
    ax.plot(beyond, panel.predict(beyond), "--", color=color, label="forecast", gid="forecast")
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
    if panel.warned.any():
        ax.plot(panel.x[panel.warned], panel.cbs[panel.warned], "o", mfc="white", mec="0.15", ms=4, mew=0.9,
                label="group with warnings (see report)", gid="warned", zorder=5)  # fmt: skip
    ax.text(
        0.03,
        0.97,
        law_label(panel.law),
        transform=ax.transAxes,
        va="top",
        fontsize=7.5,
        bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "0.8", "alpha": 0.9},
    )
    log_axis(ax, "x")
    top = float(np.nanmax([*panel.cbs, *panel.cbs_hi, *band_hi]))
    bottom = float(np.nanmin([*panel.cbs, *panel.cbs_lo, *band_lo]))
    ax.set_ylim(bottom / 1.5, top * 2.5)  # head room for the equation
    log_axis(ax, "y", min_span=4.0)
    ax.set_title(panel.title)
    n_axis = panel.law.variable == "n_params"
    ax.set_xlabel("Model size N (non-embedding params)" if n_axis else "Data size D (tokens)")


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


def teaser(analysis: CbsAnalysis) -> tuple[Figure, list[str]]:
    """`cbs_scaling` of the panels `select_panels` finds, and the reasons for those left out; FitError when
    none can be drawn."""
    panels, reasons = select_panels(analysis)
    if not panels:
        raise FitError("no teaser panel can be drawn: " + "; ".join(reasons))
    return cbs_scaling(panels), reasons
