"""Cost of the in-run gradient noise scale: ``Trainer.train_step`` with ``gns.enabled`` on vs off, same run.

Each run accumulates 4 micro-batches per step (the case where GNS is on by default); the probe adds one
gradient norm after the first micro-batch and a few scalar kernels per step, no forward or backward and no
host sync. Both sides run in the same process in alternating bursts of ``--steps`` steps (bench_train's
timing, order swapped every burst); the overhead is the median (and quartiles) over bursts of
(on − off) / off. On a loaded machine that spread hides a small cost, so the probe's own work is also timed
alone, as a fraction of a step.

    PYTHONPATH=. python benchmarks/bench_gns.py [--steps 5] [--rounds 10] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_train import dataset, make_config, timed

from cbs.data import gather_windows
from cbs.train import Trainer, resolve_config

PRESETS = (("tiny-16k", 32), ("tiny-250k", 32), ("tiny-1m", 16))  # (preset, batch)
MICRO_BATCHES = 4


def overhead(
    path: str, preset: str, batch: int, args: argparse.Namespace
) -> tuple[list[float], float, float]:
    """(quartiles of the per-burst relative overhead of GNS on over off, steps/s with GNS off, the probe's
    own seconds per step); the sides swap order every burst."""
    cfg = make_config(path, preset, batch, args.steps * args.rounds + 3, args.device, False)
    cfg = dataclasses.replace(cfg, micro_batch_size=batch // MICRO_BATCHES)
    off = dataclasses.replace(cfg, gns=dataclasses.replace(cfg.gns, enabled=False))
    sides = {"on": Trainer(resolve_config(cfg)), "off": Trainer(resolve_config(off))}
    assert sides["on"].gns is not None and sides["off"].gns is None
    for trainer in sides.values():
        timed(trainer.train_step, 3, args.device)
    ratios, off_seconds = [], 0.0
    for i in range(args.rounds):
        order = list(sides.items())[:: 1 if i % 2 else -1]
        burst = {name: timed(t.train_step, args.steps, args.device) for name, t in order}
        ratios.append(burst["on"] / burst["off"] - 1.0)
        off_seconds += burst["off"]
    speed = args.steps * args.rounds / off_seconds
    return statistics.quantiles(ratios, n=4), speed, probe_seconds(sides["on"])


def probe_seconds(trainer: Trainer, n: int = 50) -> float:
    """Seconds per step of the probe's own work (the first micro-batch's gradient norm and the tracker
    update), timed alone on the gradients a step leaves: a load-independent floor under the burst timing."""
    trainer.train_step()
    loss = trainer.forward(*_window(trainer))
    loss.backward()
    norm = torch.nn.utils.get_total_norm([p.grad for p in trainer.model.parameters()], foreach=True)
    start = time.perf_counter()
    for _ in range(n):
        trainer.gns.after_backward(first=True)
        trainer.gns.end_step(norm)
    return (time.perf_counter() - start) / n


def _window(trainer: Trainer) -> tuple[torch.Tensor, torch.Tensor]:
    seq = trainer.run.spec.seq_len
    batch = torch.from_numpy(
        gather_windows(trainer.train_tokens, np.arange(trainer.run.micro_batch_size) * seq, seq)
    )
    return batch[:, :-1].to(trainer.device), batch[:, 1:].to(trainer.device)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5, help="steps per timed burst (default 5)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating bursts per side (default 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = dataset(Path(tmp), args.device)
        print(f"torch {torch.__version__}, {args.device}, threads {torch.get_num_threads()}")
        for preset, batch in PRESETS:
            (q1, median, q3), speed, probe = overhead(path, preset, batch, args)
            print(
                f"{preset:>10} batch {batch} in {MICRO_BATCHES} micro-batches: GNS off {speed:6.2f} steps/s, "
                f"GNS on {median:+.1%} [quartiles {q1:+.1%}, {q3:+.1%}] over {args.rounds} bursts; "
                f"probe alone {probe * 1e3:.2f} ms/step = {probe * speed:.2%} of a step",
                flush=True,
            )


if __name__ == "__main__":
    main()
