"""The transformer and its presets: exact parameter/FLOP counts, shapes, causality, config errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cbs.config import ModelConfig
from cbs.errors import ConfigError
from cbs.model import PRESETS, ModelSpec, build_model, cross_entropy, resolve_model_config


def spec(preset: str, vocab: int = 256, **over) -> ModelSpec:
    return resolve_model_config(ModelConfig(preset=preset, **over), vocab)


def test_hand_counts_tiny_64k():
    s = spec("tiny-64k")
    d, layers = 48, 2
    per_block = 3 * d * d + d * d + 2 * 4 * d * d + 4 * d  # qkv, out, mlp up+down, ln1/ln2/q_norm/k_norm
    assert s.n_params == layers * per_block + d == 55_728
    assert s.total_params == s.n_params + 2 * 256 * d == 80_304
    assert s.flops_per_token == 6 * 55_728 + 6 * layers * 128 * d
    assert s.model_flops_per_token == s.flops_per_token + 6 * 256 * d


@pytest.mark.parametrize("preset", list(PRESETS))
def test_counts_match_the_module(preset):
    vocab = 256 if preset.startswith(("tiny", "micro")) else 50_304
    s = spec(preset, vocab)
    with torch.device("meta"):  # no memory or init cost for the paper sizes
        model = build_model(s)
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == s.total_params
    embedding = params["embed.weight"].numel() + params["head.weight"].numel()
    assert sum(p.numel() for p in params.values()) - embedding == s.n_params
    assert not [n for n in params if n.endswith("bias")], "the model must have no biases"


@pytest.mark.parametrize(
    ("preset", "nominal"), [("85M", 85e6), ("151M", 151e6), ("302M", 302e6), ("604M", 604e6), ("1.2B", 1.2e9)]
)
def test_paper_presets_match_their_names(preset, nominal):
    s = spec(preset, 50_304)
    assert abs(s.n_params / nominal - 1) < 0.01
    assert s.d_model // s.n_heads == 64 and s.seq_len == 512 and s.mlp_ratio == 4.0


def test_tiny_family_spans_more_than_8x_and_is_near_its_names():
    tiny = {name: spec(name).n_params for name in PRESETS if name.startswith("tiny")}
    assert max(tiny.values()) / min(tiny.values()) >= 8
    nominal = {"tiny-16k": 16e3, "tiny-64k": 64e3, "tiny-250k": 250e3, "tiny-1m": 1e6}
    for name, n in tiny.items():
        assert 0.8 < n / nominal[name] < 1.2, (name, n)


def test_overrides_and_errors():
    s = spec("tiny-64k", d_model=64, n_heads=4, seq_len=32)
    assert (s.d_model, s.n_heads, s.n_layers, s.seq_len) == (64, 4, 2, 32)
    with pytest.raises(ConfigError, match="tiny-64k"):
        spec("tiny-7")
    with pytest.raises(ConfigError, match="divisible"):
        spec("tiny-64k", n_heads=5)
    with pytest.raises(ConfigError, match="smaller than the tokenizer"):
        spec("tiny-64k", vocab_size=100)


def test_forward_shapes_initial_loss_and_causality():
    torch.manual_seed(0)
    s = spec("tiny-16k", seq_len=16)
    model = build_model(s)
    idx = torch.randint(0, 256, (3, 16))
    logits = model(idx)
    assert logits.shape == (3, 16, 256)
    loss = model(idx, torch.randint(0, 256, (3, 16)))
    assert abs(loss.item() - math.log(256)) < 0.05  # small init: near-uniform predictions
    changed = idx.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 256
    torch.testing.assert_close(model(changed)[:, :10], logits[:, :10])
    assert not torch.allclose(model(changed)[:, 10:], logits[:, 10:])


def test_micro_family_spans_8x_at_seq_len_64_and_matches_its_names():
    micro = {name: spec(name) for name in PRESETS if name.startswith("micro")}
    n = {name: s.n_params for name, s in micro.items()}
    assert n == {"micro-4k": 3_564, "micro-6k": 6_288, "micro-14k": 14_040, "micro-37k": 37_280}
    assert max(n.values()) / min(n.values()) >= 8
    assert {s.seq_len for s in micro.values()} == {64}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_cross_entropy_matches_the_one_piece_loss_without_a_whole_float32_copy(dtype):
    torch.manual_seed(0)
    logits = (3 * torch.randn(300, 64)).to(dtype).requires_grad_()
    targets = torch.randint(0, 64, (300,))
    plain = F.cross_entropy(logits.float(), targets)
    (plain_grad,) = torch.autograd.grad(plain, logits)
    largest_float32 = []  # the largest float32 tensor each loss keeps for its backward

    def saved_float32(loss_fn) -> torch.Tensor:
        sizes = [0]

        def pack(t: torch.Tensor) -> torch.Tensor:
            sizes.append(t.numel() if t.dtype == torch.float32 else 0)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = loss_fn()
        largest_float32.append(max(sizes))
        return loss

    saved_float32(lambda: F.cross_entropy(logits.float(), targets))
    chunked = saved_float32(lambda: cross_entropy(logits, targets, chunk_elements=64 * 64))  # 64-row chunks
    (chunked_grad,) = torch.autograd.grad(chunked, logits)
    # fp32: the same per-row losses summed in another order (observed 1e-7 relative); gradients are per row
    torch.testing.assert_close(chunked, plain, rtol=1e-6, atol=0)
    torch.testing.assert_close(chunked_grad, plain_grad, rtol=1e-6, atol=1e-9)
    assert largest_float32 == [300 * 64, 64 * 64 if dtype == torch.float32 else 0]  # a chunk at most
    assert (
        cross_entropy(logits, targets, chunk_elements=300 * 64).grad_fn.name() != "DivBackward0"
    )  # one piece
