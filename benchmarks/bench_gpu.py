"""GPU throughput: tokens/s and MFU of cbs's trainer against a plain PyTorch loop (the same cbs.model, fused
AdamW, bf16 autocast, the same batch) in the same process, for the 85M and 151M presets at seq 512, compile off
and on, and 2 data-parallel ranks when 2 or more GPUs are present.

One rank: ``benchmarks/bench_train.py``'s alternating timed bursts after a short warm-up (compilation included).
Two ranks: the cbs run through ``parallel.workers: 2`` (its runs-row tokens/s, evaluation excluded) against
twice the one-rank plain loop, i.e. against perfect scaling. Sized to finish in under 5 minutes on one H100/H200.
``--smoke`` runs the same code on CPU (micro-4k, seq 64, fp32, compile off, 3 steps) for CI.

    PYTHONPATH=. python benchmarks/bench_gpu.py [--steps 10] [--rounds 5] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from bench_train import dataset, format_mfu, make_config, measure

from cbs.train import run_training
from cbs.train.loop import model_flops_utilization

GPU_PRESETS = ("85M", "151M")
BATCH = 32
HEADER = f"{'preset':>8} {'compile':>7} {'ranks':>5} {'cbs tok/s':>12} {'plain tok/s':>12} {'cbs/plain':>9} {'MFU':>6}"
NO_CUDA = "bench_gpu: no CUDA device found; run it on a GPU machine, or pass --smoke for the CPU check"


def row(preset: str, compile_: bool, ranks: int, cbs: float, plain: float, ratio: float, mfu: str) -> str:
    return f"{preset:>8} {'on' if compile_ else 'off':>7} {ranks:>5} {cbs:>12,.0f} {plain:>12,.0f} {ratio:>9.2f} {mfu}"


def bench(path: str, preset: str, compile_: bool, args: argparse.Namespace, device: str) -> None:
    """Print the one-rank row of ``preset`` and, with 2+ GPUs, its two-rank row."""
    n_steps = args.steps * args.rounds + 3
    t = measure(make_config(path, preset, BATCH, n_steps, device, compile_), args.steps, args.rounds)
    mfu = format_mfu(model_flops_utilization(t.run, t.cbs))
    print(row(preset, compile_, 1, t.cbs, t.plain, t.ratio, mfu), flush=True)
    if device == "cuda" and torch.cuda.device_count() >= 2:
        two = run_training(make_config(path, preset, BATCH, n_steps, device, compile_, workers=2)).row
        ideal = 2 * t.plain
        tps = two["tokens_per_s"]
        print(row(preset, compile_, 2, tps, ideal, tps / ideal, format_mfu(two["mfu"])), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10, help="steps per timed burst (default 10)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating bursts per side (default 5)")
    parser.add_argument("--smoke", action="store_true", help="CPU check of the same path (micro-4k, 3 steps)")
    args = parser.parse_args(argv)
    if args.smoke:
        device, presets, compiles, args.steps, args.rounds = "cpu", ("micro-4k",), (False,), 3, 1
    elif torch.cuda.is_available():
        device, presets, compiles = "cuda", GPU_PRESETS, (False, True)
    else:
        print(NO_CUDA, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        path = dataset(Path(tmp), device)
        print(f"torch {torch.__version__}, {device}, batch {BATCH}, {args.rounds}x{args.steps} timed steps")
        print(HEADER, flush=True)
        for preset in presets:
            for compile_ in compiles:
                bench(path, preset, compile_, args, device)
    if device == "cuda" and torch.cuda.device_count() >= 2:
        print("ranks 2: plain tok/s is twice the one-rank plain loop (perfect scaling)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
