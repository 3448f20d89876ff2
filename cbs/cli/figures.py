"""`cbs figures`: paper figures from a results store, or from public tables and fit outputs.

cbs figures RESULTS_DIR [--fit FIT.json] [--out DIR] [--only NAMES] [--format pdf,png]
cbs figures scaling-law  --input TABLE [--n-col ... --flops-col ... --loss-col ... --drop-highest K]
cbs figures loss-to-loss --input TABLE --x-group G --x-col C [--holdout TABLE ...]
cbs figures cbs-scaling  --input FIT.json          (the output of `cbs fit cbs --json`)
cbs figures measures     --input FIT.json          (the same, of a store: its three CBS measures per group)
cbs figures theory       --input THEORY.json       (the output of `cbs theory --json`)

Figures draw fit results and never fit: the fits are made once by cbs.fit (the store's with the settings
below, the same as `cbs fit cbs`), or read from the JSON `cbs fit cbs --json` wrote (--fit).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cbs.cli.options import (
    add_bootstrap_options,
    add_cbs_options,
    add_fit_json,
    add_n_starts,
    add_nd_columns,
    add_scaling_law_options,
    store_source,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TABLE_FIGURES = ("scaling-law", "loss-to-loss", "cbs-scaling", "measures", "theory")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "figures",
        help="paper figures (PDF/PNG) from a results store or from public tables",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "source",
        help=f"a results directory (store figures), or one of {', '.join(TABLE_FIGURES)} with --input "
        "(use ./NAME for a results directory of that name)",
    )
    p.add_argument("--out", type=Path, help="output folder (default RESULTS_DIR/figures, or ./figures)")
    p.add_argument("--format", default="pdf,png", help="comma list of pdf, png, svg (default pdf,png)")
    add_bootstrap_options(p)
    add_n_starts(p)

    g = p.add_argument_group("store figures (SOURCE = RESULTS_DIR)")
    g.add_argument(
        "--only", help="comma list of figures to make (default: all the data supports); see docs/figures.md"
    )
    add_cbs_options(g)
    add_fit_json(g)

    g = p.add_argument_group(
        "table figures (SOURCE = scaling-law | loss-to-loss | cbs-scaling | measures | theory)"
    )
    g.add_argument(
        "--input",
        type=Path,
        metavar="FILE",
        help="table (.csv/.parquet), or the JSON of `cbs fit cbs` (cbs-scaling, measures) / `cbs theory` (theory)",
    )
    add_nd_columns(g)
    add_scaling_law_options(g)
    p.set_defaults(form=None)  # per figure: chinchilla for scaling-law, kaplan (the paper's) for loss-to-loss
    g.add_argument("--group-col", default="dataset", help="loss-to-loss: column naming the training set")
    g.add_argument("--x-group", help="loss-to-loss: training set of the x models (default: the first)")
    g.add_argument(
        "--x-col", default="val_loss", help="loss-to-loss: own validation loss column (default val_loss)"
    )
    g.add_argument(
        "--test-cols",
        help="loss-to-loss: comma list of test-loss columns for train-to-test "
        "(default: every eval/*_val/CrossEntropyLoss column other than the x set's own)",
    )
    g.add_argument(
        "--test-col", help="loss-to-loss: the test set of test-to-test (default eval/c4_val/CrossEntropyLoss)"
    )
    g.add_argument(
        "--holdout", type=Path, metavar="TABLE", help="loss-to-loss: held-out runs to mark and score"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cbs.plots.style import parse_formats

    formats = parse_formats(args.format)
    if args.source in TABLE_FIGURES:
        return _run_table(args, formats)
    return _run_store(args, formats)


def _run_store(args: argparse.Namespace, formats: tuple[str, ...]) -> int:
    from cbs.plots.registry import make_store_figures, parse_only

    names = parse_only(args.only)
    src = store_source(args.source, args)
    out = args.out or src.store.root / "figures"
    made, skipped = make_store_figures(src, out, names, formats, strict=bool(args.only))
    print(f"figures in {out} ({', '.join(formats)})")
    for m in made:
        print(f"  made     {m.name}" + (f"  ({m.note})" if m.note else ""))
    for s in skipped:
        print(f"  skipped  {s.name}: {s.reason}")
    for note in src.notes:
        print(f"  note     {note}")
    fitted = vars(src).get("analysis")  # the CBS fits, where a figure needed them (cbs.fit.diagnostics)
    for g in fitted.groups if fitted else []:
        for w in g.warnings:
            print(f"  warning  {g.label}: {w.code} — {w.message}")
    return 0


def _run_table(args: argparse.Namespace, formats: tuple[str, ...]) -> int:
    from cbs.errors import ConfigError
    from cbs.plots.style import save

    if args.input is None:
        raise ConfigError(f"`cbs figures {args.source}` needs --input FILE (see `cbs figures --help`)")
    if args.fit is not None:
        raise ConfigError(
            "--fit is for a results store; `cbs figures cbs-scaling --input FIT.json` draws a fit"
        )
    fig, notes = _TABLE_FIGURES[args.source](args)
    paths = save(fig, args.out or Path("figures"), args.source, formats)
    print(f"made    {args.source}: {', '.join(str(p) for p in paths)}")
    for note in notes:
        print(f"note    {note}")
    return 0


def _scaling_law(args: argparse.Namespace) -> tuple[Figure, list[str]]:
    from cbs.cli.options import fit_scaling_law_input
    from cbs.plots.scaling_law import scaling_law_figure

    points, fit = fit_scaling_law_input(args, args.form or "chinchilla")
    n, d, loss, excluded = (points[c].to_numpy() for c in ("n", "d", "loss", "excluded"))
    return scaling_law_figure(n, d, loss, fit, excluded=excluded), []


def _loss_to_loss(args: argparse.Namespace) -> tuple[Figure, list[str]]:
    from cbs.fit.loss_to_loss_panels import fit_loss_to_loss_set
    from cbs.fit.tables import read_table
    from cbs.plots.loss_to_loss import loss_to_loss_figure

    fits = fit_loss_to_loss_set(
        read_table(args.input),
        group_col=args.group_col,
        n_col=args.n_col,
        d_col=args.d_col,
        x_group=args.x_group,
        x_col=args.x_col,
        test_cols=[c.strip() for c in args.test_cols.split(",")] if args.test_cols else None,
        test_col=args.test_col,
        holdout=read_table(args.holdout) if args.holdout else None,
        form=args.form or "kaplan",
        interval="e-fixed",  # the figure draws the laws, not their intervals
        n_starts=args.n_starts,
        n_boot=args.n_boot,
        seed=args.seed,
    )
    return loss_to_loss_figure(fits), fits.notes


def _theory(args: argparse.Namespace) -> tuple[Figure, list[str]]:
    from cbs.fit import fit_cbs_table
    from cbs.fit.cbs_json import theory_steps_table
    from cbs.plots.theory import theory_from_analysis

    table, settings = theory_steps_table(args.input)
    analysis = fit_cbs_table(table, overhead=settings.overhead, n_boot=args.n_boot, seed=args.seed)
    return theory_from_analysis(analysis, theory_exponent=settings.exponent_theory), []


def _cbs_scaling(args: argparse.Namespace) -> tuple[Figure, list[str]]:
    from cbs.fit.cbs_json import load_cbs_analysis
    from cbs.plots.cbs_scaling import teaser

    return teaser(load_cbs_analysis(args.input))


def _measures(args: argparse.Namespace) -> tuple[Figure, list[str]]:
    from cbs.fit.cbs_json import load_cbs_analysis
    from cbs.plots.measures import measures_figure

    return measures_figure(load_cbs_analysis(args.input).groups), []


_TABLE_FIGURES: dict[str, Callable[[argparse.Namespace], tuple[Figure, list[str]]]] = {
    "scaling-law": _scaling_law,
    "loss-to-loss": _loss_to_loss,
    "theory": _theory,
    "cbs-scaling": _cbs_scaling,
    "measures": _measures,
}
