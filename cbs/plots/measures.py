"""The three CBS measures per group, and the branched CBS over training (the `measures` figure).

Left: per group (x), the steps-to-target B* and B_noise of its S(B) fit with their 95% bootstrap intervals,
the in-run B_simple with its range over [s*/2, 2·s*], and the branched B* of each branch point as the interval
[k*·B, next k·B] (an open upper end drawn as an arrow to the top). Right: the branched B* against the branch
fraction per group, its steps-to-target B* dashed. Everything is read from the groups' fits and measures
(`CbsGroup.fit`, `CbsGroup.measures`, as `cbs fit cbs --json` writes them): nothing here fits or measures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cbs.errors import FitError
from cbs.fit.cbs_laws import CbsGroup
from cbs.plots.style import OKABE_ITO, ORDERED_CMAP, human, log_axis, new_figure, styled

COLORS = {"steps": OKABE_ITO[0], "b_noise": OKABE_ITO[1], "b_simple": OKABE_ITO[2], "branched": OKABE_ITO[3]}
OFFSETS = {"steps": -0.3, "b_noise": -0.16, "b_simple": -0.02, "branched": 0.12}  # x offsets within a group


def measured_groups(groups: Sequence[CbsGroup]) -> list[CbsGroup]:
    """The groups with a B_simple value or a branched estimate; FitError saying why when there are none."""
    chosen = [g for g in groups if g.measures and (g.measures.b_simple or g.measures.branched)]
    if not chosen:
        why = sorted({g.measures.b_simple_note if g.measures else "fitted without a store" for g in groups})
        raise FitError(
            "no group has a B_simple value or branched estimate (train with in-run GNS, or run `cbs branch`): "
            + "; ".join(why)
        )
    return chosen


def _bar(ax: Axes, x: float, value: float, ci: Sequence[float] | None, top: float, **style) -> None:
    """A point with its interval: an open upper end is drawn to ``top`` with an arrow head up, a lower end at or
    below zero (off a log axis, e.g. a B_simple range reaching a negative estimate) down to ``top``'s
    counterpart ``style['bottom']`` with an arrow head down."""
    color, gid = style["color"], style["gid"]
    if ci is not None:
        lo, hi = (v if math.isfinite(v) and v > 0 else None for v in ci)
        start = lo if lo is not None else style["bottom"]
        end = hi if hi is not None else top
        ax.plot([x, x], [start, end], "-", color=color, lw=1.2, gid=f"{gid}:bar", solid_capstyle="butt")
        ax.plot([x], [start], "v" if lo is None else "_", color=color, ms=5)
        ax.plot([x], [end], "^" if hi is None else "_", color=color, ms=5)
    ax.plot([x], [value], style["marker"], color=color, ms=4.5, label=style.get("label"), gid=gid)


def _positive(*values: float) -> list[float]:
    return [v for v in values if math.isfinite(v) and v > 0]


def _limits(groups: Sequence[CbsGroup]) -> tuple[float, float]:
    """The y range every finite value and interval end lies in, with head room for open intervals."""
    values = []
    for g in groups:
        if g.fit:
            values += _positive(g.fit.cbs, *g.fit.cbs_ci, g.fit.b_noise, *g.fit.b_noise_ci)
        s = g.measures.b_simple if g.measures else None
        if s:
            values += _positive(s.value, *(s.ci or ()))
        for b in g.measures.branched if g.measures else []:
            values += _positive(b.cbs, *b.cbs_ci)
    return min(values) / 1.6, max(values) * 2.5


def draw_measures(ax: Axes, groups: Sequence[CbsGroup], top: float, bottom: float) -> None:
    """The left panel: the measures of each group at x = its index (artists ``gid``'d '<measure>:<i>')."""
    labels = {"steps": "steps-to-target B* (95% CI)", "b_noise": "B_noise = b/a (95% CI)",
              "b_simple": "B_simple in-run (range over [s*/2, 2s*])", "branched": "branched B* [k*B, next kB], branch points left to right"}  # fmt: skip
    shown: set[str] = set()

    def once(name: str) -> str | None:
        if name in shown:
            return None
        shown.add(name)
        return labels[name]

    for i, g in enumerate(groups):
        if g.fit:
            _bar(ax, i + OFFSETS["steps"], g.fit.cbs, g.fit.cbs_ci, top, bottom=bottom, color=COLORS["steps"], marker="o",
                 gid=f"steps:{i}", label=once("steps"))  # fmt: skip
            if g.fit.b_noise > 0:
                _bar(ax, i + OFFSETS["b_noise"], g.fit.b_noise, g.fit.b_noise_ci, top, bottom=bottom, color=COLORS["b_noise"],
                     marker="s", gid=f"b_noise:{i}", label=once("b_noise"))  # fmt: skip
        s = g.measures.b_simple if g.measures else None
        if s and s.value > 0:
            _bar(ax, i + OFFSETS["b_simple"], s.value, s.ci, top, bottom=bottom, color=COLORS["b_simple"], marker="D",
                 gid=f"b_simple:{i}", label=once("b_simple"))  # fmt: skip
        points = [b for b in (g.measures.branched if g.measures else []) if math.isfinite(b.cbs)]
        for j, b in enumerate(points):
            x = i + OFFSETS["branched"] + 0.07 * j
            _bar(ax, x, b.cbs, b.cbs_ci, top, bottom=bottom, color=COLORS["branched"], marker="v",
                 gid=f"branched:{i}:{b.fraction:g}", label=once("branched"))  # fmt: skip
    ax.set_xticks(range(len(groups)), [f"{g.model}\nD = {human(g.data_tokens)}" for g in groups])
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.grid(False, axis="x")
    ax.set_ylabel("Batch size (sequences)")
    ax.set_title("Three measures of the CBS per group")


def draw_over_training(ax: Axes, groups: Sequence[CbsGroup], top: float) -> None:
    """The right panel: branched B* vs branch fraction per group (``gid`` 'over-training:<i>'), with the
    group's steps-to-target B* dashed (``gid`` 'steps-level:<i>')."""
    drawn = False
    for i, g in enumerate(groups):
        if g.measures is None:
            continue
        points = sorted((b for b in g.measures.branched if math.isfinite(b.cbs)), key=lambda b: b.fraction)
        if not points:
            continue
        drawn = True
        color = ORDERED_CMAP(i / max(len(groups) - 1, 1))  # groups in D order: an ordered colour
        shift = 0.012 * (i - (len(groups) - 1) / 2)  # groups often share a B* (the k grid is coarse)
        f = np.array([b.fraction for b in points]) + shift
        label = f"{g.label}: branched B*"
        ax.plot(f, [b.cbs for b in points], "v-", color=color, ms=4.5, label=label, gid=f"over-training:{i}")
        for x, b in zip(f, points, strict=True):
            hi = b.cbs_ci[1] if math.isfinite(b.cbs_ci[1]) else top
            ax.plot([x] * 2, [b.cbs_ci[0], hi], "-", color=color, lw=1.0, alpha=0.6)
            if not math.isfinite(b.cbs_ci[1]):
                ax.plot([x], [top], "^", color=color, ms=5)
        if g.fit:
            ax.axhline(g.fit.cbs, ls="--", color=color, lw=0.9, gid=f"steps-level:{i}")
    if drawn:
        ax.plot([], [], "--", color="0.4", lw=0.9, label="steps-to-target B* (dashed, in the group's colour)")
    else:
        ax.text(0.5, 0.5, "no branched estimate\n(run `cbs branch`)", transform=ax.transAxes, ha="center")
    ax.set_xlim(0, 1)
    ax.set_xlabel("Branch point (fraction of the parent's steps)")
    ax.set_title("Branched B* over training")


@styled
def measures_figure(groups: Sequence[CbsGroup]) -> Figure:
    """Both panels for the groups `measured_groups` keeps; FitError when none has B_simple or branches."""
    groups = measured_groups(groups)
    bottom, top = _limits(groups)
    fig, axes = new_figure(2, height=3.0, width=7.0)
    left, right = axes[0]
    draw_measures(left, groups, top / 1.3, bottom * 1.3)
    draw_over_training(right, groups, top / 1.3)
    for ax in (left, right):
        ax.set_ylim(bottom, top)
        log_axis(ax, "y", min_span=4.0)
    right.sharey(left)
    handles, labels = left.get_legend_handles_labels()
    more, names = right.get_legend_handles_labels()
    fig.legend([*handles, *more], [*labels, *names], loc="outside lower center", ncol=2)
    return fig
