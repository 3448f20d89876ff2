"""Published batch-size laws bundled with cbs, each with its source, units and the range it was measured on.

Every law maps a planned run (N non-embedding parameters, D tokens, its shape) to a batch in sequences of the
law's own length (``law_seq_len``) or in tokens; `cbs.advise.forecast` turns that into the user's units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cbs.errors import ConfigError


@dataclass(frozen=True)
class PlannedRun:
    """The run a forecast is for: N (non-embedding parameters), D (tokens), sequence length, and optionally
    its depth and width (DeepSeek's FLOPs per token need them; without them the attention term is left out)."""

    n_params: float
    tokens: float
    seq_len: int
    n_layers: int | None = None
    d_model: int | None = None

    def flops_per_token(self) -> float:
        """DeepSeek's M = 72·L·d² + 6·L·d·seq (= 6·N + attention for N = 12·L·d²); 6·N without L and d."""
        if self.n_layers is None or self.d_model is None:
            return 6.0 * self.n_params
        return 72.0 * self.n_layers * self.d_model**2 + 6.0 * self.n_layers * self.d_model * self.seq_len


@dataclass(frozen=True)
class Validity:
    """The range a law was fitted on: each entry (quantity, lower, upper) over `quantities` of a run."""

    ranges: tuple[tuple[str, float, float], ...]

    def outside(self, values: dict[str, float]) -> list[str]:
        """One message per quantity of ``values`` outside its range (empty when the run is inside)."""
        return [
            f"{name} = {values[name]:.4g} is outside the law's measured range [{lo:.4g}, {hi:.4g}]"
            for name, lo, hi in self.ranges
            if not lo <= values[name] <= hi
        ]


@dataclass(frozen=True)
class PublishedLaw:
    """A bundled law: ``batch(run)`` in ``unit`` ("sequences" of ``law_seq_len`` tokens, or "tokens"), the kind of
    batch it predicts (a critical batch with its protocol's ``b_opt``, or an optimal batch), and its source."""

    name: str
    kind: str  # "critical" (Zhang et al.'s B*, overhead 0.2 over b_opt) | "optimal" (loss-optimal batch)
    formula: str
    unit: str  # "sequences" | "tokens"
    law_seq_len: int  # the sequence length the law's sequences (and its fits) used
    source: str
    validity: Validity
    batch: Callable[[PlannedRun], float]
    b_opt: float | None = None  # critical laws: the protocol's reference batch (sequences)
    extras: Callable[[PlannedRun], dict[str, float]] | None = None

    def quantities(self, run: PlannedRun) -> dict[str, float]:
        """The run's values of the quantities the validity ranges name."""
        return {
            "n_params_millions": run.n_params / 1e6,
            "tokens_per_param": run.tokens / run.n_params,
            "tokens": run.tokens,
            "compute_flops": run.flops_per_token() * run.tokens,
        }


ZHANG = (
    "Zhang, Morwani, Vyas et al., 'How Does Critical Batch Size Scale in Pre-training?', ICLR 2025 "
    "(arXiv 2410.21676), with the coefficients of the authors' notebook"
)
ZHANG_MODELS = ("n_params_millions", 85.0, 1208.0)  # their 85M .. 1.2B models

LAWS: dict[str, PublishedLaw] = {
    law.name: law
    for law in (
        PublishedLaw(
            name="zhang2024-chinchilla",
            kind="critical",
            formula="B* = 93.1968 · N^0.46828 (N in millions, D = 20·N)",
            unit="sequences",
            law_seq_len=512,
            source=ZHANG + "; the paper rounds it to 93.20·N^0.47",
            validity=Validity((ZHANG_MODELS, ("tokens_per_param", 10.0, 40.0))),
            batch=lambda r: 93.1968 * (r.n_params / 1e6) ** 0.46828,
            b_opt=256.0,
        ),
        PublishedLaw(
            name="zhang2024-fixed-data",
            kind="critical",
            formula="B* = 621.341 · N^0.087 (N in millions, D = 3.07B tokens)",
            unit="sequences",
            law_seq_len=512,
            source=ZHANG + " (fixed data size 3.07B tokens)",
            validity=Validity((ZHANG_MODELS, ("tokens", 2.5e9, 3.7e9))),
            batch=lambda r: 621.341 * (r.n_params / 1e6) ** 0.087,
            b_opt=256.0,
        ),
        PublishedLaw(
            name="deepseek2024",
            kind="optimal",
            formula="B_opt = 0.2920 · C^0.3271 tokens, C = M·D, M = 72·L·d² + 6·L·d·seq FLOPs/token",
            unit="tokens",
            law_seq_len=4096,
            source="DeepSeek-AI, 'DeepSeek LLM: Scaling Open-Source Language Models with Longtermism', 2024 "
            "(arXiv 2401.02954), fitted on near-optimal configurations at budgets 1e17 .. 3e20 FLOPs",
            validity=Validity((("compute_flops", 1e17, 3e20),)),
            batch=lambda r: 0.2920 * (r.flops_per_token() * r.tokens) ** 0.3271,
            extras=lambda r: {"lr_opt": 0.3118 * (r.flops_per_token() * r.tokens) ** -0.1250},
        ),
    )
}


def published_law(name: str) -> PublishedLaw:
    """The bundled law ``name``; ConfigError listing the known ones otherwise."""
    if name not in LAWS:
        raise ConfigError(f"unknown law {name!r}; known laws: {', '.join(LAWS)}")
    return LAWS[name]
