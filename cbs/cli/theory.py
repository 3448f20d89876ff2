"""`cbs theory`: the exact CBS of one-pass mini-batch SGD on power-law linear regression (docs/theory.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cbs.cli.options import whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "theory",
        help="exact CBS of mini-batch SGD on power-law linear regression: B* vs data size and vs dim",
        description="Sweep data size D (at --dim) and dim (at --dim-data-size) on x ~ N(0, diag(i^-a)), "
        "lambda_i (w*_i)^2 = i^-b, label noise sigma^2; exact expected risk, (lr, tau) tuned per batch size; "
        "fit B* = CBS per cell and B* ∝ D^k, next to the corollary k = 1 - a/min(b, 2a+1).",
    )
    p.add_argument("--a", type=float, default=2.0, help="spectral exponent: lambda_i = i^-a (default 2)")
    p.add_argument(
        "--b", type=float, default=4.0, help="source exponent: lambda_i (w*_i)^2 = i^-b (default 4)"
    )
    p.add_argument("--sigma", type=float, default=1.0, help="label-noise standard deviation (default 1)")
    p.add_argument(
        "--dim",
        type=int,
        default=None,
        help="dimension of the data-size sweep (default: the smallest power of 2 >= 4 k*(max D), at least 64)",
    )
    p.add_argument(
        "--data-sizes",
        type=int,
        nargs="+",
        default=[2**k for k in range(10, 16)],
        help="data sizes D of the data-size sweep (default 2^10 .. 2^15)",
    )
    p.add_argument(
        "--dims",
        type=int,
        nargs="+",
        default=[4, 8, 16, 32, 64, 128, 256],
        help="dims of the dim sweep at --dim-data-size (default 4 .. 256)",
    )
    p.add_argument(
        "--dim-data-size", type=int, default=2**12, help="data size of the dim sweep (default 4096)"
    )
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=None,
        help="batch grid; the smallest is the reference B_ref defining the target (default 1 .. 4096, ×2)",
    )
    p.add_argument("--overhead", type=float, default=None, help="CBS overhead o (default: the paper's 0.2)")
    p.add_argument(
        "--n-boot", type=whole_number(0), default=1000, help="bootstrap resamples for the intervals"
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap (and GNS sampling) seed")
    p.add_argument(
        "--gns-seeds",
        type=whole_number(0),
        default=256,
        help="sampled SGD runs for the in-run gradient noise scale beside the exact one, at the largest D "
        "(default 256; 0 skips it)",
    )
    p.add_argument("--results", type=Path, default=None, help="results store to write the runs into")
    p.add_argument("--json", type=Path, default=None, help="write the report (exponents, B* per D/dim) here")
    p.set_defaults(func=run)
    from cbs.cli import theory_seesaw

    theory_seesaw.register(p.add_subparsers(dest="theory_command", metavar="{seesaw}"))


def run(args: argparse.Namespace) -> int:
    from cbs.fit.tables import write_json
    from cbs.protocol import CBS_OVERHEAD
    from cbs.results import ResultsStore
    from cbs.theory.study import StudySpec, default_grid, run_study
    from cbs.theory.sweep import Grid

    grid = default_grid()
    if args.batch_sizes:
        grid = Grid(tuple(args.batch_sizes), grid.lrs, grid.taus)
    spec = StudySpec(
        a=args.a,
        b=args.b,
        sigma=args.sigma,
        dim=args.dim,
        data_sizes=tuple(args.data_sizes),
        dims=tuple(args.dims),
        dim_data_size=args.dim_data_size,
        grid=grid,
        overhead=CBS_OVERHEAD if args.overhead is None else args.overhead,
        n_boot=args.n_boot,
        seed=args.seed,
        gns_seeds=args.gns_seeds,
    )
    store = ResultsStore(args.results) if args.results else None
    result = run_study(spec, store)
    print(result.report())
    if args.json:
        write_json(args.json, result.to_dict())
    return 0
