"""`cbs report RESULTS_DIR`: one Markdown (optionally HTML) page with the fitted numbers and every figure."""

from __future__ import annotations

import argparse
from pathlib import Path

from cbs.cli.options import add_bootstrap_options, add_cbs_options, add_fit_json, add_n_starts, store_source


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
    add_cbs_options(p)
    add_fit_json(p)
    add_bootstrap_options(p)
    add_n_starts(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cbs.plots.report import write_report
    from cbs.plots.style import parse_formats

    formats = parse_formats(args.format)
    src = store_source(args.results_dir, args)
    pages = write_report(src, args.out or src.store.root / "report", formats=formats, html_page=args.html)
    print("wrote " + ", ".join(str(p) for p in pages))
    return 0
