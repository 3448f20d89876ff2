"""The optimizer of a run, built from its ``OptimConfig``: one place that knows which optimizers exist and how
their parameter groups (weight decay on matrices only) are formed."""

from __future__ import annotations

import torch

from cbs.config import OptimConfig


def build_optimizer(model: torch.nn.Module, o: OptimConfig, beta2: float) -> torch.optim.Optimizer:
    """AdamW over ``model``'s parameters: weight decay on matrices (dim ≥ 2) only, β2 as resolved for the run's
    batch size, fused where ``o.fused`` asks for it (foreach otherwise)."""
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": matrices, "weight_decay": o.weight_decay}, {"params": others, "weight_decay": 0.0}],
        lr=o.lr,
        betas=(o.beta1, beta2),
        eps=o.eps,
        **({"fused": True} if o.fused else {"foreach": True}),
    )
