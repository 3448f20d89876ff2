"""The named model sizes (no torch import: run ids and labels need them before any model is built)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cbs.config import ModelConfig

# The paper's sizes (width × layers, head_dim 64, seq len 512) and a CPU family with the same shape rules
# (MLP 4d, untied embeddings, QK-norm) whose non-embedding N is near the name.
PRESETS: dict[str, dict[str, int]] = {
    "tiny-16k": {"d_model": 24, "n_layers": 2, "n_heads": 2, "seq_len": 128},  # N = 14,040
    "tiny-64k": {"d_model": 48, "n_layers": 2, "n_heads": 3, "seq_len": 128},  # N = 55,728
    "tiny-250k": {"d_model": 80, "n_layers": 3, "n_heads": 5, "seq_len": 128},  # N = 231,440
    "tiny-1m": {"d_model": 128, "n_layers": 5, "n_heads": 8, "seq_len": 128},  # N = 985,728
    # seq len 64: the CPU reproduction family (results/README.md), small enough for many optimizer steps
    "micro-4k": {"d_model": 12, "n_layers": 2, "n_heads": 1, "seq_len": 64},  # N = 3,564
    "micro-6k": {"d_model": 16, "n_layers": 2, "n_heads": 2, "seq_len": 64},  # N = 6,288
    "micro-14k": {"d_model": 24, "n_layers": 2, "n_heads": 2, "seq_len": 64},  # N = 14,040
    "micro-37k": {"d_model": 32, "n_layers": 3, "n_heads": 2, "seq_len": 64},  # N = 37,280
    "85M": {"d_model": 768, "n_layers": 12, "n_heads": 12, "seq_len": 512},
    "151M": {"d_model": 1024, "n_layers": 12, "n_heads": 16, "seq_len": 512},
    "302M": {"d_model": 1024, "n_layers": 24, "n_heads": 16, "seq_len": 512},
    "604M": {"d_model": 2048, "n_layers": 12, "n_heads": 32, "seq_len": 512},
    "1.2B": {"d_model": 2048, "n_layers": 24, "n_heads": 32, "seq_len": 512},
}
DEFAULT_MLP_RATIO = 4.0
SHAPE_FIELDS = ("d_model", "n_layers", "n_heads", "mlp_ratio", "seq_len")


def preset_shape(preset: str) -> dict[str, Any]:
    """The shape fields of a preset (mlp_ratio included); empty for an unknown preset."""
    base = PRESETS.get(preset)
    return {"mlp_ratio": DEFAULT_MLP_RATIO, **base} if base else {}


def canonical_model(cfg: ModelConfig) -> dict[str, Any]:
    """``cfg`` as a dict with every shape field that restates its preset's value set to None, so that two
    configs of the same model (``model.n_heads: 2`` stated for tiny-16k, or not) give the same run id."""
    out = dataclasses.asdict(cfg)
    for name, value in preset_shape(cfg.preset).items():
        if out[name] == value:
            out[name] = None
    return out


def model_label(cfg: ModelConfig) -> str:
    """The preset's name, or ``custom(d48-l2-h3-s128)`` (``-m<ratio>`` where the MLP ratio is not 4) where a
    shape field differs from the preset: a custom size never carries a preset's name."""
    canon = canonical_model(cfg)
    if all(canon[name] is None for name in SHAPE_FIELDS):
        return cfg.preset
    shape = {
        **preset_shape(cfg.preset),
        **{k: v for k, v in canon.items() if k in SHAPE_FIELDS and v is not None},
    }
    mlp = "" if shape["mlp_ratio"] == DEFAULT_MLP_RATIO else f"-m{shape['mlp_ratio']:g}"
    return f"custom(d{shape['d_model']}-l{shape['n_layers']}-h{shape['n_heads']}-s{shape['seq_len']}{mlp})"
