"""When to evaluate (log-spaced plus dense near the end) and the evaluation itself."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn

from cbs.config import EvalConfig


def eval_steps(steps: int, cfg: EvalConfig) -> list[int]:
    """Sorted unique steps in 1..steps: ``n_log`` log-spaced ones, ``n_dense`` evenly spaced over the final
    ``dense_tail_fraction`` of the run, and always the last step."""
    log_points = np.logspace(0.0, math.log10(steps), max(cfg.n_log, 1)) if cfg.n_log > 0 else []
    tail_start = steps * (1.0 - cfg.dense_tail_fraction)
    dense = np.linspace(tail_start, steps, cfg.n_dense) if cfg.n_dense > 0 else []
    points = {int(round(p)) for p in [*log_points, *dense]} | {steps}
    return sorted(p for p in points if 1 <= p <= steps)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    windows: torch.Tensor,
    batch_size: int,
    autocast: contextlib.AbstractContextManager | None = None,
) -> float:
    """Mean next-token cross-entropy (nats/token) of ``model`` over ``windows`` (n, seq_len + 1)."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=windows.device)
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        with autocast or contextlib.nullcontext():
            loss = model(chunk[:, :-1], chunk[:, 1:])
        total += loss.double() * len(chunk)
    model.train(was_training)
    return float(total / len(windows))
