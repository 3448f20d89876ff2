"""Cross-entropy over a batch's logits: one piece (``F.cross_entropy(logits.float())``, upcasting every row)
vs ``cbs.model.cross_entropy`` (chunks of rows, each upcast and recomputed in the backward), on CPU.

Each variant runs forward + backward ``--reps`` times in a fresh process; it reports the peak resident memory
above what the process held once the logits existed (ru_maxrss, so the gradient of the logits is counted
for both), the median time, and the loss, whose relative difference is the chunking's float32 sum order.

    PYTHONPATH=. python benchmarks/bench_cross_entropy.py [--rows 2048] [--vocab 50304] [--dtype bf16] [--reps 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch
import torch.nn.functional as F

from cbs.model import cross_entropy

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
VARIANTS = {
    "one piece": lambda logits, targets: F.cross_entropy(logits.float(), targets),
    "chunked": cross_entropy,
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(variant: str, rows: int, vocab: int, dtype: str, reps: int) -> tuple[float, float, float]:
    """(peak MiB above the inputs, median seconds per forward + backward, loss) of one variant."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    logits = (3 * torch.randn(rows, vocab)).to(DTYPES[dtype]).requires_grad_()
    targets = torch.randint(0, vocab, (rows,))
    base = peak_rss_mib()
    times, loss = [], torch.zeros(())
    for _ in range(reps):
        start = time.perf_counter()
        loss = VARIANTS[variant](logits, targets)
        loss.backward()
        times.append(time.perf_counter() - start)
        logits.grad = None
    return peak_rss_mib() - base, statistics.median(times), loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2048, help="tokens in the batch (default 2048)")
    parser.add_argument("--vocab", type=int, default=50304, help="vocabulary size (default 50304)")
    parser.add_argument("--dtype", choices=DTYPES, default="bf16", help="dtype of the logits (default bf16)")
    parser.add_argument("--reps", type=int, default=3, help="forward + backward passes per variant")
    args = parser.parse_args()
    logits_mib = args.rows * args.vocab * DTYPES[args.dtype].itemsize / 2**20
    print(
        f"logits {args.rows} × {args.vocab} {args.dtype} ({logits_mib:.0f} MiB), {args.reps} reps, 1 thread"
    )
    print(f"{'variant':<10} {'peak MiB':>9} {'s/step':>8} {'loss':>12}")
    results = {}
    for variant in VARIANTS:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            results[variant] = pool.submit(
                measure, variant, args.rows, args.vocab, args.dtype, args.reps
            ).result()
        peak, seconds, loss = results[variant]
        print(f"{variant:<10} {peak:>9.0f} {seconds:>8.3f} {loss:>12.6f}")
    (one, _, a), (chunked, _, b) = results["one piece"], results["chunked"]
    print(
        f"chunked / one piece peak memory: {chunked / one:.2f}; loss relative difference {abs(a - b) / abs(a):.1e}"
    )


if __name__ == "__main__":
    main()
