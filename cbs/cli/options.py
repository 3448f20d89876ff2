"""Options shared by several commands (`cbs fit`, `cbs figures`, `cbs report`), defined once."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cbs.protocol import B_OPT, CBS_OVERHEAD

if TYPE_CHECKING:
    from cbs.plots.sources import StoreSource


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number ≥ ``minimum``, else a one-line usage error (exit 2) naming both."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number ≥ {minimum}, got {value!r}")
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
    """--b-opt, --overhead, --target: how the CBS is read from a results store."""
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


def add_bootstrap_options(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--n-boot and --seed of the bootstrap intervals and start grids."""
    p.add_argument(
        "--n-boot", type=int, default=1000, help="bootstrap resamples for the intervals (default 1000)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstraps and start grids (default 0)")


def add_n_starts(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--n-starts of the L(N, D) multi-start fits."""
    p.add_argument(
        "--n-starts", type=int, default=4500, help="multi-start grid of the L(N, D) fits (default 4500)"
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
        type=int,
        default=0,
        metavar="K",
        help="drop the K highest-loss rows first (Besiroglu et al. drop 5 of Chinchilla's)",
    )


def store_source(root: str | Path, args: argparse.Namespace) -> StoreSource:
    """A results store with the analysis settings of `add_cbs_options`, `add_bootstrap_options`, `add_n_starts`."""
    from cbs.plots.sources import StoreSource

    return StoreSource(
        Path(root),
        b_opt=args.b_opt,
        overhead=args.overhead,
        target=args.target,
        n_boot=args.n_boot,
        seed=args.seed,
        n_starts=args.n_starts,
    )
