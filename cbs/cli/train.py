"""`cbs train [CONFIG.yaml] --set key=value ...`: one training run, printed as it goes."""

from __future__ import annotations

import argparse
import os

from cbs.cli.options import whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="run one training run",
        description="Train one model from a TrainConfig YAML (optional: defaults) with key=value overrides.",
    )
    parser.add_argument(
        "config", nargs="?", default=None, help="TrainConfig YAML (default: built-in defaults)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set optim.lr=1e-3 --set model.preset=tiny-250k (repeatable)",
    )
    parser.add_argument(
        "--results", default=None, help="results store folder to write the run row and curve to"
    )
    parser.add_argument("--resume", default=None, help="checkpoint folder to continue from")
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="folder to write a checkpoint to at every evaluation (for --resume)",
    )
    parser.add_argument(
        "--threads",
        type=whole_number(1),
        default=None,
        metavar="N",
        help="CPU threads torch may use (default: torch's, all cores — fastest alone on the machine; "
        "1 when another job shares it, see docs/train.md)",
    )
    parser.add_argument(
        "--workers",
        type=whole_number(1),
        default=None,
        metavar="N",
        help="data-parallel ranks on this machine (sets parallel.workers; gloo on CPU, nccl on CUDA)",
    )
    parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from cbs.config import TrainConfig, apply_overrides
    from cbs.results import ResultsStore
    from cbs.train import resolve_config, run_training
    from cbs.train.device import set_threads

    overrides = [*args.overrides, *([f"parallel.workers={args.workers}"] if args.workers is not None else [])]
    if args.config:
        cfg = TrainConfig.from_yaml(args.config, overrides)
    else:
        cfg = TrainConfig.from_dict(apply_overrides({}, overrides))
    console = Console(quiet=os.environ.get("RANK", "0") != "0")  # under torchrun, rank 0 prints
    run = resolve_config(cfg)
    threads = set_threads(args.threads)
    source = "--threads" if args.threads else "torch's default; --threads N to change"
    console.print(
        f"[bold]cbs train[/] {cfg.run_id()}: {run.spec.preset} N={run.n_params:,} on {run.device} ({run.dtype}), "
        f"{threads} CPU thread{'s' if threads > 1 else ''} ({source}), "
        f"batch {cfg.batch_size}×{run.spec.seq_len}, {run.steps} steps, {run.token_budget:,} tokens, "
        f"warmup {run.warmup_steps} steps, β2 {run.beta2}, EWA τ {run.ewa_tau}"
        + (f", {cfg.parallel.workers} ranks ({cfg.parallel.strategy})" if cfg.parallel.workers > 1 else ""),
        soft_wrap=True,
    )

    def on_eval(metrics: dict, write_checkpoint) -> None:
        def fmt(x: float | None) -> str:
            return "—" if x is None else f"{x:.4f}"

        console.print(
            f"step {metrics['step']:>6} tok {metrics['tokens']:>10.3g} lr {metrics['lr']:.2e} "
            f"train {fmt(metrics['train_loss'])} eval {fmt(metrics['eval_loss'])} "
            f"ewa {fmt(metrics['ewa_eval_loss'])} [dim]{metrics['status_so_far']}[/]",
            highlight=False,
            soft_wrap=True,
        )
        if args.checkpoint:
            write_checkpoint(args.checkpoint)

    store = ResultsStore(args.results) if args.results else None
    from cbs.train.branch import kept_root

    keep = kept_root(store.root, cfg.run_id()) if store is not None and cfg.keep_checkpoints_at else None
    trained = run_training(
        cfg, catch_failures=store is not None, resume_from=args.resume, on_eval=on_eval, keep_dir=keep
    )
    if store is not None and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 stores
        store.write_run(trained.row, trained.curve)
    row = trained.row
    table = Table(title=f"run {row['run_id']}", show_header=False)
    for key in (
        "status",
        "steps",
        "tokens",
        "final_train_loss",
        "final_eval_loss",
        "final_ewa_eval_loss",
        "best_ewa_eval_loss",
        "steps_to_target",
        "tokens_per_s",
        "mfu",
        "wall_time_s",
        "device",
        "error",
    ):
        value = row[key]
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    if store is not None:
        console.print(f"stored in {store.root}")
    return 0 if row["status"] != "failed" else 1
