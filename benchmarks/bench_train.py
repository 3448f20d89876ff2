"""Training throughput: cbs's trainer vs a minimal plain-PyTorch loop (nanoGPT style) on the same model and batch.

CPU: the tiny presets on the offline stdlib corpus (data/stdlib if prepared, else a temporary slice).
CUDA (when available): the 124M-class model (the 85M preset with GPT-2/NeoX-sized vocab 50304) and the 151M
preset at seq len 512 in bf16, with tokens/s and MFU against the device's dense bf16 peak.

The cbs side times ``Trainer.train_step`` (sampler, lr schedule, gradient accumulation, clipping, AdamW,
the EWA update and the per-step loss check); the plain side is model + AdamW + clipping on random windows.
Both run in the same process in alternating bursts of ``--steps`` steps; tokens/s are totals over all
bursts, the ratio (cbs / plain, > 1 means cbs is faster) is the median over bursts.

    PYTHONPATH=. python benchmarks/bench_train.py [--steps 5] [--rounds 10] [--threads 1] [--compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cbs.config import TrainConfig
from cbs.data import ByteTokenizer, gather_windows, open_dataset, prepare_dataset
from cbs.data.sources import stdlib_documents
from cbs.model import PRESETS, build_model
from cbs.train import ResolvedRun, Trainer, resolve_config
from cbs.train.device import autocast, device_name, peak_flops
from cbs.train.loop import model_flops_utilization

CPU_PRESETS = (("tiny-16k", 32), ("tiny-64k", 32), ("tiny-250k", 32), ("tiny-1m", 16))  # (preset, batch)
GPU_PRESETS = (("85M", 32), ("151M", 32))


class RandomTokenizer:
    """Maps every document to random ids of a large vocabulary (throughput does not depend on the text)."""

    name, eos_id = "random-50304", None

    def __init__(self, vocab_size: int = 50304) -> None:
        self.vocab_size = vocab_size
        self.rng = np.random.default_rng(0)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [self.rng.integers(0, self.vocab_size, 200_000) for _ in texts]


def dataset(tmp: Path, device: str) -> str:
    if device == "cpu":
        if Path("data/stdlib/manifest.json").is_file():
            return "data/stdlib"
        docs, tok = stdlib_documents(), ByteTokenizer()
    else:
        docs, tok = (f"doc {i}" for i in range(400)), RandomTokenizer()
    prepare_dataset(
        docs, tok, tmp / "bench", source="bench", val_fraction=0.05, max_tokens=20_000_000, progress=False
    )
    return str(tmp / "bench")


def make_config(
    path: str, preset: str, batch: int, steps: int, device: str, compile_: bool, workers: int = 1
) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "model": {"preset": preset},
            "data": {"path": path},
            "batch_size": batch,
            "token_budget": steps * batch * PRESETS[preset]["seq_len"],
            "optim": {"warmup_steps": 10},
            "device": device,
            "compile": compile_,
            "eval": {"eval_tokens": 512},
            "parallel": {"workers": workers},
        }
    )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cbs_step(cfg: TrainConfig) -> Callable[[], object]:
    return Trainer(resolve_config(cfg)).train_step


def plain_step(cfg: TrainConfig) -> Callable[[], None]:
    """nanoGPT-style step: random windows, forward, backward, clip, AdamW; no EWA, no eval, no per-step sync."""
    run = resolve_config(cfg)
    spec, device = run.spec, torch.device(run.device)
    torch.manual_seed(0)
    model = build_model(spec).to(device)
    kind = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.95, run.beta2), **kind)
    fwd = torch.compile(model) if cfg.compile else model
    tokens = open_dataset(cfg.data.path).tokens("train")
    rng = np.random.default_rng(0)
    n_windows = len(tokens) // (spec.seq_len + 1)

    def step() -> None:
        starts = rng.integers(0, n_windows, cfg.batch_size) * (spec.seq_len + 1)
        batch = torch.from_numpy(gather_windows(tokens, starts, spec.seq_len)).to(device, non_blocking=True)
        with autocast(run.device, run.dtype):
            loss = fwd(batch[:, :-1], batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def timed(step: Callable[[], object], n: int, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return time.perf_counter() - start


@dataclasses.dataclass(frozen=True)
class Throughput:
    """Tokens/s of both sides (totals over all bursts) and the median per-burst ratio cbs / plain."""

    run: ResolvedRun
    cbs: float
    plain: float
    ratio: float


def measure(cfg: TrainConfig, steps: int, rounds: int, warmup: int = 3) -> Throughput:
    """``warmup`` untimed steps per side (compilation included), then ``rounds`` alternating bursts of
    ``steps`` steps of cbs and plain, so that both see the same background load."""
    run, device = resolve_config(cfg), cfg.device
    sides = {"cbs": cbs_step(cfg), "plain": plain_step(cfg)}
    for step in sides.values():
        timed(step, warmup, device)
    seconds = {name: 0.0 for name in sides}
    ratios = []
    for _ in range(rounds):
        burst = {name: timed(step, steps, device) for name, step in sides.items()}
        ratios.append(burst["plain"] / burst["cbs"])
        for name in sides:
            seconds[name] += burst[name]
    tps = {name: steps * rounds * run.batch_tokens / t for name, t in seconds.items()}
    return Throughput(run, tps["cbs"], tps["plain"], statistics.median(ratios))


def format_mfu(mfu: float | None) -> str:
    return f"{mfu:6.1%}" if mfu is not None else "   n/a"


def bench(path: str, preset: str, batch: int, args: argparse.Namespace, device: str) -> None:
    cfg = make_config(path, preset, batch, args.steps * args.rounds + 3, device, args.compile)
    t = measure(cfg, args.steps, args.rounds)
    print(
        f"{preset:>10} N={t.run.n_params:>11,} batch {batch:>3}x{t.run.spec.seq_len:<4} "
        f"cbs {t.cbs:>11,.0f} tok/s  plain {t.plain:>11,.0f} tok/s  "
        f"ratio {t.ratio:5.2f} (median of {args.rounds})  "
        f"MFU {format_mfu(model_flops_utilization(t.run, t.cbs))}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5, help="steps per timed burst (default 5)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating bursts per side (default 10)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile both models (CUDA)")
    parser.add_argument(
        "--cpu-only", action="store_true", help="skip the CUDA presets even if a GPU is present"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
        path = dataset(Path(tmp), "cpu")
        for preset, batch in CPU_PRESETS:
            bench(path, preset, batch, args, "cpu")
        if torch.cuda.is_available() and not args.cpu_only:
            print(f"CUDA: {device_name('cuda')} (dense bf16 peak {peak_flops(device_name('cuda'))})")
            path = dataset(Path(tmp), "cuda")
            for preset, batch in GPU_PRESETS:
                bench(path, preset, batch, args, "cuda")


if __name__ == "__main__":
    main()
