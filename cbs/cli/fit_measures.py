"""`cbs fit measures`: steps-to-target, branched and in-run (B_simple) CBS per cell, with their costs."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cbs.cli.options import add_cbs_options, open_store


def register_measures(sub: argparse._SubParsersAction) -> None:
    """Add `cbs fit measures` to the `cbs fit` sub-commands."""
    from cbs.fit.branched import EMA_ALPHA, EPSILON

    p = sub.add_parser(
        "measures",
        help="three CBS measures side by side: steps-to-target, branched (cbs branch), B_simple",
    )
    p.add_argument("store", type=Path, help="results store written by `cbs sweep` (and `cbs branch`)")
    add_cbs_options(p)
    p.add_argument(
        "--epsilon", type=float, default=EPSILON, help=f"branched: loss tolerance in nats (default {EPSILON})"
    )
    p.add_argument(
        "--ema",
        type=float,
        default=EMA_ALPHA,
        help=f"branched: EMA weight of the smoothing (default {EMA_ALPHA})",
    )
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples of the B* interval")
    p.add_argument("--csv", type=Path, metavar="OUT", help="write the table as CSV")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the table as JSON")
    p.set_defaults(func=run_measures)


def run_measures(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cbs.console import Column, print_fitted_table
    from cbs.fit.measures import measures_table
    from cbs.fit.tables import write_csv, write_json

    table = measures_table(
        open_store(args.store, args.skip_damaged),
        b_opt=args.b_opt,
        target=args.target,
        overhead=args.overhead,
        epsilon=args.epsilon,
        alpha=args.ema,
        n_boot=args.n_boot,
    )
    columns = (
        Column("cell"),
        Column("measure"),
        Column("B (seqs)\n[interval]", justify="right"),
        Column("tokens", justify="right"),
        Column("FLOPs", drop=2, justify="right"),
        Column("wall s", drop=4, justify="right"),
        Column("note", drop=3, wrap=True),
    )
    rows = [
        (
            f"{r.model}, D={r.data_tokens:g}",
            r.measure,
            _value(r.value, r.lo, r.hi),
            f"{r.tokens:,}",
            f"{r.flops:.3g}",
            f"{r.wall_time_s:.3g}",
            r.note,
        )
        for r in table.itertuples()
    ]
    print_fitted_table(Console(), columns, rows, title="Critical batch size: three measures and their cost")
    if args.csv:
        write_csv(args.csv, table)
    if args.json:
        write_json(args.json, {"measures": table.to_dict(orient="records")})
    return 0


def _value(value: float, lo: float, hi: float) -> str:
    """'512 [512, 1024]', '512' without an interval, '—' without a value."""
    if not math.isfinite(value):
        return "—"
    return f"{value:.4g}" + (f" [{lo:.4g}, {hi:.4g}]" if math.isfinite(lo) else "")
