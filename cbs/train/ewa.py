"""Bias-corrected exponentially weighted average (EWA) of the weights, as the paper evaluates.

After each optimizer step t: ξ ← τ·ξ + (1−τ)·θ with ξ₀ = 0, and the evaluated weights are ξ / (1 − τ^t), the
properly normalised weighted mean of θ₁..θ_t. One fused ``_foreach_lerp_`` per step keeps the cost low.
"""

from __future__ import annotations

import torch
from torch import nn


class EWA:
    """EWA of ``model``'s (float32) parameters."""

    def __init__(self, model: nn.Module, tau: float) -> None:
        if not 0.0 <= tau < 1.0:
            raise ValueError(f"ewa tau must be in [0, 1), got {tau}")
        self.tau = tau
        self.params = [p.detach() for p in model.parameters()]  # views that follow in-place updates
        self.shadow = [torch.zeros_like(p, dtype=torch.float32) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def update(self) -> None:
        self.t += 1
        torch._foreach_lerp_(self.shadow, self.params, 1.0 - self.tau)

    @property
    def correction(self) -> float:
        """1 / (1 − τ^t): the bias-correction factor."""
        return 1.0 / (1.0 - self.tau**self.t)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the bias-corrected average into ``model`` (same architecture)."""
        if self.t == 0:
            raise RuntimeError("EWA has no update yet")
        targets = list(model.parameters())
        torch._foreach_copy_(targets, torch._foreach_mul(self.shadow, self.correction))

    def state_dict(self) -> dict:
        return {"tau": self.tau, "t": self.t, "shadow": [s.clone() for s in self.shadow]}

    def load_state_dict(self, state: dict) -> None:
        self.tau, self.t = float(state["tau"]), int(state["t"])
        for s, saved in zip(self.shadow, state["shadow"], strict=True):
            s.copy_(saved)
