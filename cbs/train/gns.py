"""In-run gradient noise scale (McCandlish et al. 2018, arXiv 1812.06162) from gradients at two batch sizes.

A step that averages gradients already sees them at two batch sizes: the micro-batch gradient G_s (b_small,
with gradient accumulation) or the per-rank gradient before the all-reduce (b_small, with data parallelism),
and the step's gradient G_b (b_big, the global batch). Since E|G_B|² = |G|² + tr(Σ)/B,

    |G|²  ≈ (b_big·|G_b|² − b_small·|G_s|²) / (b_big − b_small)
    tr(Σ) ≈ (|G_s|² − |G_b|²) / (1/b_small − 1/b_big)

are unbiased per step. Each is smoothed by a bias-corrected EMA, m_t = β m_{t−1} + (1 − β) x_t reported as
m_t / (1 − β^t) (β = ``gns.ema_decay`` per optimizer step), and B_simple = tr(Σ)/|G|² is the ratio of the
two averages (never an average of per-step ratios, which is biased). Batch sizes are in sequences.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

from cbs.train.distributed import Ranks

T = TypeVar("T", float, np.ndarray, torch.Tensor)  # anything with elementwise arithmetic


def unbiased_estimates(sq_small: T, sq_big: T, b_small: float, b_big: float) -> tuple[T, T]:
    """(|G|², tr Σ) estimated from squared gradient norms at batch sizes b_small < b_big; unbiased when
    E|G_B|² = |G|² + tr(Σ)/B at both sizes. Works elementwise on floats, numpy arrays and tensors."""
    grad_sq = (b_big * sq_big - b_small * sq_small) / (b_big - b_small)
    trace = (sq_small - sq_big) / (1.0 / b_small - 1.0 / b_big)
    return grad_sq, trace


def b_simple(trace: float, grad_sq: float) -> float | None:
    """tr Σ / |G|², or None where the |G|² estimate is not positive (noise swamps the signal)."""
    return trace / grad_sq if grad_sq > 0 else None


class GNSTracker:
    """Bias-corrected EMAs of the two estimators and interval sums of |G_s|², |G_b|², kept on the device.

    ``update`` launches a few tiny kernels and never waits for the device; ``read`` (at evaluations, which
    sync anyway) brings everything to the host once, averages over ranks, and starts a new interval. Each
    step brings its own batch sizes (a batch schedule changes them); the columns report the latest. With
    ``replicas`` = n, every quantity is tracked for n independent runs at once (the theory testbed's seeds).
    """

    def __init__(
        self,
        decay: float,
        device: torch.device,
        *,
        replicas: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.decay = decay
        # [EMA |G|², EMA tr Σ, Σ|G_s|², Σ|G_b|², steps in the interval] (× replicas)
        shape = (5,) if replicas is None else (5, replicas)
        self.state = torch.zeros(shape, dtype=dtype, device=device)
        self.steps = 0  # optimizer steps seen (the EMA's bias correction is 1 − β^steps)
        self.b_small: int | None = None  # the latest step's batch sizes
        self.b_big: int | None = None

    def update(self, sq_small: torch.Tensor, sq_big: torch.Tensor, b_small: int, b_big: int) -> None:
        """Add one step's squared gradient norms at batch sizes b_small < b_big (0-dim tensors on the
        device, or one value per replica)."""
        estimates = torch.stack(unbiased_estimates(sq_small, sq_big, b_small, b_big))
        self.state[:2].mul_(self.decay).add_(estimates.to(self.state.dtype), alpha=1.0 - self.decay)
        self.state[2:4].add_(torch.stack([sq_small, sq_big]).to(self.state.dtype))
        self.state[4].add_(1.0)
        self.steps += 1
        self.b_small, self.b_big = b_small, b_big

    def averages(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The bias-corrected EMAs (|G|², tr Σ) on the device (per replica); NaN before the first step."""
        correction = 1.0 - self.decay**self.steps
        return self.state[0] / correction, self.state[1] / correction

    def read(self, ranks: Ranks) -> dict[str, float | int | None]:
        """The curve columns at an evaluation (every rank must call it); interval means are over the steps
        since the previous call (None if there were none, and the EMAs None before the first step).

        The estimators are linear in |G_s|², so the mean over ranks (and replicas) is the pooled estimate.
        Every rank continues from the pooled EMAs, so the rank-0 checkpoint written after an evaluation
        holds the whole run's state.
        """
        pooled = ranks.mean(self.state.reshape(5, -1).mean(1))
        if self.state.dim() == 1:
            self.state[:2] = pooled[:2]
        self.state[2:] = 0.0
        ema_grad_sq, ema_trace, sum_small, sum_big, n = pooled.tolist()
        grad_sq = trace = ratio = None
        if self.steps:
            correction = 1.0 - self.decay**self.steps
            grad_sq, trace = ema_grad_sq / correction, ema_trace / correction
            ratio = b_simple(trace, grad_sq)
        return {
            "grad_sq_small": sum_small / n if n else None,
            "grad_sq_big": sum_big / n if n else None,
            "b_small": self.b_small,
            "b_big": self.b_big,
            "gns_trace": trace,
            "gns_grad_sq": grad_sq,
            "b_simple": ratio,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state.cpu(), "steps": self.steps, "b_small": self.b_small, "b_big": self.b_big}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state.copy_(state["state"])
        self.steps = int(state["steps"])
        self.b_small, self.b_big = state["b_small"], state["b_big"]


COLUMNS = ("grad_sq_small", "grad_sq_big", "b_small", "b_big", "gns_trace", "gns_grad_sq", "b_simple")


class GradientProbe:
    """Feeds a GNSTracker from a training step without extra forward or backward passes.

    One rank with gradient accumulation: G_s is the first micro-batch's gradient (its norm is read right
    after that backward, while the gradient holds it alone: one extra norm per step). Several ranks: G_s is
    each rank's accumulated gradient, read by a DDP communication hook just before the all-reduce (the
    ranks' EMAs are averaged at ``read``). G_b is the step's pre-clip gradient, whose norm the step computes
    anyway. A step with one batch size only (one rank, one micro-batch) is left out.
    """

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        tracker: GNSTracker,
        micro_batch_size: int,
        ddp: torch.nn.parallel.DistributedDataParallel | None,
    ) -> None:
        self.params, self.tracker, self.micro_batch_size = params, tracker, micro_batch_size
        self.parts: list[torch.Tensor] = []  # this step's pieces of |G_s|² (per micro-batch: unscaled)
        self.world = ddp.process_group.size() if ddp is not None else 1
        if ddp is not None:
            ddp.register_comm_hook(None, self._hook)

    @classmethod
    def for_run(
        cls,
        model: torch.nn.Module,
        ddp: torch.nn.parallel.DistributedDataParallel | None,
        *,
        enabled: bool,
        decay: float,
        max_batch_size: int,
        micro_batch_size: int,
        device: torch.device,
    ) -> GradientProbe | None:
        """The probe of a run, or None when disabled or when no step sees two batch sizes (one rank and
        one micro-batch per step at the largest global batch ``max_batch_size``)."""
        if not enabled or (ddp is None and max_batch_size <= micro_batch_size):
            return None
        tracker = GNSTracker(decay, device)
        return cls([p for p in model.parameters() if p.requires_grad], tracker, micro_batch_size, ddp)

    def _hook(self, state, bucket):  # unannotated: DDP refuses the postponed (string) annotations
        self.parts.append(torch.linalg.vector_norm(bucket.buffer(), dtype=torch.float32).square())
        return default_hooks.allreduce_hook(state, bucket)

    def after_backward(self, *, first: bool) -> None:
        """Call after each micro-batch's backward: reads G_s after the first one (one rank)."""
        if self.world > 1 or not first:
            return
        grads = [p.grad for p in self.params if p.grad is not None]
        self.parts.append(torch.nn.utils.get_total_norm(grads, foreach=True).float().square())

    def end_step(self, grad_norm: torch.Tensor, batch_size: int) -> None:
        """Call with the step's pre-clip gradient norm |G_b| and global batch, once the gradients are
        complete."""
        sq_small = torch.stack(self.parts).sum()
        self.parts.clear()
        if self.world > 1:
            b_small = batch_size // self.world
        else:
            b_small = self.micro_batch_size
            sq_small = sq_small * (batch_size // b_small) ** 2  # the loss was divided by n_micro
        if b_small < batch_size:
            self.tracker.update(sq_small, grad_norm.float().square(), b_small, batch_size)


def gns_columns(probe: GradientProbe | None, ranks: Ranks) -> dict[str, float | int | None]:
    """The GNS curve columns at an evaluation (all None for a run without a probe)."""
    return probe.tracker.read(ranks) if probe is not None else dict.fromkeys(COLUMNS)
