"""`cbs theory seesaw`: a step-decay SGD schedule against its Seesaw twin on the exact testbed (docs/theory.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cbs.cli.options import whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "seesaw",
        help="step-decay SGD vs its Seesaw twin (same lr, batch grown where the lr would fall), exact risks",
        description="Exact expected risk of one-pass SGD on power-law linear regression under a step-decay lr "
        "schedule and under its Seesaw twin at equal samples, with the serial steps of each.",
    )
    p.add_argument("--a", type=float, default=2.0, help="spectral exponent (default 2)")
    p.add_argument("--b", type=float, default=4.0, help="source exponent (default 4)")
    p.add_argument("--sigma", type=float, default=1.0, help="label-noise standard deviation (default 1)")
    p.add_argument("--dim", type=whole_number(1), default=256, help="dimension (default 256)")
    p.add_argument("--lr", type=float, default=0.125, help="initial step (default 0.125)")
    p.add_argument("--batch", type=whole_number(1), default=1, help="initial batch (default 1)")
    p.add_argument("--samples", type=whole_number(1), default=2**14, help="samples (default 16384)")
    p.add_argument("--cuts", type=whole_number(0), default=3, help="lr halvings, at equal sample fractions")
    p.add_argument("--json", type=Path, default=None, help="write the comparison here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cbs.atomic import write_text_atomic
    from cbs.theory.problem import PowerLawProblem
    from cbs.theory.seesaw import seesaw_check

    problem = PowerLawProblem(a=args.a, b=args.b, sigma=args.sigma, dim=args.dim)
    r = seesaw_check(problem, args.lr, args.batch, args.samples, args.cuts)
    for name, schedule, risk, steps in (
        ("decay", r["schedule_decay"], r["risk_decay"], r["steps_decay"]),
        ("seesaw", r["schedule_seesaw"], r["risk_seesaw"], r["steps_seesaw"]),
    ):
        phases = ", ".join(f"B={p['batch']} lr={p['lr']:.4g}" for p in schedule)
        print(f"{name:>7}: risk {risk:.5g} in {steps} steps  [{phases}]")
    print(f"Seesaw/decay risk ratio {r['risk_ratio']:.4f}; serial steps saved {r['steps_saved']:.1%}")
    print(f"normalised SGD (Adam proxy): {r['normalised_sgd_note']}")
    if args.json:
        write_text_atomic(args.json, json.dumps(r, indent=2) + "\n")
    return 0
