"""`cbs fit cbs | scaling-law | loss-to-loss | hparams`: the fits of cbs.fit from a results store or a CSV/Parquet table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cbs.cli.options import (
    add_bootstrap_options,
    add_cbs_options,
    add_n_starts,
    add_nd_columns,
    add_scaling_law_options,
    add_skip_damaged,
    open_store,
)
from cbs.errors import FitError

if TYPE_CHECKING:
    from cbs.fit import CbsAnalysis


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


def _b_opt_label(analysis: CbsAnalysis) -> str:
    b_opt = analysis.b_opt
    return f"{b_opt:g}" if b_opt is not None else "per group"


def _fmt(v: float, ci: tuple[float, float] | None = None) -> str:
    text = f"{v:.4g}"
    return text + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")


def run_cbs(args: argparse.Namespace) -> int:
    _one_source(args)
    from rich.console import Console

    from cbs.atomic import write_text_atomic
    from cbs.console import Column, print_fitted_table
    from cbs.fit import fit_cbs_table, steps_to_target_table
    from cbs.fit.tables import read_table, to_markdown, write_csv, write_json

    if args.input is not None:
        table = read_table(args.input)
    else:
        table = steps_to_target_table(
            open_store(args.store, args.skip_damaged),
            b_opt=args.b_opt,
            target=args.target,
            eval_set=args.eval_set,
        )
        if args.steps_csv:
            write_csv(args.steps_csv, table)
    analysis = fit_cbs_table(
        table, b_opt=args.b_opt, overhead=args.overhead, n_boot=args.n_boot, seed=args.seed
    )
    frame = analysis.to_frame()

    columns = (
        Column("model"),
        Column("N\n(M params)", drop=4, justify="right"),
        Column("D\n(tokens)", justify="right"),
        Column("B* (seqs)\n[95% CI]", justify="right"),
        Column("S_min\n(steps)", drop=5, justify="right"),
        Column("B_noise\n(seqs)", drop=2, justify="right"),
        Column("α\n(free)", drop=6, justify="right"),
        Column("note", drop=3, wrap=True),
    )
    rows = [
        (
            g.model,
            f"{g.n_params / 1e6:.4g}",
            f"{g.data_tokens:.4g}",
            _fmt(g.fit.cbs, g.fit.cbs_ci) if g.fit else "-",
            _fmt(g.fit.s_min) if g.fit else "-",
            _fmt(g.fit.b_noise) if g.fit else "-",
            _fmt(g.fit.alpha_variant.alpha) if g.fit and g.fit.alpha_variant else "-",
            g.error or " ".join(f"⚠ {w.code}" for w in g.warnings),
        )
        for g in analysis.groups
    ]
    console = Console()
    title = f"Critical batch size (B_opt = {_b_opt_label(analysis)} seqs, overhead {args.overhead:g})"
    print_fitted_table(console, columns, rows, title=title)
    notes = _warning_lines(analysis)
    for line in notes:
        console.print(f"warning: {line}", markup=False)
    lines = _law_lines(analysis)
    for line in lines:
        console.print(line)
    if args.json:
        write_json(args.json, analysis.to_json_dict())
    if args.csv:
        write_csv(args.csv, frame)
    if args.markdown:
        write_text_atomic(
            args.markdown,
            to_markdown(frame)
            + "\n"
            + "\n".join(f"- {x}" for x in [*lines, *(f"warning: {n}" for n in notes)])
            + "\n",
        )
    return 0


def _warning_lines(analysis: CbsAnalysis) -> list[str]:
    """'micro-4k, D=71280: lr_edge — <message>', one per warning of each group (cbs.fit.diagnostics)."""
    return [f"{g.label}: {w.code} — {w.message}" for g in analysis.groups for w in g.warnings]


def _law_lines(analysis: CbsAnalysis) -> list[str]:
    """One line per fitted law (with units) and per absent law (with the reason)."""
    lines = []
    for name, law in analysis.laws.items():
        if name == "joint":
            k = law.exponents
            lines.append(
                f"B* = {law.coefficient:.4g}·N^{k['n_params']:.3f}·D^{k['data_tokens']:.3f} (N in millions, D in tokens;"
                f" exponent CIs N {law.exponent_cis['n_params'][0]:.3f}–{law.exponent_cis['n_params'][1]:.3f},"
                f" D {law.exponent_cis['data_tokens'][0]:.3f}–{law.exponent_cis['data_tokens'][1]:.3f})"
            )
        else:
            var = "N (millions)" if name == "n_params" else "D (tokens)"
            other = "data_tokens" if name == "n_params" else "n_params"
            fixed = analysis.fixed_value(other)
            at = f" at fixed {'D' if name == 'n_params' else 'N (millions)'} = {fixed:.4g}" if fixed else ""
            lines.append(
                f"B* = {law.coefficient:.4g}·{var.split()[0]}^{law.exponent:.3f} with {var}{at}; exponent CI "
                f"{law.exponent_ci[0]:.3f}–{law.exponent_ci[1]:.3f}, R² {law.r2:.3f}"
            )
    lines = [
        line + (f"; warnings of its groups: {note}" if (note := analysis.law_warning_note(name)) else "")
        for line, name in zip(lines, analysis.laws, strict=True)
    ]
    lines += [f"no {name} law: {why}" for name, why in analysis.laws_absent.items()]
    return lines


def run_scaling_law(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from cbs.fit import fit_scaling_law
    from cbs.fit.tables import read_table, scaling_law_points, write_json

    points = scaling_law_points(
        read_table(args.input),
        n_col=args.n_col,
        d_col=args.d_col,
        flops_col=args.flops_col,
        loss_col=args.loss_col,
    )
    if args.drop_highest:
        points = points.sort_values("loss").iloc[: -args.drop_highest]
    fit = fit_scaling_law(
        points["n"].to_numpy(),
        points["d"].to_numpy(),
        points["loss"],
        form=args.form,
        n_starts=args.n_starts,
        n_boot=args.n_boot,
        seed=args.seed,
    )
    payload = fit.to_dict()
    console = Console()
    ci = fit.intervals()
    console.print(
        f"{args.form} fit on {fit.n_points} points ({fit.n_starts} starts, {args.n_boot} bootstrap resamples)"
    )
    for name in ("E", "A", "B", "alpha", "beta"):
        console.print(f"  {name:5s} = {_fmt(getattr(fit, name), ci.get(name))}")
    console.print(f"  objective (summed Huber, δ=1e-3) = {fit.objective:.10g}")
    payload["predictions"] = []
    for n_p, d_p in args.predict:
        pred = float(fit.predict(n_p, d_p))
        lo, hi = fit.predict_interval(n_p, d_p) if args.n_boot > 0 else (np.nan, np.nan)
        payload["predictions"].append(
            {"n_params": n_p, "data_tokens": d_p, "loss": pred, "loss_ci": [float(lo), float(hi)]}
        )
        console.print(f"  L(N={n_p:.4g}, D={d_p:.4g}) = {_fmt(pred, (float(lo), float(hi)))}")
    payload["compute_optimal"] = []
    for c in args.compute:
        n_opt, d_opt = fit.compute_optimal(c)
        payload["compute_optimal"].append({"flops": c, "n_opt": float(n_opt), "d_opt": float(d_opt)})
        console.print(f"  C={c:.4g} FLOP: N_opt={float(n_opt):.4g}, D_opt={float(d_opt):.4g} tokens")
    if args.json:
        write_json(args.json, payload)
    return 0


def run_loss_to_loss(args: argparse.Namespace) -> int:
    _one_source(args)
    if args.holdout is not None and not args.holdout.is_file():
        raise FitError(f"--holdout {args.holdout} does not exist")
    from rich.console import Console

    from cbs.fit.loss_to_loss_table import Columns, fit_loss_to_loss_table, store_loss_table
    from cbs.fit.tables import read_table, write_json

    table = (
        read_table(args.input)
        if args.input
        else store_loss_table(open_store(args.store, args.skip_damaged), ewa=not args.raw_loss)
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
    f = analysis.fit
    console = Console()
    console.print(f"{args.x_group}:{args.x_col} → {args.y_group}:{args.y_col} on {f.n_points} (N, D) pairs")
    j = analysis.joint
    fitted = [name for name, law in (("E_x", analysis.law_x), ("E_y", analysis.law_y)) if law is not None]
    source = f"{', '.join(fitted)} from {analysis.form}-form L(N, D) fits; " if fitted else ""
    console.print(f"  {source}intervals: {analysis.interval}")
    console.print(
        f"  κ = {_fmt(f.kappa, j.kappa_ci if j else f.kappa_ci)}   K = {_fmt(f.K, j.K_ci if j else f.K_ci)}"
    )
    console.print(
        f"  E_x = {_fmt(f.E_x, j.E_x_ci if j else None)}   E_y = {_fmt(f.E_y, j.E_y_ci if j else f.E_y_ci)}   "
        f"R² = {f.r2:.4f} (log-log {f.r2_log:.4f})"
    )
    if j:
        console.print(
            f"  E-fixed κ interval {_fmt(f.kappa, f.kappa_ci)}; joint bootstrap: {j.n_ok}/{j.n_boot} resamples "
            f"in {j.seconds:.1f} s"
        )
    if analysis.holdout is not None:
        for row in analysis.holdout.itertuples():
            console.print(
                f"  held out N={row.n:.3g} D={row.d:.3g}: y={row.y:.4f} ŷ={row.y_pred:.4f} "
                f"rel. error {row.rel_error:+.2%}"
            )
    if args.json:
        write_json(args.json, analysis.to_json_dict(cols))
    return 0
