"""`cbs fit cbs | scaling-law | loss-to-loss | hparams`: the fits of cbs.fit from a results store or a CSV/Parquet table."""

from __future__ import annotations

import argparse
from pathlib import Path

from cbs.cli.options import (
    add_bootstrap_options,
    add_cbs_options,
    add_n_starts,
    add_nd_columns,
    add_scaling_law_options,
    add_skip_damaged,
    fit_scaling_law_input,
    open_store,
)
from cbs.errors import FitError


def _common(p: argparse.ArgumentParser, json_help: str) -> None:
    add_bootstrap_options(p)
    p.add_argument("--json", type=Path, metavar="OUT", help=json_help)


def _pair(value: str) -> tuple[float, float]:
    try:
        n, d = (float(v) for v in value.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--predict takes N,D (e.g. 7e10,1.4e12), got {value!r}") from exc
    return n, d


def register(subparsers: argparse._SubParsersAction) -> None:
    fit = subparsers.add_parser("fit", help="fit the CBS, L(N, D) scaling laws and loss-to-loss laws")
    sub = fit.add_subparsers(dest="fit_command", metavar="FIT", required=True)

    p = sub.add_parser("cbs", help="critical batch size per (model, data budget) and its scaling laws")
    p.add_argument("store", nargs="?", type=Path, help="results store written by `cbs sweep`")
    p.add_argument(
        "--input",
        type=Path,
        metavar="TABLE",
        help="steps-to-target table (.csv/.parquet): model, n_params, batch_size, steps_to_target"
        "[, data_tokens, target_loss, b_opt]",
    )
    add_cbs_options(p)
    p.add_argument("--eval-set", help="store only: eval set for the target (default: each run's primary)")
    p.add_argument(
        "--steps-csv", type=Path, metavar="OUT", help="store only: write the steps-to-target table"
    )
    p.add_argument("--csv", type=Path, metavar="OUT", help="write one row per group as CSV")
    p.add_argument("--markdown", type=Path, metavar="OUT", help="write the groups and laws as Markdown")
    _common(p, "write groups and laws as JSON")
    p.set_defaults(func=run_cbs)

    p = sub.add_parser("scaling-law", help="L(N, D) in the Chinchilla or Kaplan form (Approach 3)")
    p.add_argument("--input", type=Path, required=True, metavar="TABLE", help="table (.csv/.parquet) of runs")
    add_nd_columns(p)
    add_scaling_law_options(p)
    add_n_starts(p)
    p.add_argument(
        "--predict",
        type=_pair,
        action="append",
        default=[],
        metavar="N,D",
        help="predict L at N,D with an interval (repeatable)",
    )
    p.add_argument(
        "--compute",
        type=float,
        action="append",
        default=[],
        metavar="C",
        help="compute-optimal N, D at C FLOP (repeatable)",
    )
    _common(p, "write parameters, intervals, predictions as JSON")
    p.set_defaults(func=run_scaling_law)

    p = sub.add_parser("loss-to-loss", help="y = K·(x − E_x)^κ + E_y between paired losses")
    p.add_argument(
        "store", nargs="?", type=Path, help="results store (groups = dataset, columns = eval sets)"
    )
    p.add_argument("--input", type=Path, metavar="TABLE", help="wide table (.csv/.parquet), one row per run")
    p.add_argument("--group-col", default="dataset", help="column naming the training set (default dataset)")
    add_nd_columns(p)
    p.add_argument("--x-group", required=True, help="training set of the x models")
    p.add_argument("--x-col", required=True, help="loss column for x")
    p.add_argument(
        "--y-group", required=True, help="training set of the y models (= --x-group for train-to-test)"
    )
    p.add_argument("--y-col", required=True, help="loss column for y")
    p.add_argument(
        "--E-x", dest="E_x", type=float, help="give E_x instead of fitting L(N, D) to the x losses"
    )
    p.add_argument(
        "--E-y", dest="E_y", type=float, help="give E_y instead of fitting L(N, D) to the y losses"
    )
    p.add_argument("--fit-E-y", dest="fit_E_y", action="store_true", help="fit E_y within 0 ≤ E_y < min y")
    p.add_argument(
        "--form",
        choices=("kaplan", "chinchilla"),
        default="kaplan",
        help="form of the L(N, D) fits giving E_x, E_y (default kaplan, the loss-to-loss paper's)",
    )
    p.add_argument(
        "--interval",
        choices=("joint", "e-fixed"),
        default="joint",
        help="joint: a bootstrap that refits E_x, E_y on each resample (default); e-fixed: E held fixed",
    )
    p.add_argument("--holdout", type=Path, metavar="TABLE", help="held-out runs to score extrapolation on")
    p.add_argument("--raw-loss", action="store_true", help="store only: raw-weight losses instead of EWA")
    add_skip_damaged(p)
    add_n_starts(p)
    _common(p, "write κ, K, E_x, E_y, R², intervals and the translated law as JSON")
    p.set_defaults(func=run_loss_to_loss)

    from cbs.cli.fit_hparams import register_hparams

    register_hparams(sub)

    from cbs.cli.fit_measures import register_measures

    register_measures(sub)


def _one_source(args: argparse.Namespace) -> None:
    if (args.store is None) == (args.input is None):
        raise FitError("give either a results store (positional) or --input TABLE, not both or neither")
    path = args.store or args.input
    if not path.exists():
        raise FitError(f"{path} does not exist")


def run_cbs(args: argparse.Namespace) -> int:
    _one_source(args)
    from rich.console import Console

    from cbs.atomic import write_text_atomic
    from cbs.fit import fit_cbs_table, steps_to_target_table
    from cbs.fit.measures import fit_store_cbs
    from cbs.fit.tables import read_table, write_csv, write_json

    fit = dict(b_opt=args.b_opt, overhead=args.overhead, n_boot=args.n_boot, seed=args.seed)
    if args.input is not None:  # a steps table: no runs to measure B_simple or branches on
        analysis = fit_cbs_table(read_table(args.input), **fit)
    else:
        runs, curves = open_store(args.store, args.skip_damaged).tables()
        table = steps_to_target_table(
            runs, curves, b_opt=args.b_opt, target=args.target, eval_set=args.eval_set
        )
        if args.steps_csv:
            write_csv(args.steps_csv, table)
        analysis = fit_store_cbs(runs, curves, table, epsilon=args.epsilon, alpha=args.ema, **fit)
    print(analysis.report(width=Console().width))
    if args.json:
        write_json(args.json, analysis.to_dict())
    if args.csv:
        write_csv(args.csv, analysis.to_frame())
    if args.markdown:
        write_text_atomic(args.markdown, analysis.markdown())
    return 0


def run_scaling_law(args: argparse.Namespace) -> int:
    from cbs.fit.tables import write_json

    _, fit = fit_scaling_law_input(args, args.form)
    print(fit.report(predict=args.predict, compute=args.compute))
    if args.json:
        write_json(args.json, fit.to_dict(predict=args.predict, compute=args.compute))
    return 0


def run_loss_to_loss(args: argparse.Namespace) -> int:
    _one_source(args)
    if args.holdout is not None and not args.holdout.is_file():
        raise FitError(f"--holdout {args.holdout} does not exist")
    from cbs.fit.loss_to_loss_table import Columns, final_loss_table, fit_loss_to_loss_table
    from cbs.fit.tables import read_table, write_json

    table = (
        read_table(args.input)
        if args.input
        else final_loss_table(*open_store(args.store, args.skip_damaged).tables(), ewa=not args.raw_loss)
    )
    cols = Columns(args.group_col, args.n_col, args.d_col, args.x_group, args.x_col, args.y_group, args.y_col)
    analysis = fit_loss_to_loss_table(
        table,
        cols,
        E_x=args.E_x,
        E_y=args.E_y,
        fit_E_y=args.fit_E_y,
        holdout=read_table(args.holdout) if args.holdout else None,
        form=args.form,
        interval=args.interval,
        n_starts=args.n_starts,
        n_boot=args.n_boot,
        seed=args.seed,
    )
    print(analysis.report())
    if args.json:
        write_json(args.json, analysis.to_dict())
    return 0
