"""Every figure a results store can give, by name: what it needs, and a clear reason when it cannot be drawn."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from cbs.errors import CbsError, ConfigError, ResultsError
from cbs.fit.store_fits import StoreFits, primary_eval_set
from cbs.plots import style
from cbs.plots.cbs_scaling import teaser
from cbs.plots.curves import loss_curves
from cbs.plots.measures import measures_figure
from cbs.plots.optimizers import optimizer_overlay
from cbs.plots.scaling_law import scaling_law_figure
from cbs.plots.sensitivity import HYPERPARAMETERS, sensitivity, varied_groups
from cbs.plots.steps import steps_vs_batch
from cbs.plots.theory import theory_from_analysis
from cbs.results.health import DamagedStoreError

MAX_GROUPS_PER_FIGURE = 6


class FigureUnavailable(ResultsError):
    """The data at hand cannot support a figure; the message says what is missing."""


@dataclass(frozen=True)
class Drawn:
    """A figure to save: its file stem, the figure, and a note (e.g. panels left out and why)."""

    stem: str
    figure: Figure
    note: str = ""


@dataclass(frozen=True)
class Made:
    name: str  # file stem
    family: str  # the figure's name in STORE_FIGURES
    paths: list[Path]
    note: str = ""


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


def slug(text: str) -> str:
    """A file-name-safe fragment: 'tiny-100k, D=2M' -> 'tiny-100k_D2M'."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


def _loss_curves(src: StoreFits) -> list[Drawn]:
    try:
        targets, fastest = src.targets(), set(src.table["run_id"].dropna())
    except CbsError:  # no target can be set (e.g. no B_opt run): curves without the target line
        targets, fastest = {}, set()
    eval_set = primary_eval_set(src.runs, src.curves)
    out = []
    for (n, d, model), runs in src.runs.groupby(
        ["n_params", "data_tokens", "preset"], sort=True, dropna=False
    ):
        target = targets.get((float(n), float(d)))
        fig = loss_curves(
            runs, src.curves, eval_set=eval_set, target=target, preferred=fastest, theory=src.is_theory()
        )
        out.append(Drawn(f"loss-curves_{slug(str(model))}_D{style.human(d)}", fig))
    return out


def _steps(src: StoreFits) -> list[Drawn]:
    groups = src.groups
    if not groups:
        raise FigureUnavailable(
            "no (model, data size) group has ≥ 3 batch sizes that reached the target loss"
            + (f" ({'; '.join(src.notes)})" if src.notes else "")
        )
    if len(groups) <= MAX_GROUPS_PER_FIGURE:
        return [Drawn("steps-vs-batch", steps_vs_batch(groups))]
    by_d: dict[float, list] = {}
    for g in groups:
        by_d.setdefault(g.data_tokens, []).append(g)
    return [
        Drawn(f"steps-vs-batch_D{style.human(d)}", steps_vs_batch(gs, title=f"D = {style.human(d)} tokens"))
        for d, gs in sorted(by_d.items())
    ]


def _optimizers(src: StoreFits) -> list[Drawn]:
    cells: dict[tuple, list] = {}
    for g in src.groups:
        cells.setdefault((g.model, g.n_params, g.data_tokens), []).append(g)
    compared = {cell: gs for cell, gs in cells.items() if len(gs) >= 2}
    if not compared:
        raise FigureUnavailable(
            "no (model, data size) cell has S(B) fits for ≥ 2 optimizers; sweep optim.name (docs/sweep.md)"
        )
    return [
        Drawn(
            f"optimizers_{slug(model)}_D{style.human(d)}",
            optimizer_overlay(gs, title=f"{model}, D = {style.human(d)} tokens"),
        )
        for (model, _, d), gs in sorted(compared.items())
    ]


def _cbs_scaling(src: StoreFits) -> list[Drawn]:
    fig, reasons = teaser(src.analysis)
    return [Drawn("cbs-scaling", fig, note="; ".join(f"panel left out: {r}" for r in reasons))]


def _measures(src: StoreFits) -> list[Drawn]:
    return [Drawn("measures", measures_figure(src.analysis.groups))]


def _sensitivity(param: str) -> Callable[[StoreFits], list[Drawn]]:
    column = HYPERPARAMETERS[param].column

    def build(src: StoreFits) -> list[Drawn]:
        if not varied_groups(src.runs, column):
            raise FigureUnavailable(
                f"every batch size was run at a single {column} in every group; sweep ≥ 2 values of {column}"
            )
        return [Drawn(f"{param.replace('_', '-')}-sensitivity", sensitivity(src.runs_with_steps, param))]

    return build


def _scaling_law(src: StoreFits) -> list[Drawn]:
    n, d, loss, fit = src.scaling_law
    return [
        Drawn(
            "scaling-law", scaling_law_figure(n, d, loss, fit), note="loss = each group's target loss R(N, D)"
        )
    ]


def _theory(src: StoreFits) -> list[Drawn]:
    if not src.is_theory():
        raise FigureUnavailable("not a `cbs theory` store (its presets are not linreg-*); run `cbs theory`")
    return [Drawn("theory", theory_from_analysis(src.analysis))]


@dataclass(frozen=True)
class FigureSpec:
    name: str
    description: str
    build: Callable[[StoreFits], list[Drawn]]


STORE_FIGURES = {
    spec.name: spec
    for spec in (
        FigureSpec(
            "loss-curves", "eval loss (raw, EWA) vs steps and tokens per group, by batch size", _loss_curves
        ),
        FigureSpec(
            "steps-vs-batch", "steps to target vs batch size with S(B) fit, linear scaling, CBS", _steps
        ),
        FigureSpec(
            "optimizers", "S(B) and the CBS per optimizer, overlaid per (model, data) cell", _optimizers
        ),
        FigureSpec(
            "cbs-scaling", "CBS vs model size, data size, Chinchilla line with power laws", _cbs_scaling
        ),
        FigureSpec(
            "measures",
            "steps-to-target B*, B_noise, in-run B_simple and branched B* per group; branched B* over training",
            _measures,
        ),
        FigureSpec(
            "lr-sensitivity",
            "final loss / steps to target vs learning rate per batch size",
            _sensitivity("lr"),
        ),
        FigureSpec(
            "beta2-sensitivity",
            "final loss / steps to target vs Adam β2 per batch size",
            _sensitivity("beta2"),
        ),
        FigureSpec(
            "ewa-tau-sensitivity",
            "final loss / steps to target vs EWA τ per batch size",
            _sensitivity("ewa_tau"),
        ),
        FigureSpec("scaling-law", "L(N, D) fit of the group target losses, iso-FLOP, frontier", _scaling_law),
        FigureSpec("theory", "theory store: steps vs batch for several D and CBS vs D", _theory),
    )
}


def parse_only(text: str | Sequence[str] | None) -> list[str]:
    """Figure names from 'a,b' (all when empty); unknown names are a ConfigError listing the known ones."""
    if not text:
        return list(STORE_FIGURES)
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in STORE_FIGURES]
    if unknown:
        raise ConfigError(f"unknown figure(s) {unknown}; choose from {', '.join(STORE_FIGURES)}")
    return names


def make_store_figures(
    src: StoreFits,
    out_dir: Path,
    names: Iterable[str],
    formats: Sequence[str] = style.FORMATS,
    *,
    strict: bool,
) -> tuple[list[Made], list[Skipped]]:
    """Draw and save the named figures. A figure the data cannot support is skipped with its reason, or,
    when ``strict`` (the user asked for it by name), raises FigureUnavailable naming it before any file is
    written. A damaged store (DamagedStoreError) is never a skipped figure: it is raised."""
    drawn, skipped = [], []
    for name in names:
        try:
            drawn += [(name, d) for d in STORE_FIGURES[name].build(src)]
        except DamagedStoreError:
            raise
        except CbsError as exc:
            if strict:
                raise FigureUnavailable(f"{name}: {exc}") from exc
            skipped.append(Skipped(name, str(exc)))
    made = [Made(d.stem, name, style.save(d.figure, out_dir, d.stem, formats), d.note) for name, d in drawn]
    return made, skipped
