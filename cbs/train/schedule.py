"""Learning-rate schedules: linear warmup, then constant (the paper's), cosine or WSD (warmup-stable-decay)."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

SCHEDULES = ("constant", "cosine", "wsd", "step")


@dataclass(frozen=True)
class LRSchedule:
    """``lr_at(step)`` for optimizer steps 1..steps: linear warmup to ``lr`` over ``warmup_steps``, then
    constant; cosine: cosine decay from the end of warmup to ``min_lr_ratio·lr`` at the last step;
    wsd: constant until the final ``decay_fraction`` of the steps, then linear decay to ``min_lr_ratio·lr``;
    step: ``lr·step_factor^k`` after the k-th of the ``step_cuts`` (step counts, the cut's step excluded)."""

    lr: float
    steps: int
    warmup_steps: int
    schedule: str = "constant"
    decay_fraction: float = 0.2
    min_lr_ratio: float = 0.0
    step_cuts: tuple[int, ...] = ()
    step_factor: float = 0.5

    def lr_at(self, step: int) -> float:
        if step <= self.warmup_steps:
            return self.lr * step / self.warmup_steps
        floor = self.min_lr_ratio * self.lr
        if self.schedule == "step":
            return self.lr * self.step_factor ** bisect.bisect_left(self.step_cuts, step)
        if self.schedule == "cosine":
            progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
            return floor + (self.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if self.schedule == "wsd":
            decay_steps = max(1, round(self.decay_fraction * self.steps))
            start = max(self.warmup_steps, self.steps - decay_steps)
            if step <= start:
                return self.lr
            return self.lr + (floor - self.lr) * min(1.0, (step - start) / max(1, self.steps - start))
        return self.lr
