"""Typed configs of one training run, loaded from YAML/dicts with strict keys and ``key=value`` overrides.

``TrainConfig`` is what `cbs train` runs and what one sweep trial resolves to. ``None`` fields mean "resolve
from the preset / the paper's protocol" (see cbs.protocol); `cbs.train` fills them in before a run starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from cbs.errors import ConfigError
from cbs.optim_params import (
    AdafactorParams,
    LionParams,
    MuonParams,
    ScheduleFreeParams,
    SignumParams,
    SoapParams,
    check_optimizer,
    strip_unused,
)
from cbs.presets import canonical_model

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@dataclass
class ModelConfig:
    """A named preset (see cbs.presets.PRESETS) with any field overridden."""

    preset: str = "tiny-64k"
    d_model: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    mlp_ratio: float | None = None
    seq_len: int | None = None
    vocab_size: int | None = None  # None: the tokenizer's vocabulary
    rope_theta: float = 10000.0
    qk_norm: bool = True


@dataclass
class EvalSet:
    """A named eval set: the validation split of the training data (path None) or of another prepared dataset."""

    name: str = "val"
    path: str | None = None


@dataclass
class DataConfig:
    path: str = "data/stdlib"  # a folder written by `cbs data prepare`
    eval_sets: list[EvalSet] = field(default_factory=lambda: [EvalSet()])  # the first is the primary
    allow_repeat: bool = False  # allow more than one epoch when the budget exceeds the training split


@dataclass
class BatchStage:
    """From ``at_tokens`` trained tokens on, the global batch is ``batch_size`` sequences."""

    at_tokens: int
    batch_size: int


@dataclass
class OptimConfig:
    name: str = "adamw"  # one of cbs.optim_params.OPTIMIZERS; its own section below holds its hyperparameters
    lr: float = 3e-3
    beta1: float = 0.95
    beta2: float | None = None  # None: the paper's value for the batch size
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    schedule: str = "constant"  # constant (after warmup) | cosine | wsd | step
    # warmup_tokens and warmup_steps both None: 25% of the Chinchilla tokens, as in the paper
    warmup_tokens: int | None = None
    warmup_steps: int | None = None
    decay_fraction: float = 0.2  # wsd: fraction of the run spent decaying
    min_lr_ratio: float = 0.0  # cosine / wsd floor, as a fraction of lr
    fused: bool | None = None  # None: fused AdamW wherever torch supports it (CPU and CUDA)
    step_at: list[float] = field(default_factory=list)  # step: fractions of the token budget where the lr ...
    step_factor: float = 0.5  # ... is multiplied by step_factor
    lion: LionParams = field(default_factory=LionParams)
    signum: SignumParams = field(default_factory=SignumParams)
    adafactor: AdafactorParams = field(default_factory=AdafactorParams)
    soap: SoapParams = field(default_factory=SoapParams)
    muon: MuonParams = field(default_factory=MuonParams)
    schedule_free_adamw: ScheduleFreeParams = field(default_factory=ScheduleFreeParams)

    def __post_init__(self) -> None:
        check_optimizer(self.name)


@dataclass
class EvalConfig:
    """When to evaluate: log-spaced points plus dense points near the end of the budget."""

    n_log: int = 24  # log-spaced evaluations over the run
    dense_tail_fraction: float = 0.3  # final fraction of the budget evaluated densely
    n_dense: int = 16  # evaluations inside that tail
    eval_tokens: int = 32768  # tokens per evaluation and eval set
    eval_batch_size: int | None = None  # sequences per eval forward; None: micro_batch_size
    # raw (non-EWA) weights are evaluated at every raw_every-th evaluation and the last; the EWA weights, which
    # the stop rules and steps-to-target read, at every one (1: raw at every evaluation, as before)
    raw_every: int = 8


@dataclass
class ParallelConfig:
    """Data parallelism of one run: ``workers`` ranks of torch.distributed split each global batch. It does not
    change the run's result (beyond float reduction order), so it is not part of the run id."""

    workers: int = 1  # ranks (processes, one device each); 1: a plain one-process run
    strategy: str = (
        "ddp"  # ddp (replicated weights) | fsdp (FSDP2 fully_shard: weights, grads, optimizer sharded)
    )
    backend: str = "auto"  # auto (nccl on CUDA, gloo on CPU) | gloo | nccl


@dataclass
class GNSConfig:
    """In-run gradient noise scale (cbs/train/gns.py): measured whenever a step sees two batch sizes (>= 2
    micro-batches or >= 2 ranks); it does not change the run, so it is not part of the run id."""

    enabled: bool = True
    ema_decay: float = 0.95  # β of the bias-corrected EMA of the |G|² and tr Σ estimators, per optimizer step

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"gns.ema_decay={self.ema_decay} must be in [0, 1) (e.g. gns.ema_decay=0.95)")


@dataclass
class BranchFrom:
    """A branched run (``cbs branch``): it starts from the checkpoint its parent kept at ``fraction`` of its
    training (step ``step``) with the parent's weights, optimizer state and data position, at ``k`` × the
    parent's batch size. ``checkpoint`` (where that checkpoint lies) is not part of the run id."""

    parent_run_id: str = ""
    fraction: float = 0.0
    step: int = 0
    k: int = 1
    checkpoint: str = ""


@dataclass
class TrainConfig:
    experiment: str = "default"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    batch_size: int = 32  # global batch, in sequences (the first stage's, with a batch_schedule)
    # the global batch as a function of trained tokens (docs/train.md): [{at_tokens: 0, batch_size: B}, ...]
    batch_schedule: list[BatchStage] | None = None
    batch_lr_rule: str = (
        "sqrt"  # at each batch change the lr is scaled by (B/B0)^p: sqrt ½ | linear 1 | none 0
    )
    micro_batch_size: int | None = None  # None: the whole batch at once
    token_budget: int | None = None  # exactly one of token_budget / chinchilla_multiple
    chinchilla_multiple: float | None = None  # budget = multiple · 20 · N
    # the experiment cell's nominal data size D (None: the token budget); a stop-at-target run may be given
    # a larger token_budget than D so that batches past the CBS can still reach the target
    data_tokens: int | None = None
    # the CBS protocol's reference batch B_opt of this run's cell, whose best loss sets the target; recorded in
    # the runs table so the fits know it (set by `cbs sweep`); does not change the run
    reference_batch_size: int | None = None
    ewa_tau: float | None = None  # None: the paper's value for the batch size
    target_loss: float | None = None  # stop once the EWA eval loss reaches it (stop_at_target)
    stop_at_target: bool = True
    # diverged: a non-finite loss, or one above divergence_factor × the initial loss
    divergence_factor: float = 3.0
    # steps between divergence checks (each check waits for the device once; evaluations check too)
    divergence_check_every: int = 16
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    compile: bool = False
    deterministic: bool = False  # torch.use_deterministic_algorithms(True) (CUDA: see docs/train.md)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    gns: GNSConfig = field(default_factory=GNSConfig)
    # fractions of the run's steps (each in (0, 1)) at which a checkpoint is kept in the results store for
    # `cbs branch`; keeping them does not change the run, so it is not part of the run id
    keep_checkpoints_at: list[float] = field(default_factory=list)
    branch: BranchFrom | None = None  # set by `cbs branch` on the runs it branches off a parent

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainConfig:
        return from_dict(cls, data or {})

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
        data = load_yaml(path)
        return cls.from_dict(apply_overrides(data, overrides))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def run_id(self) -> str:
        """Stable id of everything that changes the run's result (not the experiment name, device, compile,
        deterministic kernels, the divergence-check interval, the raw-weight evaluation cadence, data
        parallelism, the in-run GNS, the recorded reference batch, the kept checkpoints, where a branch's
        parent checkpoint lies or the hyperparameter sections of optimizers the
        run does not use; AdamW runs hash as before the optimizer axis existed). Model shape fields that restate
        the preset's value count as unset. A prepared dataset counts by its fingerprint, not by where it lies, so
        a results store resumes from any checkout or mount point of the same data."""
        payload = _without_late_defaults(self.to_dict())
        for key in (
            "experiment",
            "device",
            "compile",
            "deterministic",
            "divergence_check_every",
            "parallel",
            "gns",
            "reference_batch_size",
            "keep_checkpoints_at",
        ):
            payload.pop(key)
        payload["eval"].pop("raw_every")  # which evaluations also score the raw weights: not the run's result
        if self.branch is None:
            payload.pop("branch")  # the ids of runs that are not branches stay as they were
        else:
            payload["branch"].pop("checkpoint")
        payload["model"] = canonical_model(self.model)
        payload["optim"] = strip_unused(payload["optim"])
        payload["data"]["path"] = dataset_identity(self.data.path)
        for eval_set in payload["data"]["eval_sets"]:
            eval_set["path"] = dataset_identity(eval_set["path"])
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


LATE_DEFAULTS: dict[tuple[str, ...], Any] = {
    ("batch_schedule",): None,
    ("batch_lr_rule",): "sqrt",
    ("optim", "step_at"): [],
    ("optim", "step_factor"): 0.5,
}
"""Fields added after stores were first written, with their defaults: at the default they are left out of the
run id, so every run stored before they existed keeps its id (and a resumed sweep its runs)."""


def _without_late_defaults(payload: dict[str, Any]) -> dict[str, Any]:
    for path, default in LATE_DEFAULTS.items():
        *parents, key = path
        node = payload
        for p in parents:
            node = node[p]
        if node.get(key) == default:
            node.pop(key)
    return payload


T = TypeVar("T", bound="DataclassInstance")


def dataset_identity(path: str | None) -> str | None:
    """``fingerprint:<hash>`` of a prepared dataset folder (its manifest), else the path as given."""
    if path is None:
        return None
    manifest = Path(path).expanduser().absolute() / "manifest.json"
    try:
        stat = manifest.stat()
    except OSError:
        return path
    fingerprint = _manifest_fingerprint(str(manifest), stat.st_mtime_ns, stat.st_size)
    return f"fingerprint:{fingerprint}" if fingerprint else path


@functools.lru_cache(maxsize=256)
def _manifest_fingerprint(manifest: str, mtime_ns: int, size: int) -> str | None:
    """The ``fingerprint`` of a manifest file (cached per file version: sweeps ask for it per trial)."""
    try:
        return str(json.loads(Path(manifest).read_text())["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level, found {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a nested dict; returns a new dict."""
    out = json.loads(json.dumps(data, default=str))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. optim.lr=1e-3)")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return out


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys and values of the wrong type."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where.rstrip('.') or cls.__name__} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(fields)}"
        raise ConfigError(f"unknown key {where + key!r}{hint}")
    kwargs = {k: _coerce(hints[k], v, f"{where}{k}") for k, v in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        errors = []
        for arg in args:
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where + ".")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:
            return float(value)  # YAML reads 1e-3 (no dot) as a string
        except ValueError:
            pass
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if tp in (int, str, bool) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{where} must be {getattr(tp, '__name__', tp)}, got {value!r}")
