"""Evaluation cost of one run: raw weights at every evaluation (eval.raw_every = 1, the old behaviour) against
the default raw_every = 8, on a run of the default job (micro-6k, B = 8, D = 251,520 tokens), side by side in one
process. Prints wall time, time spent evaluating, its share, and the eval forward tokens.

    python benchmarks/bench_eval.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import math

import torch

from cbs.config import TrainConfig
from cbs.train import resolve_config, run_training
from cbs.train.evaluation import eval_steps

BASE = {
    "model": {"preset": "micro-6k"},
    "data": {"path": "data/stdlib"},
    "chinchilla_multiple": 2.0,
    "batch_size": 8,
    "optim": {"lr": 1e-2, "beta2": 0.992},
    "ewa_tau": 0.96875,
    "eval": {"n_log": 24, "n_dense": 12, "eval_tokens": 8192, "eval_batch_size": 128},
    "stop_at_target": False,
    "device": "cpu",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    print(
        f"{'raw_every':>9} {'wall s':>8} {'eval s':>8} {'eval share':>10} {'eval fwd tokens':>16} {'ewa loss':>9}"
    )
    results = {}
    for _ in range(args.repeats):  # interleaved: the machine is shared
        for raw_every in (1, 8):
            cfg = TrainConfig.from_dict({**BASE, "eval": {**BASE["eval"], "raw_every": raw_every}})
            row = run_training(cfg)
            run = resolve_config(cfg)
            windows = math.ceil(cfg.eval.eval_tokens / run.spec.seq_len)
            n_evals = len(eval_steps(run.steps, cfg.eval, run.batches.steps_within(run.data_tokens)))
            n_raw = len([i for i in range(n_evals) if i % raw_every == 0 or i == n_evals - 1])
            tokens = (n_evals + n_raw) * windows * run.spec.seq_len
            results.setdefault(raw_every, []).append(row)
            print(
                f"{raw_every:>9} {row['wall_time_s']:>8.2f} {row['eval_time_s']:>8.2f} "
                f"{row['eval_time_s'] / row['wall_time_s']:>10.1%} {tokens:>16,} {row['final_ewa_eval_loss']:>9.4f}"
            )
    one, eight = (min(r["eval_time_s"] for r in results[k]) for k in (1, 8))
    print(f"eval time, raw_every 8 / raw_every 1 (best of {args.repeats}): {eight / one:.2f}")


if __name__ == "__main__":
    main()
