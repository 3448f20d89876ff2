"""`cbs report RESULTS_DIR`: one Markdown (optionally HTML) page with the fitted numbers and every figure."""

from __future__ import annotations

import argparse
from pathlib import Path

from cbs.cli.fit import _target
from cbs.protocol import B_OPT, CBS_OVERHEAD


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="a Markdown/HTML page of the CBS fits, laws and figures of a results store",
        description=__doc__,
    )
    p.add_argument("results_dir", type=Path, help="results store written by `cbs sweep` or `cbs theory`")
    p.add_argument("--out", type=Path, help="output folder (default RESULTS_DIR/report)")
    p.add_argument("--html", action="store_true", help="also write report.html beside report.md")
    p.add_argument(
        "--format", default="pdf,png", help="figure formats besides the embedded PNG (default pdf,png)"
    )
    p.add_argument(
        "--b-opt",
        type=float,
        help=f"reference batch size in sequences (default {B_OPT}; a `cbs theory` store: its smallest batch)",
    )
    p.add_argument(
        "--overhead",
        type=float,
        default=CBS_OVERHEAD,
        help=f"step overhead o defining the CBS (default {CBS_OVERHEAD})",
    )
    p.add_argument(
        "--target", type=_target, default="auto", help="target loss: auto (default), b-opt, or a value"
    )
    p.add_argument(
        "--n-boot", type=int, default=1000, help="bootstrap resamples for intervals (default 1000)"
    )
    p.add_argument(
        "--n-starts", type=int, default=4500, help="multi-start grid of the L(N, D) fit (default 4500)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstraps and start grids (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cbs.plots.report import write_report
    from cbs.plots.sources import StoreSource
    from cbs.plots.style import parse_formats

    formats = parse_formats(args.format)
    src = StoreSource(
        args.results_dir,
        b_opt=args.b_opt,
        overhead=args.overhead,
        target=args.target,
        n_boot=args.n_boot,
        seed=args.seed,
        n_starts=args.n_starts,
    )
    pages = write_report(src, args.out or src.store.root / "report", formats=formats, html_page=args.html)
    print("wrote " + ", ".join(str(p) for p in pages))
    return 0
