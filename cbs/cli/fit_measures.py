"""`cbs fit measures`: steps-to-target, branched and in-run (B_simple) CBS per cell, with their costs."""

from __future__ import annotations

import argparse
from pathlib import Path

from cbs.cli.options import add_cbs_options, open_store


def register_measures(sub: argparse._SubParsersAction) -> None:
    """Add `cbs fit measures` to the `cbs fit` sub-commands."""
    p = sub.add_parser(
        "measures",
        help="three CBS measures side by side: steps-to-target, branched (cbs branch), B_simple",
    )
    p.add_argument("store", type=Path, help="results store written by `cbs sweep` (and `cbs branch`)")
    add_cbs_options(p)
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples of the B* interval")
    p.add_argument("--csv", type=Path, metavar="OUT", help="write the table as CSV")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the table as JSON")
    p.set_defaults(func=run_measures)


def run_measures(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cbs.fit.measure_results import render_measures
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
    print(render_measures(table, width=Console().width))
    if args.csv:
        write_csv(args.csv, table)
    if args.json:
        write_json(args.json, {"measures": table.to_dict(orient="records")})
    return 0
