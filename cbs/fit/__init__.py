"""Fits: critical batch size, power laws, L(N, D) scaling laws and loss-to-loss laws, with uncertainty.

Every fit returns a dataclass with the `FitResult` interface (`cbs.fit.result`: to_dict/from_dict, report,
predict, intervals, warnings, solver diagnostics) or a DataFrame, and raises ``cbs.errors.FitError`` naming the cause when it
cannot give a trustworthy number. See docs/fit.md.
"""

from cbs.fit.cbs_laws import CbsAnalysis, CbsGroup, fit_cbs_table
from cbs.fit.critical_batch import AlphaVariant, CbsFit, fit_cbs
from cbs.fit.diagnostics import FitWarning, diagnose_group
from cbs.fit.loss_to_loss import LossToLossFit, fit_loss_to_loss
from cbs.fit.loss_to_loss_table import Columns, LossToLossAnalysis, fit_loss_to_loss_table, store_loss_table
from cbs.fit.power_law import JointPowerLawFit, PowerLawFit, fit_joint_power_law, fit_power_law
from cbs.fit.result import FitResult, SolverDiagnostics
from cbs.fit.scaling_law import ScalingLawFit, fit_scaling_law
from cbs.fit.steps_to_target import first_crossing, steps_to_target_table

__all__ = [
    "AlphaVariant",
    "CbsAnalysis",
    "CbsFit",
    "CbsGroup",
    "Columns",
    "FitResult",
    "FitWarning",
    "JointPowerLawFit",
    "LossToLossAnalysis",
    "LossToLossFit",
    "PowerLawFit",
    "ScalingLawFit",
    "SolverDiagnostics",
    "diagnose_group",
    "first_crossing",
    "fit_cbs",
    "fit_cbs_table",
    "fit_joint_power_law",
    "fit_loss_to_loss",
    "fit_loss_to_loss_table",
    "fit_power_law",
    "fit_scaling_law",
    "steps_to_target_table",
    "store_loss_table",
]
