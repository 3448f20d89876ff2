"""Resolve a TrainConfig into everything a run needs, validating it before anything expensive starts."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

from cbs.config import ParallelConfig, TrainConfig
from cbs.data import PreparedDataset, WindowSampler, open_dataset
from cbs.errors import ConfigError, DataError
from cbs.model import ModelSpec, resolve_model_config
from cbs.protocol import chinchilla_tokens, paper_beta2, paper_ewa_tau
from cbs.train.batch_schedule import BatchPlan, plan_batches
from cbs.train.device import resolve_device, resolve_dtype
from cbs.train.distributed import STRATEGIES, resolve_backend
from cbs.train.optimizers import check_available
from cbs.train.schedule import SCHEDULES

WARMUP_FRACTION = 0.25
UNDEFINED_LR_RULE = (
    "lion",
    "signum",
    "muon",
)  # optimizers a batch schedule's sqrt/linear lr rule does not fit


@dataclass(frozen=True)
class ResolvedRun:
    """A TrainConfig with every ``None`` filled (``config``), plus the derived quantities of the run."""

    config: TrainConfig  # fully resolved: re-resolving it gives the same run
    spec: ModelSpec
    dataset: PreparedDataset
    eval_datasets: dict[
        str, PreparedDataset
    ]  # name -> dataset whose val split is evaluated; first is primary
    token_budget: int
    data_tokens: int
    steps: int
    batch_tokens: int
    warmup_tokens: int
    warmup_steps: int
    batches: BatchPlan  # the batch of every step (one stage without a batch_schedule)
    lr_cuts: tuple[int, ...]  # optim.schedule=step: the steps after which the lr is multiplied by step_factor
    beta2: float
    ewa_tau: float
    micro_batch_size: int  # sequences per forward on one rank
    eval_batch_size: int
    device: str
    dtype: str

    @property
    def n_params(self) -> int:
        return self.spec.n_params

    @property
    def tokens(self) -> int:
        """Tokens the run trains on if it uses its whole budget."""
        return self.batches.tokens_after(self.steps)


def default_warmup_tokens(n_params: int, data_tokens: int) -> int:
    """The paper's warmup, 25% of the Chinchilla tokens (20·N), capped at 25% of the cell's data size D so
    that a run with D below Chinchilla still spends at most a quarter of its data warming up."""
    return int(round(WARMUP_FRACTION * min(chinchilla_tokens(n_params), data_tokens)))


def resolve_config(cfg: TrainConfig) -> ResolvedRun:
    """Fill every None from the preset, the paper's protocol and the dataset; raise ConfigError/DataError on
    an impossible config (before any model is built)."""
    o = cfg.optim
    _check(cfg.batch_size >= 1, f"batch_size must be >= 1, got {cfg.batch_size}")
    par = cfg.parallel
    _check(par.workers >= 1, f"parallel.workers must be >= 1 (ranks of the run), got {par.workers}")
    _check(
        cfg.batch_size % par.workers == 0,
        f"batch_size={cfg.batch_size} must be divisible by parallel.workers={par.workers} (each rank takes an "
        "equal slice of the global batch); choose a batch size that is a multiple of the workers",
    )
    per_rank = cfg.batch_size // par.workers
    micro = cfg.micro_batch_size or per_rank
    _check(
        1 <= micro <= per_rank and per_rank % micro == 0,
        f"micro_batch_size={cfg.micro_batch_size} must divide batch_size={cfg.batch_size}"
        + (f" / parallel.workers={par.workers} = {per_rank} sequences per rank" if par.workers > 1 else ""),
    )
    check_available(o.name)
    _check(o.lr > 0, f"optim.lr must be > 0, got {o.lr}")
    _check(o.schedule in SCHEDULES, f"optim.schedule must be one of {SCHEDULES}, got {o.schedule!r}")
    _check(0 <= o.beta1 < 1, f"optim.beta1 must be in [0, 1), got {o.beta1}")
    _check(
        o.warmup_tokens is None or o.warmup_steps is None,
        "set only one of optim.warmup_tokens and optim.warmup_steps (or neither for the paper's 25% rule)",
    )
    _check(
        cfg.token_budget is None or cfg.chinchilla_multiple is None,
        "set only one of token_budget and chinchilla_multiple (neither: 1× Chinchilla, 20 tokens/param)",
    )
    _check(cfg.divergence_factor > 1, f"divergence_factor must be > 1, got {cfg.divergence_factor}")
    _check(
        cfg.divergence_check_every >= 1,
        f"divergence_check_every must be a whole number ≥ 1, got {cfg.divergence_check_every}",
    )
    _check(cfg.eval.eval_tokens >= 1, f"eval.eval_tokens must be >= 1, got {cfg.eval.eval_tokens}")
    _check(cfg.eval.raw_every >= 1, f"eval.raw_every must be a whole number >= 1, got {cfg.eval.raw_every}")
    _check(0 <= cfg.eval.dense_tail_fraction <= 1, "eval.dense_tail_fraction must be in [0, 1]")
    _check(cfg.data.eval_sets, "data.eval_sets must name at least one eval set")
    bad = [f for f in cfg.keep_checkpoints_at if not 0 < f < 1]
    _check(not bad, f"keep_checkpoints_at takes fractions of the run in (0, 1), e.g. [0.25, 0.5]; got {bad}")
    names = [e.name for e in cfg.data.eval_sets]
    _check(len(set(names)) == len(names), f"data.eval_sets names must be unique, got {names}")

    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    check_parallel(cfg.parallel, device)
    dataset = open_dataset(cfg.data.path)
    spec = resolve_model_config(cfg.model, dataset.vocab_size)
    eval_datasets = {}
    for es in cfg.data.eval_sets:
        ds = dataset if es.path is None else open_dataset(es.path)
        if ds.vocab_size != dataset.vocab_size or ds.tokenizer_name != dataset.tokenizer_name:
            raise DataError(
                f"eval set {es.name!r} ({es.path}) uses tokenizer {ds.tokenizer_name} (vocab {ds.vocab_size}) "
                f"but the training data uses {dataset.tokenizer_name} (vocab {dataset.vocab_size}); prepare it "
                "with the same --tokenizer"
            )
        eval_datasets[es.name] = ds

    batch_tokens = cfg.batch_size * spec.seq_len
    if cfg.token_budget is not None:
        token_budget = cfg.token_budget
    else:
        token_budget = chinchilla_tokens(spec.n_params, cfg.chinchilla_multiple or 1.0)
    _check(
        token_budget >= batch_tokens,
        f"token budget {token_budget} is below one batch ({batch_tokens} tokens); raise it",
    )
    _check(
        not (cfg.batch_schedule and cfg.batch_lr_rule != "none" and o.name in UNDEFINED_LR_RULE),
        f"batch_lr_rule={cfg.batch_lr_rule!r} is undefined for optim.name={o.name!r} (its update is a sign or an "
        "orthogonalised matrix, so there is no established lr-vs-batch rule); set batch_lr_rule: none and give "
        "the lr per stage yourself, or use an Adam-type optimizer (adamw, adafactor, soap, schedule_free_adamw)",
    )
    _check(
        not (cfg.parallel.strategy == "fsdp" and o.name == "muon"),
        "optim.name=muon chains two optimizers (Muon for matrices, AdamW for the rest), which FSDP runs do not "
        "support yet; use parallel.strategy=ddp",
    )
    batches = plan_batches(
        cfg.batch_schedule, cfg.batch_size, token_budget, spec.seq_len, cfg.batch_lr_rule, micro * par.workers
    )
    steps = batches.steps
    _check(
        all(0 < f < 1 for f in o.step_at) and list(o.step_at) == sorted(set(o.step_at)),
        f"optim.step_at must be increasing fractions of the token budget in (0, 1), got {o.step_at}",
    )
    _check(o.step_factor > 0, f"optim.step_factor must be > 0, got {o.step_factor}")
    _check(
        o.schedule == "step" or not o.step_at,
        f"optim.step_at is set but optim.schedule={o.schedule!r}; set optim.schedule: step (or drop step_at)",
    )
    lr_cuts = tuple(batches.step_at_tokens(f * token_budget) for f in o.step_at)
    data_tokens = cfg.data_tokens if cfg.data_tokens is not None else token_budget
    _check(data_tokens >= 1, f"data_tokens must be >= 1, got {data_tokens}")

    if o.warmup_steps is not None:
        warmup_steps = o.warmup_steps
    else:
        wt = (
            o.warmup_tokens
            if o.warmup_tokens is not None
            else default_warmup_tokens(spec.n_params, data_tokens)
        )
        warmup_steps = batches.step_at_tokens(wt)
    _check(warmup_steps >= 0, f"warmup must be >= 0, got {warmup_steps} steps")
    beta2 = o.beta2 if o.beta2 is not None else paper_beta2(cfg.batch_size)
    _check(0 < beta2 < 1, f"optim.beta2 must be in (0, 1), got {beta2}")
    tau = cfg.ewa_tau if cfg.ewa_tau is not None else paper_ewa_tau(cfg.batch_size)
    _check(0 <= tau < 1, f"ewa_tau must be in [0, 1), got {tau}")
    eval_batch = cfg.eval.eval_batch_size or micro
    # optim.fused None: fused AdamW, on CUDA and on CPU alike (torch >= 2.4; on CPU it is several times
    # faster than the foreach implementation for the tiny presets)

    sampler = WindowSampler(dataset.n_tokens("train"), spec.seq_len, cfg.seed, cfg.data.allow_repeat)
    sampler.check_budget(batches.sequences)

    resolved = dataclasses.replace(
        cfg,
        model=dataclasses.replace(
            cfg.model,
            **{
                f: getattr(spec, f)
                for f in ("d_model", "n_layers", "n_heads", "mlp_ratio", "seq_len", "vocab_size")
            },
        ),
        optim=dataclasses.replace(
            o,
            beta2=beta2,
            warmup_tokens=batches.tokens_after(warmup_steps),
            warmup_steps=None,
            fused=True if o.fused is None else o.fused,
        ),
        eval=dataclasses.replace(cfg.eval, eval_batch_size=eval_batch),
        micro_batch_size=micro,
        token_budget=token_budget,
        chinchilla_multiple=None,
        data_tokens=data_tokens,
        ewa_tau=tau,
        device=device,
        dtype=dtype,
    )
    return ResolvedRun(
        config=resolved,
        spec=spec,
        dataset=dataset,
        eval_datasets=eval_datasets,
        token_budget=token_budget,
        data_tokens=data_tokens,
        steps=steps,
        batch_tokens=batch_tokens,
        warmup_tokens=batches.tokens_after(warmup_steps),
        warmup_steps=warmup_steps,
        batches=batches,
        lr_cuts=lr_cuts,
        beta2=beta2,
        ewa_tau=tau,
        micro_batch_size=micro,
        eval_batch_size=eval_batch,
        device=device,
        dtype=dtype,
    )


def check_parallel(par: ParallelConfig, device: str) -> None:
    """Raise ConfigError where ``par`` cannot run on ``device``: an unknown strategy, a
    backend that is not available, more CUDA ranks than this machine has GPUs."""
    _check(par.strategy in STRATEGIES, f"parallel.strategy must be one of {STRATEGIES}, got {par.strategy!r}")
    if par.workers > 1:
        resolve_backend(par.backend, device)
        gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
        local = int(os.environ.get("LOCAL_WORLD_SIZE", par.workers))  # torchrun: ranks on this node
        _check(
            not device.startswith("cuda") or local <= gpus,
            f"{local} CUDA ranks on this node (parallel.workers={par.workers}) but {gpus} GPUs are visible; "
            "lower parallel.workers",
        )


def _check(ok: object, message: str) -> None:
    if not ok:
        raise ConfigError(message)
