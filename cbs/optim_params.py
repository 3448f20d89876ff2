"""Each optimizer's own hyperparameters, as typed config sections of ``optim`` with the papers' defaults.

``optim.name`` picks the optimizer; only its own section (e.g. ``optim.lion``) changes the run (see
``TrainConfig.run_id``). The learning rate, weight decay, gradient clipping and lr schedule are the shared
``optim`` fields; Adam-type optimizers (adamw, soap, schedule_free_adamw and muon's AdamW part) take
``optim.beta1`` and the run's β2 (the paper's rule per batch size unless ``optim.beta2`` is set).
"""

from __future__ import annotations

from dataclasses import dataclass

from cbs.errors import ConfigError

OPTIMIZERS = ("adamw", "lion", "signum", "adafactor", "soap", "muon", "schedule_free_adamw")
# the optional package each optimizer needs (installed by the `optimizers` extra); torch's own need none
PACKAGES = {
    "lion": "pytorch_optimizer",
    "signum": "pytorch_optimizer",
    "soap": "pytorch_optimizer",
    "schedule_free_adamw": "schedulefree",
}
MUON_LR_RULES = ("match_rms_adamw", "original")


def _unit(value: float, where: str) -> None:
    if not 0 <= value < 1:
        raise ConfigError(f"{where} must be in [0, 1), got {value}")


@dataclass
class LionParams:
    """Lion (Chen et al. 2023, arXiv 2302.06675): sign of an interpolated momentum; paper β = (0.9, 0.99)."""

    beta1: float = 0.9
    beta2: float = 0.99

    def __post_init__(self) -> None:
        _unit(self.beta1, "optim.lion.beta1")
        _unit(self.beta2, "optim.lion.beta2")


@dataclass
class SignumParams:
    """Signum (Bernstein et al. 2018, arXiv 1802.04434): sign of the momentum; paper momentum 0.9."""

    momentum: float = 0.9

    def __post_init__(self) -> None:
        _unit(self.momentum, "optim.signum.momentum")


@dataclass
class AdafactorParams:
    """Adafactor (Shazeer & Stern 2018, arXiv 1804.04235) as torch.optim.Adafactor: β2_t = 1 - t^decay,
    update clipping d, ε1 (None: the dtype's eps) and ε2 (relative step floor)."""

    beta2_decay: float = -0.8
    eps1: float | None = None
    eps2: float = 1e-3
    d: float = 1.0

    def __post_init__(self) -> None:
        if not self.beta2_decay <= 0:
            raise ConfigError(f"optim.adafactor.beta2_decay must be <= 0, got {self.beta2_decay}")
        if not self.d > 0:
            raise ConfigError(f"optim.adafactor.d must be > 0, got {self.d}")


@dataclass
class SoapParams:
    """SOAP (Vyas et al. 2024, arXiv 2409.11321): Adam in Shampoo's eigenbasis; the paper's preconditioner
    update every 10 steps, its β (None: the run's β2) and dimension cap."""

    shampoo_beta: float | None = None
    precondition_frequency: int = 10
    max_precondition_dim: int = 10000
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.shampoo_beta is not None:
            _unit(self.shampoo_beta, "optim.soap.shampoo_beta")
        if self.precondition_frequency < 1:
            raise ConfigError(
                f"optim.soap.precondition_frequency must be >= 1 (steps), got {self.precondition_frequency}"
            )


@dataclass
class MuonParams:
    """Muon (Jordan et al. 2024) as torch.optim.Muon on the hidden matrices, AdamW on the rest. ``lr_rule``
    ``match_rms_adamw`` (Liu et al. 2025, arXiv 2502.16982) lets Muon share ``optim.lr`` with its AdamW part;
    ``original`` is Jordan's max(1, rows/cols)^½ scaling (which wants a ~10× larger lr)."""

    momentum: float = 0.95
    nesterov: bool = True
    ns_steps: int = 5
    lr_rule: str = "match_rms_adamw"

    def __post_init__(self) -> None:
        _unit(self.momentum, "optim.muon.momentum")
        if self.ns_steps < 1:
            raise ConfigError(f"optim.muon.ns_steps must be >= 1, got {self.ns_steps}")
        if self.lr_rule not in MUON_LR_RULES:
            raise ConfigError(f"optim.muon.lr_rule must be one of {MUON_LR_RULES}, got {self.lr_rule!r}")


@dataclass
class ScheduleFreeParams:
    """Schedule-free AdamW (Defazio et al. 2024, arXiv 2405.15682): its averaging power and r; evaluation
    uses the averaged weights x (the trainer switches the optimizer to eval mode around it)."""

    r: float = 0.0
    weight_lr_power: float = 2.0


def strip_unused(optim: dict) -> dict:
    """``optim`` (a config's dict) without the sections of optimizers it does not use, and without ``name``
    for AdamW: what identifies the optimizer of a run, equal to an AdamW config from before the axis existed."""
    name = optim.get("name", "adamw")
    out = {k: v for k, v in optim.items() if k not in OPTIMIZERS or k == name}
    if name == "adamw":
        out.pop("name", None)
    return out


def check_optimizer(name: str) -> None:
    """Raise ConfigError naming the known optimizers if ``name`` is not one of them."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer optim.name={name!r}; known: {', '.join(OPTIMIZERS)}")
