"""Options shared by several commands (`cbs fit`, `cbs figures`, `cbs report`), defined once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cbs.protocol import B_OPT, CBS_OVERHEAD

if TYPE_CHECKING:
    import pandas as pd

    from cbs.fit.scaling_law import ScalingLawFit
    from cbs.fit.store_fits import StoreFits
    from cbs.results import ResultsStore


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number ≥ ``minimum``; anything else is a one-line usage error (exit 2)
    naming the option, before the command does any work."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {number}")
        return number

    return parse


def target_value(value: str) -> str | float:
    """--target: auto, b-opt, or a loss value."""
    if value in ("auto", "b-opt"):
        return value
    try:
        return float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--target must be auto, b-opt or a loss value, got {value!r}"
        ) from exc


def add_cbs_options(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--b-opt, --overhead, --target, --epsilon, --ema, --skip-damaged: how the CBS is read from a results store."""
    p.add_argument(
        "--b-opt",
        type=float,
        help="reference batch size B_opt in sequences (default: the one the store's runs record — "
        f"`cbs sweep` and `cbs theory` write it — else the paper's {B_OPT})",
    )
    p.add_argument(
        "--overhead",
        type=float,
        default=CBS_OVERHEAD,
        help=f"allowed step overhead o over linear scaling defining the CBS (default {CBS_OVERHEAD})",
    )
    p.add_argument(
        "--target",
        type=target_value,
        default="auto",
        help="target loss: auto (the runs' target_loss, else the best loss at B_opt), b-opt, or a value",
    )
    add_branched_options(p)
    add_skip_damaged(p)


def add_branched_options(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--epsilon and --ema of the branched CBS estimate (`cbs.fit.branched`) read from a store's branches."""
    from cbs.fit.branched import EMA_ALPHA, EPSILON

    p.add_argument(
        "--epsilon",
        type=float,
        default=EPSILON,
        help=f"branched CBS: loss tolerance in nats (default {EPSILON}, the paper's)",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=EMA_ALPHA,
        help=f"branched CBS: EMA weight of the loss smoothing (default {EMA_ALPHA})",
    )


def add_skip_damaged(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--skip-damaged: read a results store without its damaged runs (a warning lists them) instead of failing."""
    p.add_argument(
        "--skip-damaged",
        action="store_true",
        help="leave out runs whose row or curve file cannot be read, with a warning listing them "
        "(default: an error naming them; `cbs sweep` trains them again)",
    )


def add_bootstrap_options(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--n-boot and --seed of the bootstrap intervals and start grids."""
    p.add_argument(
        "--n-boot",
        type=whole_number(0),
        default=1000,
        help="bootstrap resamples for the intervals (default 1000)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstraps and start grids (default 0)")


def add_n_starts(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--n-starts of the L(N, D) multi-start fits."""
    p.add_argument(
        "--n-starts",
        type=whole_number(1),
        default=4500,
        help="multi-start grid of the L(N, D) fits (default 4500)",
    )


def add_nd_columns(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--n-col and --d-col: where a table holds N and D."""
    p.add_argument("--n-col", default="n_params", help="column of N, parameters (default n_params)")
    p.add_argument("--d-col", default="data_tokens", help="column of D, tokens (default data_tokens)")


def add_scaling_law_options(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--form, --flops-col, --loss-col, --drop-highest of an L(N, D) fit on a table."""
    p.add_argument("--form", choices=("chinchilla", "kaplan"), default="chinchilla", help="law form")
    p.add_argument("--flops-col", help="column of training FLOP C; D = C/(6N) replaces --d-col")
    p.add_argument("--loss-col", default="loss", help="column of the loss (default loss)")
    p.add_argument(
        "--drop-highest",
        type=whole_number(0),
        default=0,
        metavar="K",
        help="drop the K highest-loss rows first (Besiroglu et al. drop 5 of Chinchilla's)",
    )


def fit_scaling_law_input(args: argparse.Namespace, form: str) -> tuple[pd.DataFrame, ScalingLawFit]:
    """The points of ``--input`` (`scaling_law_points`, with `add_nd_columns`/`add_scaling_law_options`) and
    their L(N, D) fit of ``form``: the one preparation `cbs fit scaling-law` and its figure share."""
    from cbs.fit.tables import fit_scaling_law_points, read_table, scaling_law_points

    points = scaling_law_points(
        read_table(args.input),
        n_col=args.n_col,
        d_col=args.d_col,
        flops_col=args.flops_col,
        loss_col=args.loss_col,
        drop_highest=args.drop_highest,
    )
    fit = fit_scaling_law_points(
        points, form=form, n_starts=args.n_starts, n_boot=args.n_boot, seed=args.seed
    )
    return points, fit


def open_store(root: str | Path, skip_damaged: bool) -> ResultsStore:
    """The results store at ``root``; with ``skip_damaged`` its damaged runs are left out of every table and
    listed here as warnings on stderr (without it, reading them raises DamagedStoreError naming them)."""
    from cbs.results import ResultsStore

    store = ResultsStore(Path(root), skip_damaged=skip_damaged)
    for d in store.damaged() if skip_damaged else []:
        print(f"warning: --skip-damaged leaves out {d.describe()}", file=sys.stderr)
    return store


def add_fit_json(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--fit FIT.json: draw from a `cbs fit cbs --json` output of the store instead of fitting it."""
    p.add_argument(
        "--fit",
        type=Path,
        metavar="FIT.json",
        help="take the CBS fits from this `cbs fit cbs --json` output of the store instead of fitting it",
    )


def store_source(root: str | Path, args: argparse.Namespace) -> StoreFits:
    """A results store with the analysis settings of `add_cbs_options`, `add_bootstrap_options`, `add_n_starts`,
    and the CBS fits of ``args.fit`` (`add_fit_json`) where given."""
    from cbs.fit.cbs_json import load_cbs_analysis
    from cbs.fit.store_fits import StoreFits

    fitted = load_cbs_analysis(args.fit) if args.fit else None

    return StoreFits(
        open_store(root, args.skip_damaged),
        b_opt=args.b_opt,
        overhead=args.overhead,
        target=args.target,
        n_boot=args.n_boot,
        seed=args.seed,
        n_starts=args.n_starts,
        epsilon=args.epsilon,
        ema=args.ema,
        fitted=fitted,
    )
