"""When to evaluate (log-spaced plus dense near the end) and the evaluation itself."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn

from cbs.config import EvalConfig


def eval_steps(steps: int, cfg: EvalConfig, data_steps: int | None = None) -> list[int]:
    """Sorted unique steps in 1..steps: ``n_log`` log-spaced ones, ``n_dense`` dense ones, and always the last.

    The dense ones cover the last ``dense_tail_fraction`` of the data budget ``data_steps`` (the steps of the
    cell's D; default ``steps``) and, for a stop-at-target run allowed past D (``steps > data_steps``), go on
    geometrically from there to ``steps``: the target is hit from about D on, so that is where
    steps-to-target needs the evaluations, not at the end of the token cap."""
    log_points: list[float] | np.ndarray = (
        np.logspace(0.0, math.log10(steps), max(cfg.n_log, 1)) if cfg.n_log > 0 else []
    )
    anchor = min(steps, data_steps or steps)
    tail_start = max(anchor * (1.0 - cfg.dense_tail_fraction), 1.0)
    if cfg.n_dense <= 0:
        dense: list[float] | np.ndarray = []
    elif anchor == steps:
        dense = np.linspace(tail_start, steps, cfg.n_dense)
    else:
        dense = np.geomspace(tail_start, steps, cfg.n_dense)
    points = {int(round(p)) for p in [*log_points, *dense]} | {steps}
    return sorted(p for p in points if 1 <= p <= steps)


@torch.no_grad()
def loss_sum(
    model: nn.Module,
    windows: torch.Tensor,
    batch_size: int,
    autocast: contextlib.AbstractContextManager | None = None,
    forwards: int = 0,
) -> torch.Tensor:
    """Sum over ``windows`` of each window's mean next-token cross-entropy, as a float64 scalar tensor (zero for
    no windows): a rank's share of a mean that ranks split. At least ``forwards`` forward calls are made (the
    extra ones on a dummy window, not counted), as FSDP ranks must all make the same number."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=windows.device)
    for i in range(0, max(len(windows), forwards * batch_size), batch_size):
        chunk = windows[i : i + batch_size]
        with autocast or contextlib.nullcontext():
            batch = chunk if len(chunk) else windows.new_zeros(1, windows.shape[1])
            loss = model(batch[:, :-1], batch[:, 1:])
        total += loss.double() * len(chunk)
    model.train(was_training)
    return total
