"""Bias-corrected exponentially weighted average (EWA) of the weights, as the paper evaluates.

After each optimizer step t: ξ ← τ·ξ + (1−τ)·θ with ξ₀ = 0, and the evaluated weights are ξ / (1 − τ^t), the
properly normalised weighted mean of θ₁..θ_t. One fused ``_foreach_lerp_`` per step keeps the cost low. Under
FSDP each rank averages its own shard of the parameters (the same numbers, element by element, as one process).
"""

from __future__ import annotations

import torch
from torch import nn

from cbs.train.fsdp import full, load_full, local


class EWA:
    """EWA of ``model``'s (float32) parameters, sharded as they are."""

    def __init__(self, model: nn.Module, tau: float) -> None:
        if not 0.0 <= tau < 1.0:
            raise ValueError(f"ewa tau must be in [0, 1), got {tau}")
        self.tau = tau
        self.shadow = [torch.zeros_like(p, dtype=torch.float32) for p in model.parameters()]
        # this rank's shards (views that follow the in-place updates of parameters and average alike)
        self.params = [local(p.detach()) for p in model.parameters()]
        self.local_shadow = [local(s) for s in self.shadow]
        self.t = 0

    @torch.no_grad()
    def update(self) -> None:
        self.t += 1
        torch._foreach_lerp_(self.local_shadow, self.params, 1.0 - self.tau)

    @property
    def correction(self) -> float:
        """1 / (1 − τ^t): the bias-correction factor."""
        return 1.0 / (1.0 - self.tau**self.t)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the bias-corrected average into ``model`` (same architecture, sharded alike)."""
        if self.t == 0:
            raise RuntimeError("EWA has no update yet")
        targets = [local(p) for p in model.parameters()]
        torch._foreach_copy_(targets, torch._foreach_mul(self.local_shadow, self.correction))

    def state_dict(self) -> dict:
        """The whole (unsharded) average; a collective under FSDP."""
        return {"tau": self.tau, "t": self.t, "shadow": [full(s) for s in self.shadow]}

    def load_state_dict(self, state: dict) -> None:
        self.tau, self.t = float(state["tau"]), int(state["t"])
        for s, saved in zip(self.shadow, state["shadow"], strict=True):
            load_full(s, saved)
