"""Seesaw on the exact testbed: a step-decay SGD schedule against its batch-growing twin, at equal samples.

Seesaw (Meterez et al. 2025, arXiv 2510.14717): wherever a scheduler multiplies the lr by α < 1, use √α·lr and a
1/α larger batch instead (Adam); for SGD, growing the batch by 1/α at the same lr is the twin (noise per sample
γ²/B² falls as with a cut, while the drift per sample γ/B falls alike). Risks are exact expectations (the
recursion of `cbs.theory.recursion` for the last iterate), so the comparison has no sampling noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypedDict

import numpy as np

from cbs.errors import ConfigError
from cbs.theory.problem import PowerLawProblem
from cbs.theory.recursion import stable


@dataclass(frozen=True)
class Phase:
    """``samples`` fresh samples at batch ``batch`` and step ``lr`` (samples a multiple of batch)."""

    batch: int
    lr: float
    samples: int

    @property
    def steps(self) -> int:
        return self.samples // self.batch


def step_decay(lr: float, batch: int, samples: int, cuts: int, factor: float = 0.5) -> list[Phase]:
    """``cuts + 1`` phases of equal samples at batch ``batch``; the lr is multiplied by ``factor`` at each cut."""
    if cuts < 0 or not 0 < factor < 1:
        raise ConfigError(f"need cuts >= 0 and 0 < factor < 1, got cuts={cuts}, factor={factor}")
    per, rest = divmod(samples, cuts + 1)
    if rest or per % (batch * round(1 / factor) ** cuts):
        raise ConfigError(
            f"samples={samples} must split into {cuts + 1} equal phases whose length divides by the largest "
            f"Seesaw batch {batch}·{round(1 / factor)}^{cuts}; pick a power of two"
        )
    return [Phase(batch, lr * factor**k, per) for k in range(cuts + 1)]


def seesaw_twin(phases: Sequence[Phase], rule: str = "sgd") -> list[Phase]:
    """The Seesaw twin of a decaying schedule: where the lr falls by α, the batch grows by 1/α (integer) and the
    lr is kept (``rule="sgd"``) or multiplied by √α (``rule="adam"``, the paper's rule for Adam-type updates)."""
    if rule not in ("sgd", "adam"):
        raise ConfigError(f"unknown Seesaw rule {rule!r}; known: sgd, adam")
    out = [phases[0]]
    for prev, cur in zip(phases, phases[1:], strict=False):
        alpha = cur.lr / prev.lr
        growth = 1 / alpha
        if abs(growth - round(growth)) > 1e-9 or round(growth) < 1:
            raise ConfigError(
                f"an lr change by {alpha:g} is not 1/integer: Seesaw needs integer batch ratios"
            )
        last = out[-1]
        lr = last.lr * (np.sqrt(alpha) if rule == "adam" else 1.0)
        out.append(Phase(last.batch * round(growth), float(lr), cur.samples))
    return out


class SeesawCheck(TypedDict):
    """`seesaw_check`'s comparison (the JSON of `cbs theory seesaw --json`)."""

    problem: dict[str, Any]  # the PowerLawProblem's fields
    samples: int
    risk_decay: float
    risk_seesaw: float
    risk_ratio: float  # seesaw / decay
    steps_decay: int
    steps_seesaw: int
    steps_saved: float  # fraction of the decay schedule's serial steps
    schedule_decay: list[dict[str, Any]]  # Phase fields
    schedule_seesaw: list[dict[str, Any]]
    normalised_sgd: None
    normalised_sgd_note: str


def exact_risk(problem: PowerLawProblem, phases: Sequence[Phase]) -> float:
    """Expected excess risk ½Σλ_i c_i of the last iterate after the phases (one-pass SGD from w_0 = 0)."""
    lam = problem.eigenvalues
    c = problem.target_sq.copy()
    for ph in phases:
        if ph.samples % ph.batch:
            raise ConfigError(f"phase samples {ph.samples} do not divide by its batch {ph.batch}")
        if not stable(problem, np.array([ph.batch]), np.array([ph.lr]))[0]:
            raise ConfigError(f"lr {ph.lr:g} at batch {ph.batch} is unstable on this problem; lower the lr")
        alpha = (1 - ph.lr * lam) ** 2 + (ph.lr * lam) ** 2 / ph.batch
        beta = ph.lr**2 / ph.batch
        for _ in range(ph.steps):
            c = alpha * c + beta * (lam @ c + problem.noise_var) * lam
    return 0.5 * float(lam @ c)


def seesaw_check(
    problem: PowerLawProblem, lr: float, batch: int, samples: int, cuts: int, factor: float = 0.5
) -> SeesawCheck:
    """Step decay vs its SGD Seesaw twin at equal samples: risks, serial steps, their ratios and the schedules."""
    decay = step_decay(lr, batch, samples, cuts, factor)
    twin = seesaw_twin(decay, "sgd")
    risk_decay, risk_seesaw = exact_risk(problem, decay), exact_risk(problem, twin)
    steps_decay, steps_seesaw = sum(p.steps for p in decay), sum(p.steps for p in twin)
    return {
        "problem": asdict(problem),
        "samples": samples,
        "risk_decay": risk_decay,
        "risk_seesaw": risk_seesaw,
        "risk_ratio": risk_seesaw / risk_decay,
        "steps_decay": steps_decay,
        "steps_seesaw": steps_seesaw,
        "steps_saved": 1 - steps_seesaw / steps_decay,
        "schedule_decay": [asdict(p) for p in decay],
        "schedule_seesaw": [asdict(p) for p in twin],
        "normalised_sgd": None,
        "normalised_sgd_note": "not computed: the exact recursion covers plain SGD; a normalised (Adam-proxy) "
        "update is not linear in the gradient, so its second moments do not close",
    }
