"""Batch-size schedules: a run's global batch as a function of the tokens it has trained on.

A schedule is a list of stages ``{at_tokens, batch_size}`` (the first at 0). Stage k starts at the first step
boundary at or after its ``at_tokens``, so every step trains one whole batch; consecutive batch sizes are in an
integer ratio. At each change the lr is rescaled by ``lr_rule``: ``sqrt`` multiplies it by √(B/B₀) (Adam-type),
``linear`` by B/B₀ (SGD), ``none`` leaves it. Generators: `batch_ramp` (Merrill et al. 2025's batch warmup) and
`seesaw` (Meterez et al. 2025: where a step-decay schedule would multiply the lr by α, the batch grows by 1/α and,
with the ``sqrt`` rule, the lr is multiplied by √α overall).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from cbs.config import BatchStage
from cbs.errors import ConfigError

LR_RULES = {"sqrt": 0.5, "linear": 1.0, "none": 0.0}


@dataclass(frozen=True)
class BatchPlan:
    """The batch of every step of a run: stage k runs steps ``starts[k] + 1 .. starts[k + 1]`` at ``batches[k]``
    sequences of ``seq_len`` tokens; ``steps`` in all. A run without a schedule is one stage."""

    starts: tuple[int, ...]  # step count before each stage (starts[0] = 0)
    batches: tuple[int, ...]
    steps: int
    seq_len: int
    lr_rule: str = "none"

    def stage(self, step: int) -> int:
        """Index of the stage that trains step ``step`` (1-based)."""
        return bisect.bisect_right(self.starts, step - 1) - 1

    def batch_at(self, step: int) -> int:
        """Global batch (sequences) of step ``step``."""
        return self.batches[self.stage(step)]

    def lr_factor(self, step: int) -> float:
        """(B/B₀)^p at step ``step``: p = ½ (sqrt), 1 (linear) or 0 (none)."""
        return (self.batch_at(step) / self.batches[0]) ** LR_RULES[self.lr_rule]

    def tokens_after(self, step: int) -> int:
        """Tokens trained after ``step`` steps (past ``steps``, the last stage goes on)."""
        total = 0
        for k, batch in enumerate(self.batches):
            start = self.starts[k]
            end = self.starts[k + 1] if k + 1 < len(self.starts) else step
            total += max(0, min(step, end) - start) * batch * self.seq_len
        return total

    def step_at_tokens(self, tokens: float) -> int:
        """The fewest steps that train at least ``tokens`` tokens (ceil for one stage)."""
        step = 0
        for k, batch in enumerate(self.batches):
            end = self.starts[k + 1] if k + 1 < len(self.starts) else None
            need = math.ceil((tokens - self.tokens_after(step)) / (batch * self.seq_len))
            if end is None or step + need <= end:
                return step + max(need, 0)
            step = end
        return step

    def steps_within(self, tokens: float) -> int:
        """The most steps whose tokens stay within ``tokens`` (floor for one stage)."""
        step = self.step_at_tokens(tokens)
        return step if self.tokens_after(step) <= tokens else step - 1

    @property
    def sequences(self) -> int:
        """Sequences the whole run draws."""
        return self.tokens_after(self.steps) // self.seq_len


def plan_batches(
    stages: Sequence[BatchStage] | None,
    batch_size: int,
    token_budget: int,
    seq_len: int,
    lr_rule: str,
    divisor: int,
) -> BatchPlan:
    """The run's `BatchPlan`, after checking the schedule: first stage at 0 tokens with ``batch_size``, stages in
    increasing tokens inside the budget, consecutive batch sizes in an integer ratio, each a multiple of
    ``divisor`` (ranks × micro-batch), a known ``lr_rule``. ConfigError names the stage and the fix."""
    if lr_rule not in LR_RULES:
        raise ConfigError(f"batch_lr_rule must be one of {sorted(LR_RULES)}, got {lr_rule!r}")
    if not stages:
        return BatchPlan((0,), (batch_size,), token_budget // (batch_size * seq_len), seq_len, lr_rule)
    if stages[0].at_tokens != 0 or stages[0].batch_size != batch_size:
        raise ConfigError(
            f"batch_schedule must start with {{at_tokens: 0, batch_size: {batch_size}}} (the run's batch_size); "
            f"got {{at_tokens: {stages[0].at_tokens}, batch_size: {stages[0].batch_size}}}"
        )
    for prev, cur in zip(stages, stages[1:], strict=False):
        if not prev.at_tokens < cur.at_tokens < token_budget:
            raise ConfigError(
                f"batch_schedule stage at_tokens={cur.at_tokens} must come after {prev.at_tokens} and before the "
                f"token budget {token_budget}; order the stages by at_tokens"
            )
        big, small = max(prev.batch_size, cur.batch_size), min(prev.batch_size, cur.batch_size)
        if small < 1 or big % small:
            raise ConfigError(
                f"batch_schedule changes the batch {prev.batch_size} -> {cur.batch_size} at {cur.at_tokens} tokens: "
                "consecutive batch sizes must be in an integer ratio (e.g. doublings)"
            )
    for s in stages:
        if s.batch_size % divisor:
            raise ConfigError(
                f"batch_schedule batch_size={s.batch_size} (at {s.at_tokens} tokens) must be a multiple of "
                f"{divisor} (parallel.workers × micro_batch_size); change the stage or micro_batch_size"
            )
    starts: list[int] = []
    steps = done = 0
    for k, s in enumerate(stages):
        starts.append(steps)
        batch_tokens = s.batch_size * seq_len
        end = stages[k + 1].at_tokens if k + 1 < len(stages) else token_budget
        # a stage ends at the first step boundary at or after the next stage's at_tokens; the last at the budget
        n = math.ceil((end - done) / batch_tokens) if k + 1 < len(stages) else (end - done) // batch_tokens
        if n < 1:
            raise ConfigError(
                f"batch_schedule stage at_tokens={s.at_tokens} (batch {s.batch_size}) is shorter than one of its "
                f"batches ({batch_tokens} tokens) once the earlier stages' whole steps are counted; spread the "
                "stages further apart or raise the token budget"
            )
        steps += n
        done += n * batch_tokens
    return BatchPlan(tuple(starts), tuple(s.batch_size for s in stages), steps, seq_len, lr_rule)


def batch_ramp(
    batch_size: int, at_fractions: Sequence[float], token_budget: int, factor: int = 2
) -> list[BatchStage]:
    """A batch ramp (Merrill et al. 2025's batch warmup): ``batch_size`` multiplied by ``factor`` at each
    fraction of the token budget in ``at_fractions``; use it with ``batch_lr_rule: sqrt`` (√factor lr per step up)."""
    if (
        factor < 2
        or not all(0 < f < 1 for f in at_fractions)
        or list(at_fractions) != sorted(set(at_fractions))
    ):
        raise ConfigError(
            f"a batch ramp needs an integer factor >= 2 and increasing fractions in (0, 1); got factor={factor}, "
            f"at={list(at_fractions)}"
        )
    return [
        BatchStage(0, batch_size),
        *(
            BatchStage(round(f * token_budget), batch_size * factor ** (k + 1))
            for k, f in enumerate(at_fractions)
        ),
    ]


@dataclass(frozen=True)
class Seesaw:
    """A step-decay lr schedule (×``factor`` at each fraction of ``cuts``) turned into its Seesaw twin: the
    config fields to set (``overrides``) so that at each cut the batch grows by 1/factor and the lr is multiplied
    by √factor (``rule="adam"``) or kept (``rule="sgd"``)."""

    batch_size: int
    cuts: tuple[float, ...]
    token_budget: int
    factor: float = 0.5
    rule: str = "adam"

    def overrides(self) -> dict[str, object]:
        """``batch_schedule``, ``batch_lr_rule``, and ``optim.schedule: step`` with the cuts: with the sqrt rule
        the lr at stage k is lr·factor^k·(1/factor)^{k/2} = lr·√factor^k; with the linear rule (SGD) it is lr."""
        growth = 1 / self.factor
        if abs(growth - round(growth)) > 1e-9 or round(growth) < 2:
            raise ConfigError(
                f"Seesaw needs 1/factor to be an integer >= 2 (batch ratios), got factor={self.factor}"
            )
        if self.rule not in ("adam", "sgd"):
            raise ConfigError(f"unknown Seesaw rule {self.rule!r}; known: adam (sqrt lr rule), sgd (linear)")
        stages = batch_ramp(self.batch_size, self.cuts, self.token_budget, round(growth))
        return {
            "batch_size": self.batch_size,
            "batch_schedule": [{"at_tokens": s.at_tokens, "batch_size": s.batch_size} for s in stages],
            "batch_lr_rule": "sqrt" if self.rule == "adam" else "linear",
            "optim": {"schedule": "step", "step_at": list(self.cuts), "step_factor": self.factor},
        }
