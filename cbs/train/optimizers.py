"""The optimizer of a run, built from its ``OptimConfig``: one place that knows which optimizers exist, which
package implements each, and how their parameter groups (weight decay on matrices only) are formed.

Implementations: torch's own AdamW, Adafactor and Muon; Lion, Signum and SOAP from ``pytorch-optimizer``;
schedule-free AdamW from ``schedulefree`` (the last two packages: ``pip install 'cbs[optimizers]'``).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from typing import Any

import torch

from cbs.config import OptimConfig
from cbs.errors import ConfigError
from cbs.optim_params import PACKAGES, check_optimizer


def check_available(name: str) -> None:
    """Raise ConfigError if optimizer ``name`` is unknown or its package is not installed (cheap: no import)."""
    check_optimizer(name)
    package = PACKAGES.get(name)
    if package is not None and importlib.util.find_spec(package) is None:
        raise ConfigError(
            f"optim.name={name} needs the {package} package, which is not installed: "
            "pip install 'cbs[optimizers]'"
        )


def build_optimizer(
    model: torch.nn.Module, o: OptimConfig, beta2: float
) -> torch.optim.Optimizer | ChainedOptimizer:
    """Optimizer ``o.name`` over ``model``'s parameters with weight decay on matrices (dim ≥ 2) only. Adam-type
    optimizers take ``o.beta1`` and ``beta2`` (as resolved for the run's batch size); the others their own
    section of ``o``. AdamW is fused where ``o.fused`` asks for it (foreach otherwise)."""
    check_available(o.name)
    if o.name == "muon":
        return _muon(model, o, beta2)
    return _single(o, beta2, _groups(list(model.parameters()), o.weight_decay))


def _groups(params: list[torch.nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Two param groups: the matrices (dim ≥ 2) with ``weight_decay``, the rest without."""
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def _adamw(o: OptimConfig, beta2: float, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    kernel = {"fused": True} if o.fused else {"foreach": True}
    return torch.optim.AdamW(groups, lr=o.lr, betas=(o.beta1, beta2), eps=o.eps, **kernel)


def _single(o: OptimConfig, beta2: float, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    if o.name == "adamw":
        return _adamw(o, beta2, groups)
    if o.name == "adafactor":
        a = o.adafactor
        return torch.optim.Adafactor(
            groups, lr=o.lr, beta2_decay=a.beta2_decay, eps=(a.eps1, a.eps2), d=a.d, foreach=True
        )
    if o.name == "schedule_free_adamw":
        import schedulefree

        s = o.schedule_free_adamw
        opt = schedulefree.AdamWScheduleFree(
            groups, lr=o.lr, betas=(o.beta1, beta2), eps=o.eps, r=s.r, weight_lr_power=s.weight_lr_power
        )
        opt.train()
        return opt
    import pytorch_optimizer

    if o.name == "lion":
        return pytorch_optimizer.Lion(groups, lr=o.lr, betas=(o.lion.beta1, o.lion.beta2))
    if o.name == "signum":
        return pytorch_optimizer.SignSGD(groups, lr=o.lr, momentum=o.signum.momentum)
    soap = o.soap
    return pytorch_optimizer.SOAP(
        groups,
        lr=o.lr,
        betas=(o.beta1, beta2),
        shampoo_beta=soap.shampoo_beta,
        precondition_frequency=soap.precondition_frequency,
        max_precondition_dim=soap.max_precondition_dim,
        eps=soap.eps,
    )


def _muon(model: torch.nn.Module, o: OptimConfig, beta2: float) -> ChainedOptimizer:
    """torch.optim.Muon on the hidden matrices; AdamW on the embedding, the output head and the vectors."""
    embedding = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    head = getattr(model, "head", None)
    outside = embedding | {id(p) for p in (head.parameters() if head is not None else ())}
    hidden = [p for p in model.parameters() if p.dim() == 2 and id(p) not in outside]
    rest = [p for p in model.parameters() if not (p.dim() == 2 and id(p) not in outside)]
    m = o.muon
    muon = torch.optim.Muon(
        hidden,
        lr=o.lr,
        weight_decay=o.weight_decay,
        momentum=m.momentum,
        nesterov=m.nesterov,
        ns_steps=m.ns_steps,
        adjust_lr_fn=m.lr_rule,
    )
    return ChainedOptimizer([muon, _adamw(o, beta2, _groups(rest, o.weight_decay))])


class ChainedOptimizer:
    """Several optimizers over disjoint parameters stepped as one, with the part of torch's Optimizer interface
    a trainer uses: their param groups in one list (so an lr schedule sets them all), ``step``, ``zero_grad``
    and one state dict holding each one's."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"chained": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for opt, state in zip(self.optimizers, state_dict["chained"], strict=True):
            opt.load_state_dict(state)


def single_optimizer(optimizer: torch.optim.Optimizer | ChainedOptimizer) -> torch.optim.Optimizer:
    """``optimizer`` as one torch Optimizer (what FSDP's state-dict functions take); ConfigError for a chained
    one (optim.name=muon), which FSDP runs refuse (`cbs.train.resolve`)."""
    if isinstance(optimizer, ChainedOptimizer):
        raise ConfigError(
            "a chained optimizer (optim.name=muon) cannot be sharded; use parallel.strategy=ddp"
        )
    return optimizer


@contextlib.contextmanager
def evaluation_weights(optimizer: torch.optim.Optimizer | ChainedOptimizer) -> Iterator[None]:
    """Within the block the model holds the weights the optimizer evaluates at: for schedule-free AdamW its
    average x (``optimizer.eval()``, ``train()`` after, even on error); for the others the weights as they are."""
    switch, back = getattr(optimizer, "eval", None), getattr(optimizer, "train", None)
    if switch is None or back is None:
        yield
        return
    switch()
    try:
        yield
    finally:
        back()
