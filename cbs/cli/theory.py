"""`cbs theory`: the exact CBS of one-pass mini-batch SGD on power-law linear regression (docs/theory.md)."""

from __future__ import annotations

import argparse
import json
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


def _print_report(report: dict) -> None:
    print(
        f"power-law regression a={report['problem']['a']:g} b={report['problem']['b']:g} "
        f"sigma={report['problem']['sigma']:g}; B_ref={report['b_ref']}, overhead={report['overhead']:g}"
    )
    print(
        f"{'dim':>5} {'D':>8} {'target':>10} {'S_min':>7} {'B_noise':>9} {'B*':>8}  {'95% CI':<16} {'direct':>7}"
    )
    for row in (*report["cbs_by_data"], *report["cbs_by_dim"]):
        if row["cbs"] is None:
            print(
                f"{row['dim']:>5} {row['data_size']:>8} {row['target_excess_risk']:>10.3e}  fit refused: {row['error']}"
            )
            continue
        lo, hi = row["cbs_ci"]
        print(
            f"{row['dim']:>5} {row['data_size']:>8} {row['target_excess_risk']:>10.3e} {row['s_min']:>7.1f} "
            f"{row['b_noise']:>9.1f} {row['cbs']:>8.1f}  {f'[{lo:.1f}, {hi:.1f}]':<16} "
            f"{row['cbs_direct'] or float('nan'):>7.1f}"
        )
    lo, hi = report["exponent_data_ci"]
    print(
        f"B* ∝ D^k: fitted k = {report['exponent_data']:.3f} [{lo:.3f}, {hi:.3f}]; "
        f"corollary 1 - a/min(b, 2a+1) = {report['exponent_theory']:.3f}"
    )
    if report["exponent_data_direct"] is not None:
        lo, hi = report["exponent_data_direct_ci"]
        print(f"direct reading (no hyperbola): k = {report['exponent_data_direct']:.3f} [{lo:.3f}, {hi:.3f}]")
    flat = report["dim_flatness"]
    if "relative_change" in flat:
        print(
            f"B* across dims {flat['dims']} (>= {flat['min_dim_factor']:g} k*, k* = {report['effective_dim']:.1f}) "
            f"at D = {report['dim_data_size']}: relative change {flat['relative_change']:.1%}"
        )
    for row in (*report["cbs_by_data"], *report["cbs_by_dim"]):
        for w in row["warnings"]:
            print(f"warning: dim {row['dim']}, D {row['data_size']}: {w['code']} — {w['message']}")
    for w in report["warnings"]:
        print(f"warning: {w['code']} — {w['message']}")
    if report["gns"]:
        _print_gns(report["gns"])
    secs = report["seconds"]
    print(
        f"time: data sweep {secs['data_sweep']:.1f} s, dim sweep {secs['dim_sweep']:.1f} s, "
        f"GNS check {secs['gns']:.1f} s"
    )


def _print_gns(gns: dict) -> None:
    print(
        f"gradient noise scale B_simple at dim {gns['dim']}, D {gns['data_size']}: B={gns['batch_size']}, "
        f"lr={gns['lr']:.3g}, in-run estimator b_small={gns['b_small']}, EMA decay {gns['ema_decay']:g}, "
        f"{gns['n_seeds']} sampled runs"
    )
    print(f"{'step':>6} {'exact':>9} {'exact EMA':>10} {'estimated':>10} {'± se':>7} {'est/EMA':>8}")
    for row in zip(
        gns["steps"],
        gns["b_simple_exact"],
        gns["b_simple_exact_ema"],
        gns["b_simple_estimated"],
        gns["b_simple_estimated_se"],
        gns["ratio_ema"],
        strict=True,
    ):
        step, exact, ema, est, se, ratio = row
        print(f"{step:>6} {exact:>9.2f} {ema:>10.2f} {est:>10.2f} {se:>7.2f} {ratio:>8.3f}")


def run(args: argparse.Namespace) -> int:
    from cbs.atomic import write_text_atomic
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
    report = run_study(spec, store)
    _print_report(report)
    if args.json:
        write_text_atomic(args.json, json.dumps(report, indent=2) + "\n")
    return 0
