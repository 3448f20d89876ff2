"""`cbs fit hparams`: optimal batch size and learning rate as power laws in compute C or data D."""

from __future__ import annotations

import argparse
from pathlib import Path

from cbs.cli.options import add_bootstrap_options, add_nd_columns, add_skip_damaged, open_store
from cbs.errors import FitError


def register_hparams(sub: argparse._SubParsersAction) -> None:
    """Add `cbs fit hparams` to the `cbs fit` sub-commands."""
    from cbs.fit.hparams import DEFAULT_BAND

    p = sub.add_parser("hparams", help="optimal batch size and lr as power laws in compute C or data D")
    p.add_argument("store", nargs="?", type=Path, help="results store written by `cbs sweep`")
    p.add_argument("--input", type=Path, metavar="TABLE", help="table (.csv/.parquet), one row per run")
    p.add_argument(
        "--c-col", help="column of compute C (FLOP): laws in C (DeepSeek); else in D (Power Lines)"
    )
    add_nd_columns(p)
    p.add_argument("--b-col", default="batch_size", help="column of the batch size (default batch_size)")
    p.add_argument("--lr-col", default="lr", help="column of the learning rate (default lr)")
    p.add_argument("--loss-col", default="loss", help="column of the final loss (default loss)")
    p.add_argument(
        "--band",
        type=float,
        default=DEFAULT_BAND,
        help=f"fit each bowl to the runs within this relative margin of the budget's best loss (default "
        f"{DEFAULT_BAND}; widened until a quadratic is identifiable)",
    )
    p.add_argument("--eval-set", help="store only: eval set of the loss (default: each run's primary)")
    p.add_argument(
        "--runs-csv",
        type=Path,
        metavar="OUT",
        help="store only: write the runs table with each run's loss at D",
    )
    add_skip_damaged(p)
    p.add_argument("--markdown", type=Path, metavar="OUT", help="write the budgets and laws as Markdown")
    add_bootstrap_options(p)
    p.add_argument("--json", type=Path, metavar="OUT", help="write budgets, laws and warnings as JSON")
    p.set_defaults(func=run_hparams)


def run_hparams(args: argparse.Namespace) -> int:
    from cbs.cli.fit import _one_source

    _one_source(args)
    from rich.console import Console

    from cbs.atomic import write_text_atomic
    from cbs.fit.hparams import HparamColumns, fit_hparam_laws
    from cbs.fit.hparams_store import store_hparam_table
    from cbs.fit.tables import read_table, write_csv, write_json

    if args.store is None and (args.eval_set or args.runs_csv):
        raise FitError("--eval-set and --runs-csv read a results store; drop them with --input")
    cols = HparamColumns(
        batch=args.b_col,
        lr=args.lr_col,
        loss=args.loss_col,
        compute=args.c_col,
        n=None if args.c_col else args.n_col,
        d=None if args.c_col else args.d_col,
    )
    if args.input is not None:
        table = read_table(args.input)
    else:
        table = store_hparam_table(open_store(args.store, args.skip_damaged), eval_set=args.eval_set)
        if args.runs_csv:
            write_csv(args.runs_csv, table)
    analysis = fit_hparam_laws(table, cols, band=args.band, n_boot=args.n_boot, seed=args.seed)
    print(analysis.report(width=Console().width))
    if args.json:
        write_json(args.json, analysis.to_dict())
    if args.markdown:
        write_text_atomic(args.markdown, analysis.markdown())
    return 0
