"""The decoder-only transformer of the paper (OLMo style) and its named size presets.

Architecture: token embedding → ``n_layers`` pre-norm blocks → final LayerNorm → untied output head. Each block
is ``x + attn(ln1(x))`` then ``x + mlp(ln2(x))``; attention uses RoPE, QK-LayerNorm (over the full width, as
OLMo does) and ``F.scaled_dot_product_attention(is_causal=True)``; the MLP is ``d → mlp_ratio·d → d`` with
GeLU. No biases anywhere (LayerNorms have a weight and no bias). Init as nanoGPT: normal(0, 0.02), residual
output projections normal(0, 0.02/√(2·n_layers)), LayerNorm weights 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from cbs.errors import ConfigError
from cbs.presets import DEFAULT_MLP_RATIO, PRESETS, model_label

if TYPE_CHECKING:
    from cbs.config import ModelConfig


@dataclass(frozen=True)
class ModelSpec:
    """Resolved dimensions of one model."""

    d_model: int
    n_layers: int
    n_heads: int
    mlp_ratio: float
    seq_len: int
    vocab_size: int
    rope_theta: float = 10000.0
    qk_norm: bool = True
    preset: str = "custom"

    @property
    def d_mlp(self) -> int:
        return int(round(self.mlp_ratio * self.d_model))

    @property
    def n_params(self) -> int:
        """Non-embedding parameters, the paper's N: every weight of the blocks (attention q/k/v/out, MLP up/down,
        the two LayerNorm weights and, with qk_norm, the q and k LayerNorm weights) plus the final LayerNorm
        weight. Excludes the token embedding and the output head (vocab_size·d_model each)."""
        d = self.d_model
        per_block = 4 * d * d + 2 * d * self.d_mlp + 2 * d + (2 * d if self.qk_norm else 0)
        return self.n_layers * per_block + d

    @property
    def embedding_params(self) -> int:
        """Token embedding plus the untied output head."""
        return 2 * self.vocab_size * self.d_model

    @property
    def total_params(self) -> int:
        return self.n_params + self.embedding_params

    @property
    def flops_per_token(self) -> float:
        """Training FLOPs per token, Kaplan et al. (2020) convention: 6·N for the forward+backward matmuls of
        the non-embedding weights plus the attention scores, 6·n_layers·seq_len·d_model (3 × the forward's
        2·n_layers·n_ctx·d, which counts the causal half of QKᵀ and AV). The output head is not counted, as in
        Kaplan's C ≈ 6N (see ``model_flops_per_token`` for the count MFU uses)."""
        return 6.0 * self.n_params + 6.0 * self.n_layers * self.seq_len * self.d_model

    @property
    def model_flops_per_token(self) -> float:
        """``flops_per_token`` plus the output head's matmul, 6·vocab·d_model: the work the hardware does per
        token, which MFU is measured against (the embedding lookup is not a matmul and is not counted)."""
        return self.flops_per_token + 6.0 * self.vocab_size * self.d_model


def resolve_model_config(cfg: ModelConfig, vocab_size: int) -> ModelSpec:
    """Fill a ModelConfig from its preset; ``cfg.vocab_size`` (if set) overrides the tokenizer's ``vocab_size``."""
    if cfg.preset not in PRESETS:
        raise ConfigError(f"unknown model preset {cfg.preset!r}; presets: {', '.join(PRESETS)}")
    base = PRESETS[cfg.preset]

    def pick(name: str, default: float | None = None) -> float:
        value = getattr(cfg, name)
        if value is None:
            value = base.get(name, default)
        if value is None:
            raise ConfigError(f"model.{name} is not set and preset {cfg.preset!r} has none; set model.{name}")
        return value

    spec = ModelSpec(
        d_model=int(pick("d_model")),
        n_layers=int(pick("n_layers")),
        n_heads=int(pick("n_heads")),
        mlp_ratio=float(pick("mlp_ratio", DEFAULT_MLP_RATIO)),
        seq_len=int(pick("seq_len")),
        vocab_size=int(cfg.vocab_size if cfg.vocab_size is not None else vocab_size),
        rope_theta=float(cfg.rope_theta),
        qk_norm=bool(cfg.qk_norm),
        preset=model_label(cfg),
    )
    for name in ("d_model", "n_layers", "n_heads", "seq_len", "vocab_size"):
        if getattr(spec, name) < 1:
            raise ConfigError(f"model.{name} must be >= 1, got {getattr(spec, name)}")
    if spec.d_model % spec.n_heads:
        raise ConfigError(
            f"model.d_model={spec.d_model} is not divisible by model.n_heads={spec.n_heads}; "
            "pick n_heads dividing d_model (the paper uses head_dim 64)"
        )
    if (spec.d_model // spec.n_heads) % 2:
        raise ConfigError(
            f"head_dim {spec.d_model // spec.n_heads} must be even for RoPE; change model.n_heads"
        )
    if spec.mlp_ratio <= 0:
        raise ConfigError(f"model.mlp_ratio must be > 0, got {spec.mlp_ratio}")
    if vocab_size > spec.vocab_size:
        raise ConfigError(
            f"model.vocab_size={spec.vocab_size} is smaller than the tokenizer's {vocab_size}; "
            "leave it unset to use the tokenizer's"
        )
    return spec


def build_model(spec: ModelSpec) -> Transformer:
    """A freshly initialised `Transformer` for ``spec`` (uses the global torch RNG: seed before calling)."""
    return Transformer(spec)


class LayerNorm(nn.LayerNorm):
    """LayerNorm with a weight and no bias."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, bias=False)


class Rotary(nn.Module):
    """Rotary position embedding (rotate-half form) with a cos/sin cache of ``seq_len`` positions."""

    cos: torch.Tensor  # buffers, (seq_len, head_dim)
    sin: torch.Tensor

    def __init__(self, head_dim: int, seq_len: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, heads, time, head_dim)
        t = x.shape[-2]
        x1, x2 = x.chunk(2, dim=-1)
        rotated = torch.cat([-x2, x1], dim=-1)
        return x * self.cos[:t].to(x.dtype) + rotated * self.sin[:t].to(x.dtype)


class Attention(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        d = spec.d_model
        self.n_heads = spec.n_heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.q_norm = LayerNorm(d) if spec.qk_norm else nn.Identity()
        self.k_norm = LayerNorm(d) if spec.qk_norm else nn.Identity()
        self.rotary = Rotary(d // spec.n_heads, spec.seq_len, spec.rope_theta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        q, k = self.rotary(q), self.rotary(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.up = nn.Linear(spec.d_model, spec.d_mlp, bias=False)
        self.proj = nn.Linear(spec.d_mlp, spec.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.ln1 = LayerNorm(spec.d_model)
        self.attn = Attention(spec)
        self.ln2 = LayerNorm(spec.d_model)
        self.mlp = MLP(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """``forward(idx, targets=None)`` returns logits (batch, time, vocab), or the mean cross-entropy loss."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.embed = nn.Embedding(spec.vocab_size, spec.d_model)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.n_layers))
        self.ln_f = LayerNorm(spec.d_model)
        self.head = nn.Linear(spec.d_model, spec.vocab_size, bias=False)
        residual_std = 0.02 / math.sqrt(2 * spec.n_layers)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=residual_std if name.endswith("proj.weight") else 0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits
        return cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


CE_CHUNK_ELEMENTS = 2**25  # logits per cross-entropy chunk: 128 MiB in float32


def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, chunk_elements: int = CE_CHUNK_ELEMENTS
) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` (rows, vocab) in any float dtype, computed in float32.

    Logits of more than ``chunk_elements`` are not upcast in full: the loss is summed over chunks of rows, each
    upcast and recomputed in the backward (activation checkpointing), so float32 copies of one chunk exist at
    a time instead of the upcast and log-softmax of every row. Equal to the one-piece loss up to the order
    of the float32 sum; smaller logits take the one-piece path."""
    rows = max(1, chunk_elements // logits.size(-1))
    if len(logits) <= rows:
        return F.cross_entropy(logits.float(), targets)
    total = sum(
        checkpoint(_cross_entropy_sum, logits[i : i + rows], targets[i : i + rows], use_reentrant=False)
        for i in range(0, len(logits), rows)
    )
    return total / len(targets)


def _cross_entropy_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), targets, reduction="sum")
