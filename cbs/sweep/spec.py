"""Sweep specs (``experiments/*.yaml``): one file describes a grid of training runs.

A spec holds a ``base`` TrainConfig (as a dict) applied to every trial, a ``grid`` of dotted TrainConfig keys
to lists of values (their Cartesian product), optional ``zip`` groups (keys whose lists vary together, one
grid axis per group), an optional ``target`` rule (the CBS stop-at-target protocol), opt-in inexact ``prune``
rules (cbs.sweep.inexact), per-trial ``resources``, ``max_failures`` and ``eval_sets``. Keys are checked as strictly as TrainConfig's (see docs/sweep.md).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbs.config import EvalSet, TrainConfig, apply_overrides, from_dict, load_yaml
from cbs.errors import ConfigError
from cbs.protocol import B_OPT
from cbs.sweep.inexact import Halving, PruneOptions
from cbs.sweep.trackers import check_trackers


@dataclass
class TargetRule:
    """The CBS protocol: runs at ``reference_batch_size`` (b_opt) to their budget D define the cell's target
    R_opt (best EWA eval loss); every other batch size then stops at R_opt, allowed up to
    ``budget_multiple`` × D tokens so that batches past the CBS can still reach it."""

    reference_batch_size: int = B_OPT
    budget_multiple: float = 4.0


@dataclass
class Resources:
    """Ray resources of one trial: ``workers`` data-parallel ranks (local processes on one node) with
    ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs each. The older ``{cpus, gpus}`` form is one worker
    with those; a fractional GPU (< 1, one worker only) packs several trials on one GPU."""

    cpus: float | None = None  # one-worker form: CPUs of the trial (default 1)
    gpus: float | None = None  # one-worker form: GPUs of the trial (default 0)
    workers: int = 1
    cpus_per_worker: float | None = None  # default 1
    gpus_per_worker: float | None = None  # default 0

    @property
    def trial_cpus(self) -> float:
        """CPUs Ray reserves for the whole trial (all its ranks)."""
        return self.cpus if self.cpus is not None else self.workers * (self.cpus_per_worker or 1.0)

    @property
    def trial_gpus(self) -> float:
        """GPUs Ray reserves for the whole trial (all its ranks)."""
        return self.gpus if self.gpus is not None else self.workers * (self.gpus_per_worker or 0.0)


@dataclass
class SweepSpec:
    name: str
    description: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    zip: list[dict[str, list[Any]]] = field(default_factory=list)
    target: TargetRule | None = None
    resources: Resources = field(default_factory=Resources)
    max_failures: int = 2
    checkpoint_every: int = 4  # evaluations between trial checkpoints (0: never)
    eval_sets: list[EvalSet] | None = None  # shorthand for base.data.eval_sets
    trackers: list[str] = field(default_factory=list)  # tensorboard | wandb | mlflow (cbs.sweep.trackers)
    prune: PruneOptions = field(default_factory=PruneOptions)  # opt-in inexact rules (cbs.sweep.inexact)

    def axes(self) -> list[dict[str, list[Any]]]:
        """Grid axes in spec order: each grid key is one axis, each zip group is one axis of several keys."""
        return [{key: values} for key, values in self.grid.items()] + list(self.zip)

    def where(self, key: str) -> str:
        """The spec location that sets dotted TrainConfig ``key`` (for error messages)."""
        if key in self.grid:
            return f"grid.{key}"
        for i, group in enumerate(self.zip):
            if key in group:
                return f"zip[{i}].{key}"
        return f"base.{key}"

    def base_dict(self) -> dict[str, Any]:
        """``base`` with the ``eval_sets`` shorthand and ``resources.workers`` (as parallel.workers) folded in."""
        overrides = [f"parallel.workers={self.resources.workers}"] if self.resources.workers != 1 else []
        if self.eval_sets is not None:
            evals = [{"name": e.name, "path": e.path} for e in self.eval_sets]
            overrides.append(f"data.eval_sets={json.dumps(evals)}")
        return apply_overrides(self.base, overrides) if overrides else self.base


_DICT_FIELDS = ("base", "grid", "zip")


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a spec file; raises ConfigError naming the offending key and the fix."""
    path = Path(path)
    data = load_yaml(path)
    if not data:
        raise ConfigError(
            f"{path} is empty: a sweep spec needs a base config and a grid, e.g. "
            "grid: {batch_size: [16, 32, 64]} (see docs/sweep.md)"
        )
    try:
        return parse_spec(data, default_name=path.stem)
    except ConfigError as exc:
        if _is_train_config(data):
            raise ConfigError(
                f"{path} is a TrainConfig for `cbs train`, not a sweep spec: put it under `base:` of a spec "
                "with a `grid:` (see docs/sweep.md)"
            ) from None
        raise ConfigError(f"{path}: {exc}") from None


def parse_spec(data: dict[str, Any], default_name: str = "sweep") -> SweepSpec:
    """Build a SweepSpec from a dict; every key and grid value is checked against TrainConfig."""
    data = dict(data)
    data.setdefault("name", default_name)
    plain = {k: v for k, v in data.items() if k not in _DICT_FIELDS}
    spec = from_dict(SweepSpec, plain)  # strict: unknown top-level keys get a did-you-mean
    spec.base = _mapping(data.get("base") or {}, "base")
    spec.grid = _axis(data.get("grid") or {}, "grid")
    zips = data.get("zip") or []
    if isinstance(zips, dict):
        zips = [zips]
    if not isinstance(zips, list):
        raise ConfigError(
            f"zip must be a mapping of keys to equal-length lists (or a list of them), got {zips!r}"
        )
    spec.zip = [_zip_group(group, f"zip[{i}]") for i, group in enumerate(zips)]
    _check(spec)
    return spec


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {value!r}")
    return value


def _axis(value: Any, where: str) -> dict[str, list[Any]]:
    value = _mapping(value, where)
    for key, values in value.items():
        if not isinstance(values, list):
            raise ConfigError(f"{where}.{key} must be a list of values, e.g. [{values!r}]")
        if not values:
            raise ConfigError(f"{where}.{key} is an empty list: give at least one value or remove the key")
    return value


def _zip_group(value: Any, where: str) -> dict[str, list[Any]]:
    group = _axis(value, where)
    if not group:
        raise ConfigError(f"{where} is empty: give it keys with equal-length lists, or remove it")
    lengths = {key: len(values) for key, values in group.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"{where}: zipped lists must have equal lengths, got {lengths}")
    return group


def _check(spec: SweepSpec) -> None:
    if not spec.name or "/" in spec.name:
        raise ConfigError(f"name must be a non-empty string without '/', got {spec.name!r}")
    if spec.eval_sets is not None and "eval_sets" in spec.base.get("data", {}):
        raise ConfigError("eval_sets is given both at the top level and in base.data: keep one")
    if not spec.axes():
        raise ConfigError(
            "the spec has no grid (or zip) values, so there is nothing to sweep: add e.g. "
            "grid: {batch_size: [16, 32, 64]} (one run alone: `cbs train`)"
        )
    keys = [key for axis in spec.axes() for key in axis]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ConfigError(f"{dupes[0]} appears in more than one grid/zip axis: list it once")
    _check_resources(spec)
    check_trackers(spec.trackers)
    base = spec.base_dict()
    _train_config(base, "base")
    for axis in spec.axes():
        for key, values in axis.items():
            for value in values:
                _train_config(apply_overrides(base, [f"{key}={json.dumps(value)}"]), spec.where(key))
    if spec.max_failures < 0:
        raise ConfigError(
            f"max_failures must be >= 0 (retries from the last checkpoint), got {spec.max_failures}"
        )
    if spec.checkpoint_every < 0:
        raise ConfigError(
            f"checkpoint_every must be >= 0 (evaluations; 0: never), got {spec.checkpoint_every}"
        )
    t = spec.target
    spec.prune.check(t.budget_multiple if t is not None else None)
    if t is not None and t.reference_batch_size < 1:
        raise ConfigError(
            f"target.reference_batch_size must be a batch size >= 1 (sequences), got {t.reference_batch_size}"
        )
    if t is not None and not t.budget_multiple >= 1:
        raise ConfigError(
            "target.budget_multiple must be >= 1 (the tokens a run may train to reach the target, × the cell's "
            f"data size D), got {t.budget_multiple:g}"
        )


def _check_resources(spec: SweepSpec) -> None:
    r = spec.resources
    if r.workers < 1:
        raise ConfigError(f"resources.workers must be >= 1 (data-parallel ranks per trial), got {r.workers}")
    if (r.cpus, r.gpus) != (None, None) and (
        r.workers != 1 or (r.cpus_per_worker, r.gpus_per_worker) != (None, None)
    ):
        raise ConfigError(
            "resources: give either {cpus, gpus} (one worker) or {workers, cpus_per_worker, gpus_per_worker}, "
            f"not both; got {r}"
        )
    cpus, gpus = r.trial_cpus, r.trial_gpus
    if cpus <= 0 or gpus < 0 or (gpus > 1 and not float(gpus).is_integer()):
        raise ConfigError(
            f"resources: cpus must be > 0 and gpus >= 0 (a fraction below 1 or a whole number), got {r}"
        )
    if r.workers > 1 and not float(r.gpus_per_worker or 0.0).is_integer():
        raise ConfigError(
            f"resources.gpus_per_worker must be a whole number with workers > 1 (each rank has its own GPU), got {r}"
        )
    parallel = spec.base.get("parallel")
    workers = parallel.get("workers") if isinstance(parallel, dict) else None
    if r.workers != 1 and workers is not None and workers != r.workers:
        raise ConfigError(
            f"base.parallel.workers={workers} contradicts resources.workers={r.workers}: set resources.workers only"
        )


def _is_train_config(data: dict[str, Any]) -> bool:
    try:
        TrainConfig.from_dict(data)
    except ConfigError:
        return False
    return True


def _train_config(data: dict[str, Any], where: str) -> TrainConfig:
    try:
        return TrainConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def with_halving(spec: SweepSpec) -> SweepSpec:
    """``spec`` with successive halving on (`cbs sweep --halving`): the spec's own ``prune.halving`` settings
    where it has them, else the defaults; checked like a spec's (ConfigError before Ray starts)."""
    prune = dataclasses.replace(spec.prune, halving=spec.prune.halving or Halving())
    prune.check(spec.target.budget_multiple if spec.target is not None else None)
    return dataclasses.replace(spec, prune=prune)
