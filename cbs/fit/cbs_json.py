"""JSON outputs read back for the figures: a `cbs fit cbs --json` output into the CbsAnalysis that wrote it
(groups, laws, subset laws; nothing refitted), and a `cbs theory --json` output into its steps-to-target table.

The one place that rebuilds CBS results from JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cbs.errors import FitError
from cbs.fit.cbs_laws import CbsAnalysis, CbsGroup, SubsetLaw
from cbs.fit.critical_batch import AlphaVariant, CbsFit
from cbs.fit.diagnostics import FitWarning
from cbs.fit.power_law import JointPowerLawFit, PowerLawFit


def _pair(value: object) -> tuple[float, float]:
    lo, hi = value  # type: ignore[misc]
    return float(lo), float(hi)


def _fit(g: dict) -> CbsFit | None:
    if g.get("cbs") is None:
        return None
    v = g.get("alpha_variant")
    variant = None
    if v:
        variant = AlphaVariant(v["a"], v["b"], v["alpha"], v["cbs"], _pair(v["alpha_ci"]), _pair(v["cbs_ci"]))
    return CbsFit(
        a=float(g["a"]),
        b=float(g["b"]),
        b_opt=float(g["b_opt"]),
        overhead=float(g["overhead"]),
        cbs=float(g["cbs"]),
        cbs_ci=_pair(g["cbs_ci"]),
        a_ci=_pair(g["a_ci"]),
        b_ci=_pair(g["b_ci"]),
        b_noise_ci=_pair(g["b_noise_ci"]),
        n_points=int(g["n_points"]),
        rmse_log=float(g["rmse_log"]),
        alpha_variant=variant,
        alpha_variant_note=str(g.get("alpha_variant_note", "")),
        batch_sizes=np.asarray(g["batch_sizes"], dtype=np.float64),
        steps=np.asarray(g["steps_to_target"], dtype=np.float64),
    )


def _group(g: dict) -> CbsGroup:
    return CbsGroup(
        model=str(g["model"]),
        n_params=float(g["n_params"]),
        data_tokens=float(g["data_tokens"]) if g.get("data_tokens") is not None else np.nan,
        fit=_fit(g),
        error=g.get("error"),
        unreached_batch_sizes=[float(b) for b in g.get("unreached_batch_sizes") or []],
        target_loss=g.get("target_loss"),
        warnings=[
            FitWarning(w["code"], w["message"], {k: v for k, v in w.items() if k not in ("code", "message")})
            for w in g.get("warnings") or []
        ],  # fmt: skip
    )


def _power_law(d: dict, samples: object = ()) -> PowerLawFit:
    return PowerLawFit(
        coefficient=float(d["coefficient"]),
        exponent=float(d["exponent"]),
        coefficient_ci=_pair(d["coefficient_ci"]),
        exponent_ci=_pair(d["exponent_ci"]),
        n_points=int(d["n_points"]),
        r2=float(d["r2"]),
        samples=np.asarray(samples, dtype=np.float64).reshape(-1, 2),
    )


def _law(name: str, d: dict) -> PowerLawFit | JointPowerLawFit:
    if name != "joint":
        return _power_law(d)
    return JointPowerLawFit(
        coefficient=float(d["coefficient"]),
        exponents={k: float(v) for k, v in d["exponents"].items()},
        coefficient_ci=_pair(d["coefficient_ci"]),
        exponent_cis={k: _pair(v) for k, v in d["exponent_cis"].items()},
        n_points=int(d["n_points"]),
        r2=float(d["r2"]),
        samples=np.empty((0, 1 + len(d["exponents"]))),
    )


def _subset_law(d: dict) -> SubsetLaw:
    groups = [(str(g["model"]), float(g["n_params"]), float(g["data_tokens"])) for g in d["groups"]]
    law = _power_law(d, d["bootstrap_samples"])
    return SubsetLaw(str(d["variable"]), {k: float(v) for k, v in d["fixed"].items()}, groups, law)


def cbs_analysis_from_dict(payload: object, source: str = "the JSON") -> CbsAnalysis:
    """The CbsAnalysis whose ``to_json_dict()`` is ``payload``: the same groups, fits, laws and subset laws (the
    all-group laws without bootstrap samples, which the JSON does not carry). FitError names what is missing."""
    if not isinstance(payload, dict) or not payload.get("groups"):
        raise FitError(f"{source} has no 'groups' list: it is not a `cbs fit cbs --json` output")
    if "subset_laws" not in payload:
        raise FitError(f"{source} has no 'subset_laws': re-run `cbs fit cbs --json` with this cbs version")
    try:
        return CbsAnalysis(
            groups=[_group(g) for g in payload["groups"]],
            laws={name: _law(name, d) for name, d in payload.get("laws", {}).items()},
            laws_absent=dict(payload.get("laws_absent", {})),
            overhead=float(payload["overhead"]),
            n_boot=int(payload["n_boot"]),
            subset_laws=[_subset_law(d) for d in payload["subset_laws"]],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FitError(
            f"{source} is not a complete `cbs fit cbs --json` output ({type(exc).__name__}: {exc}); "
            "re-run `cbs fit cbs --json` with this cbs version"
        ) from exc


def read_json(path: Path, writer: str) -> object:
    """The JSON at ``path``; FitError naming the command (``writer``) whose output it should be."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FitError(f"cannot read {path} as JSON ({exc}); pass the file `{writer}` wrote") from exc


def load_cbs_analysis(path: Path) -> CbsAnalysis:
    """`cbs_analysis_from_dict` of the JSON file at ``path``; FitError if it cannot be read or is not one."""
    return cbs_analysis_from_dict(read_json(path, "cbs fit cbs --json"), str(path))


def theory_steps_table(path: Path) -> tuple[pd.DataFrame, dict[str, float | None]]:
    """The steps-to-target table of a `cbs theory --json` output (one row per dimension, data size and batch
    size; unreached batch sizes as NaN), for `fit_cbs_table`, and its settings: overhead, exponent_theory."""
    payload = read_json(path, "cbs theory --json")
    cells = payload.get("cbs_by_data") if isinstance(payload, dict) else None
    if not cells:
        raise FitError(f"{path} has no 'cbs_by_data' list: it is not a `cbs theory --json` output")
    rows = [
        {"model": "linreg", "n_params": float(c["dim"]), "data_tokens": float(c["data_size"]),
         "b_opt": float(payload.get("b_ref", 1)), "target_loss": c.get("target_excess_risk"),
         "batch_size": float(b), "steps_to_target": float(s)}
        for c in cells
        for b, s in [*zip(c["batch_sizes"], c["steps_to_target"], strict=True),
                     *((b, np.nan) for b in c.get("unreached_batch_sizes", []))]
    ]  # fmt: skip
    settings = {
        "overhead": float(payload.get("overhead", 0.2)),
        "exponent_theory": payload.get("exponent_theory"),
    }
    return pd.DataFrame(rows), settings
