"""Data-parallel throughput on this machine: one run of a tiny preset on 1 process vs ``--workers`` gloo ranks
with DDP and with FSDP2, with the same global batch; tokens/s is the runs-table figure (global tokens over rank 0's time in
training steps, evaluation excluded). Each rank gets ``--threads`` threads.

    PYTHONPATH=. python benchmarks/bench_ranks.py [--preset tiny-1m] [--batch 32] [--steps 60] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from cbs.config import TrainConfig
from cbs.data import ByteTokenizer, prepare_dataset
from cbs.data.sources import stdlib_documents
from cbs.train import run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny-1m")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare_dataset(
            stdlib_documents(), ByteTokenizer(), data, source="stdlib", max_tokens=4_000_000, progress=False
        )
        print(
            f"{args.preset} seq {args.seq_len} batch {args.batch}, {args.steps} steps, {args.threads} thread/rank"
        )
        base = None
        for workers, strategy in ((1, "ddp"), (args.workers, "ddp"), (args.workers, "fsdp")):
            torch.set_num_threads(args.threads * workers)  # the launcher gives each rank its share
            cfg = TrainConfig.from_dict(
                {
                    "model": {"preset": args.preset, "seq_len": args.seq_len},
                    "data": {"path": str(data)},
                    "batch_size": args.batch,
                    "token_budget": args.steps * args.batch * args.seq_len,
                    "device": "cpu",
                    "eval": {"eval_tokens": 256, "n_log": 1, "n_dense": 0},
                    "parallel": {"workers": workers, "strategy": strategy},
                }
            )
            row = run_training(cfg).row
            base = base or row["tokens_per_s"]
            print(
                f"  {workers} rank(s) {strategy if workers > 1 else '':<4}: {row['tokens_per_s']:>10,.0f} tokens/s  "
                f"({row['tokens_per_s'] / base:.2f}×)"
            )


if __name__ == "__main__":
    main()
