"""Fits: critical batch size, power laws, L(N, D) scaling laws and loss-to-loss laws, with uncertainty."""

from cbs.fit.critical_batch import AlphaVariant, CbsFit, fit_cbs
from cbs.fit.power_law import JointPowerLawFit, PowerLawFit, fit_joint_power_law, fit_power_law
from cbs.fit.scaling_law import ScalingLawFit, fit_scaling_law

__all__ = [
    "AlphaVariant",
    "CbsFit",
    "JointPowerLawFit",
    "PowerLawFit",
    "ScalingLawFit",
    "fit_cbs",
    "fit_joint_power_law",
    "fit_power_law",
    "fit_scaling_law",
]
