"""The paper's protocol defaults (Zhang et al. 2025, "How Does Critical Batch Size Scale in Pre-training?").

Per-batch-size tables for Adam's β2 and the EWA decay τ, the Chinchilla token rule, and the reference batch.
"""

from __future__ import annotations

CHINCHILLA_TOKENS_PER_PARAM = 20.0
B_OPT = 256  # reference batch size (sequences) whose best loss defines the target
CBS_OVERHEAD = 0.2  # the CBS is the largest B whose steps stay within (1 + o) of linear scaling

# (largest batch size the row applies to, value); the last row covers everything above.
_BETA2_TABLE = ((128, 0.999), (256, 0.995), (1024, 0.99), (float("inf"), 0.95))
_EWA_TAU_TABLE = ((512, 0.9995), (1024, 0.999), (2048, 0.998), (4096, 0.995), (float("inf"), 0.99))


def _lookup(table: tuple[tuple[float, float], ...], batch_size: int) -> float:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return next(value for upper, value in table if batch_size <= upper)


def paper_beta2(batch_size: int) -> float:
    """β2 the paper used at this batch size (sequences): 64–128: 0.999, 256: 0.995, 512–1024: 0.99, ≥2048: 0.95."""
    return _lookup(_BETA2_TABLE, batch_size)


def paper_ewa_tau(batch_size: int) -> float:
    """EWA decay τ the paper used at this batch size: ≤512: 0.9995, 1024: 0.999, 2048: 0.998, 4096: 0.995, else 0.99."""
    return _lookup(_EWA_TAU_TABLE, batch_size)


def chinchilla_tokens(n_params: int, multiple: float = 1.0) -> int:
    """Token budget ``multiple · 20 · N``, N the non-embedding parameter count."""
    return int(round(multiple * CHINCHILLA_TOKENS_PER_PARAM * n_params))
