"""Per-group CBS fits from a steps-to-target table, and the scaling laws of the CBS across groups.

Groups are cells (cbs.results.cell: model, n_params, data_tokens, dataset, optimizer; a table without the
dataset or optimizer column is one dataset, AdamW). Laws, per optimizer: B* vs N (N in millions of
non-embedding parameters), B* vs D (tokens), and the joint B* = c·N^α·D^β, each fitted only where its variable
takes ≥ 3 distinct values (the joint law: both vary and are not collinear); an absent law says why in
``laws_absent``. AdamW's laws are keyed ``n_params``, ``data_tokens``, ``joint``; another optimizer's
``n_params/lion`` etc.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cbs.errors import FitError
from cbs.fit.critical_batch import CbsFit, fit_cbs
from cbs.fit.diagnostics import FitWarning, diagnose_group
from cbs.fit.measure_results import GroupMeasures, measures_display, measures_frame, render_measures
from cbs.fit.power_law import JointPowerLawFit, PowerLawFit, fit_joint_power_law, fit_power_law
from cbs.fit.result import SolverDiagnostics, fmt, number, warnings_from
from cbs.fit.steps_to_target import HYPERPARAMETERS, reference_batch
from cbs.fit.tables import Numeric, numeric_columns, require_columns
from cbs.protocol import CBS_OVERHEAD, CHINCHILLA_TOKENS_PER_PARAM
from cbs.results.cell import CELL_KEYS, DEFAULT_OPTIMIZER

UNITS = {
    "n_params": "millions of non-embedding parameters",
    "data_tokens": "tokens",
    "batch_size": "sequences",
    "cbs": "sequences",
    "b_noise": "sequences",
    "s_min": "optimizer steps",
    "steps_to_target": "optimizer steps",
}
MIN_DISTINCT = 3
CHINCHILLA_TOLERANCE = 1.5  # "on the Chinchilla line": D/N within this factor of 20 tokens per parameter
FORMS = {
    "n_params": "cbs = coefficient * n_params_millions ** exponent",
    "data_tokens": "cbs = coefficient * data_tokens ** exponent",
    "joint": "cbs = coefficient * n_params_millions ** exponents.n_params * data_tokens ** exponents.data_tokens",
}


@dataclass(frozen=True)
class CbsGroup:
    """The CBS fit of one group (a cell: model, N, D, dataset, optimizer), or why it has none."""

    model: str
    n_params: float
    data_tokens: float
    fit: CbsFit | None
    dataset: str = ""  # the dataset's fingerprint ("" where the table does not say)
    optimizer: str = DEFAULT_OPTIMIZER
    error: str | None = None
    unreached_batch_sizes: list[float] = field(default_factory=list)
    target_loss: float | None = None
    warnings: list[FitWarning] = field(default_factory=list)  # cbs.fit.diagnostics, fitted or not
    n_seeds: int = 1  # replicates: each seed's steps-to-target per batch size is a point of the fit
    measures: GroupMeasures | None = None  # B_simple, branched B*, costs (cbs.fit.measures); None: no store

    @property
    def cell(self) -> tuple[str, float, float, str, str]:
        """(model, n_params, data_tokens, dataset, optimizer): the cell key (CELL_KEYS) of the group."""
        return (self.model, self.n_params, self.data_tokens, self.dataset, self.optimizer)

    @property
    def key(self) -> tuple[str, float, float]:
        """(model, n_params, data_tokens): the group's identity."""
        return (self.model, self.n_params, self.data_tokens)

    @property
    def label(self) -> str:
        """'micro-4k, D=71280' (AdamW) or 'micro-4k, D=71280, lion': the group in one short phrase."""
        suffix = "" if self.optimizer == "adamw" else f", {self.optimizer}"
        return f"{self.model}, D={self.data_tokens:g}{suffix}"

    @property
    def diagnostics(self) -> SolverDiagnostics:
        """The S(B) fit's; "no fit" (converged False) for a group refused before or by its fit."""
        if self.fit is None:
            return SolverDiagnostics("none", False, 0, f"no fit: {self.error}")
        return self.fit.diagnostics

    def intervals(self) -> dict[str, tuple[float, float]]:
        """The fit's intervals (`CbsFit.intervals`); none without a fit."""
        return self.fit.intervals() if self.fit else {}

    @property
    def fitted(self) -> CbsFit:
        """The group's S(B) fit; FitError (with the reason) for a group without one."""
        if self.fit is None:
            raise FitError(f"{self.label} has no S(B) fit: {self.error}")
        return self.fit

    def predict(self, batch_sizes: object) -> np.ndarray:
        """S(B) of the group's fit; FitError (with the reason) for a group without one."""
        return self.fitted.predict(batch_sizes)

    def report(self) -> str:
        """The group, then its fit's report (or why it has none) and its warnings."""
        body = self.fit.report() if self.fit else f"  no fit: {self.error}"
        printed = self.fit.warnings if self.fit else []
        warnings = [f"warning: {w.code} — {w.message}" for w in self.warnings if w not in printed]
        seeds = f", {self.n_seeds} seeds" if self.n_seeds > 1 else ""
        return "\n".join([f"{self.label} (N = {self.n_params / 1e6:.4g} M{seeds})", body, *warnings])

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "model": self.model,
            "n_params": self.n_params,
            "n_params_millions": self.n_params / 1e6,
            "data_tokens": self.data_tokens,
            "dataset": self.dataset,
            "optimizer": self.optimizer,
            "n_seeds": self.n_seeds,
            "target_loss": self.target_loss,
            "unreached_batch_sizes": self.unreached_batch_sizes,
            "error": self.error,
            "warnings": [w.to_dict() for w in self.warnings],
        }
        if self.fit is not None:
            out.update(self.fit.to_dict())
        out.update(self.measures.to_dict() if self.measures else GroupMeasures.absent())
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CbsGroup:
        """The group ``to_dict`` wrote: its fit when the JSON holds one (the fit's keys sit beside the group's)."""
        target = data.get("target_loss")
        return cls(
            model=str(data["model"]),
            n_params=float(data["n_params"]),
            data_tokens=number(data["data_tokens"]),
            fit=CbsFit.from_dict(data) if "a" in data else None,
            error=data.get("error"),
            unreached_batch_sizes=[float(b) for b in data.get("unreached_batch_sizes", [])],
            target_loss=None if target is None else float(target),
            warnings=warnings_from(data.get("warnings")),
            dataset=str(data.get("dataset", "")),
            optimizer=str(data.get("optimizer", DEFAULT_OPTIMIZER)),
            n_seeds=int(data.get("n_seeds", 1)),
            measures=GroupMeasures.from_group_dict(data),
        )


@dataclass(frozen=True)
class SubsetLaw:
    """B* = c·x^k over a subset of the fitted groups: x = ``variable`` (N in millions, or D in tokens) with the
    other variable held at ``fixed`` ({"data_tokens": D} or {"n_params": N}), or along the Chinchilla line
    ({"tokens_per_param": 20}: D/N within a factor CHINCHILLA_TOLERANCE of it)."""

    variable: str
    fixed: dict[str, float]
    groups: list[tuple[str, float, float]]  # (model, n_params, data_tokens) of the groups fitted, in x order
    law: PowerLawFit

    @property
    def name(self) -> str:
        """'n_params@data_tokens=125760': the law's variable and what is held fixed."""
        ((key, value),) = self.fixed.items()
        return f"{self.variable}@{key}={value:g}"

    def to_dict(self) -> dict[str, object]:
        """The law's numbers, its groups, and its bootstrap samples (log c, k) that give its band."""
        return {
            "name": self.name,
            "variable": self.variable,
            "fixed": dict(self.fixed),
            "form": FORMS[self.variable],
            "groups": [{"model": m, "n_params": n, "data_tokens": d} for m, n, d in self.groups],
            **self.law.to_dict(),
            "bootstrap_samples": self.law.samples.tolist(),
        }

    def line(self) -> str:
        """'subset law: B* = 2.054·N^-0.123 with N (millions) at D = 1.258e+05 tokens over 4 groups; …'."""
        var = "N (millions)" if self.variable == "n_params" else "D (tokens)"
        ((key, value),) = self.fixed.items()
        at = {"data_tokens": ("D", "tokens"), "n_params": ("N", "params")}.get(key)
        where = f"at {at[0]} = {value:.4g} {at[1]}" if at else f"along D ≈ {value:g}·N"
        f = self.law
        return (
            f"subset law: B* = {f.coefficient:.4g}·{var.split()[0]}^{f.exponent:.3f} with {var} {where} over "
            f"{f.n_points} groups; exponent CI {f.exponent_ci[0]:.3f}–{f.exponent_ci[1]:.3f}, R² {f.r2:.3f}"
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubsetLaw:
        """The subset law ``to_dict`` wrote, with its bootstrap samples (so its band can be drawn)."""
        groups = [(str(g["model"]), float(g["n_params"]), float(g["data_tokens"])) for g in data["groups"]]
        samples = np.asarray(data.get("bootstrap_samples", []), dtype=np.float64).reshape(-1, 2)
        law = dataclasses.replace(PowerLawFit.from_dict(data), samples=samples)
        return cls(str(data["variable"]), {k: float(v) for k, v in data["fixed"].items()}, groups, law)


@dataclass(frozen=True)
class CbsAnalysis:
    """Per-group CBS fits and the CBS scaling laws across groups."""

    groups: list[CbsGroup]
    laws: dict[str, PowerLawFit | JointPowerLawFit]
    laws_absent: dict[str, str]
    overhead: float
    n_boot: int
    subset_laws: list[SubsetLaw] = field(default_factory=list)  # laws over subsets of groups (`_subset_laws`)

    @property
    def b_opt(self) -> float | None:
        """The reference batch size shared by the fitted groups (None when they differ)."""
        values = {g.fit.b_opt for g in self.groups if g.fit}
        return values.pop() if len(values) == 1 else None

    def fixed_value(self, name: str) -> float | None:
        """The single value ``name`` (n_params in millions, or data_tokens) takes across fitted groups, if any."""
        values = {g.n_params / 1e6 if name == "n_params" else g.data_tokens for g in self.groups if g.fit}
        return values.pop() if len(values) == 1 else None

    def law_groups(self, name: str) -> list[CbsGroup]:
        """The groups law ``name`` was fitted over: every fitted group of its optimizer (those with a data size
        for the D laws)."""
        law, optimizer = law_key(name)
        return [
            g
            for g in self.groups
            if g.fit and g.optimizer == optimizer and (law == "n_params" or np.isfinite(g.data_tokens))
        ]

    def law_warnings(self, name: str) -> list[dict[str, object]]:
        """The warnings of the groups under law ``name``: one {group, model, n_params, data_tokens, code} each."""
        return [
            {
                "group": g.label,
                "model": g.model,
                "n_params": g.n_params,
                "data_tokens": g.data_tokens,
                "code": w.code,
            }
            for g in self.law_groups(name)
            for w in g.warnings
        ]

    def law_warning_note(self, name: str) -> str:
        """'lr_edge ×9, b_opt_not_linear ×1': the warning codes of law ``name``'s groups, counted ('' if none)."""
        codes = [w["code"] for w in self.law_warnings(name)]
        return ", ".join(f"{c} ×{codes.count(c)}" for c in dict.fromkeys(codes))

    @property
    def warnings(self) -> list[FitWarning]:
        """Every group's warnings, in group order."""
        return [w for g in self.groups for w in g.warnings]

    @property
    def diagnostics(self) -> SolverDiagnostics:
        """The groups' S(B) fits and the laws' fits as one verdict."""
        parts = [g.fit.diagnostics for g in self.groups if g.fit] + [
            law.diagnostics for law in self.laws.values()
        ]
        return SolverDiagnostics.combine(parts, "per-group S(B) fits and power laws")

    def intervals(self) -> dict[str, tuple[float, float]]:
        """B* per group (keyed 'cbs[<model>, D=<D>]') and each law's exponent(s) ('<law>.exponent...')."""
        out = {f"cbs[{g.label}]": g.fit.cbs_ci for g in self.groups if g.fit}
        for name, law in self.laws.items():
            out |= {f"{name}.{k}": v for k, v in law.intervals().items()}
        return out

    def predict(self, n_params: object = None, data_tokens: object = None) -> np.ndarray:
        """B* from the laws: the joint law when both N (millions) and D are given, else the one law of the
        variable given. FitError when that law was not fitted."""
        name = (
            "joint"
            if n_params is not None and data_tokens is not None
            else ("n_params" if n_params is not None else "data_tokens")
        )
        law = self.laws.get(name)
        if law is None:
            raise FitError(f"no {name} law: {self.laws_absent.get(name, 'give n_params or data_tokens')}")
        if isinstance(law, JointPowerLawFit):
            return law.predict(n_params=n_params, data_tokens=data_tokens)
        return law.predict(n_params if name == "n_params" else data_tokens)

    def law_lines(self) -> list[str]:
        """One line per fitted law (with units and its groups' warnings) and per absent law (with the reason)."""
        lines = []
        for name, law in self.laws.items():
            if isinstance(law, JointPowerLawFit):
                k, ci = law.exponents, law.exponent_cis
                line = (
                    f"B* = {law.coefficient:.4g}·N^{k['n_params']:.3f}·D^{k['data_tokens']:.3f} (N in millions, "
                    f"D in tokens; exponent CIs N {ci['n_params'][0]:.3f}–{ci['n_params'][1]:.3f},"
                    f" D {ci['data_tokens'][0]:.3f}–{ci['data_tokens'][1]:.3f})"
                )
            else:
                base = law_key(name)[0]
                var = "N (millions)" if base == "n_params" else "D (tokens)"
                fixed = self.fixed_value("data_tokens" if base == "n_params" else "n_params")
                at = (
                    f" at fixed {'D' if base == 'n_params' else 'N (millions)'} = {fixed:.4g}"
                    if fixed
                    else ""
                )
                line = (
                    f"B* = {law.coefficient:.4g}·{var.split()[0]}^{law.exponent:.3f} with {var}{at}; exponent CI "
                    f"{law.exponent_ci[0]:.3f}–{law.exponent_ci[1]:.3f}, R² {law.r2:.3f}"
                )
            note = self.law_warning_note(name)
            optimizer = law_key(name)[1]
            prefix = "" if optimizer == "adamw" else f"{optimizer}: "
            lines.append(prefix + line + (f"; warnings of its groups: {note}" if note else ""))
        lines += [f"no {name} law: {why}" for name, why in self.laws_absent.items()]
        return lines + [law.line() for law in self.subset_laws]

    def warning_lines(self) -> list[str]:
        """'micro-4k, D=71280: lr_edge — <message>', one per warning of each group."""
        return [f"{g.label}: {w.code} — {w.message}" for g in self.groups for w in g.warnings]

    def report(self, width: int | None = None) -> str:
        """What `cbs fit cbs` prints: the groups' table (fitted to ``width`` columns), their three measures with
        interval and cost (`render_measures`; one line where the fit had no store), warnings and laws."""
        from cbs.console import Column, render_fitted_table

        by_optimizer = any(g.optimizer != "adamw" for g in self.groups)  # AdamW-only stores print as before
        columns = (
            Column("model"),
            *([Column("optimizer")] if by_optimizer else []),
            Column("N\n(M params)", drop=4, justify="right"),
            Column("D\n(tokens)", justify="right"),
            Column("B* (seqs)\n[95% CI]", justify="right"),
            Column("S_min\n(steps)", drop=5, justify="right"),
            Column("B_noise\n(seqs)", drop=2, justify="right"),
            Column("α\n(free)", drop=6, justify="right"),
            Column("note", drop=3, wrap=True),
        )
        rows = [
            (
                g.model,
                *([g.optimizer] if by_optimizer else []),
                f"{g.n_params / 1e6:.4g}",
                f"{g.data_tokens:.4g}",
                fmt(g.fit.cbs, g.fit.cbs_ci) if g.fit else "-",
                fmt(g.fit.s_min) if g.fit else "-",
                fmt(g.fit.b_noise) if g.fit else "-",
                fmt(g.fit.alpha_variant.alpha) if g.fit and g.fit.alpha_variant else "-",
                g.error or " ".join(f"⚠ {w.code}" for w in g.warnings),
            )
            for g in self.groups
        ]
        b_opt = f"{self.b_opt:g}" if self.b_opt is not None else "per group"
        title = f"Critical batch size (B_opt = {b_opt} seqs, overhead {self.overhead:g})"
        table = render_fitted_table(columns, rows, width, title=title)
        lines = [table, render_measures(measures_frame(self.groups), width)]
        return "\n".join([*lines, *(f"warning: {w}" for w in self.warning_lines()), *self.law_lines()])

    def markdown(self) -> str:
        """The groups as a Markdown table, their three measures (`measures_frame`) as another, then the laws and
        warnings as a list (`cbs fit cbs --markdown`)."""
        from cbs.fit.tables import to_markdown

        items = [*self.law_lines(), *(f"warning: {w}" for w in self.warning_lines())]
        frame = measures_frame(self.groups)
        measures = (
            "Three measures and their cost:\n\n" + to_markdown(measures_display(frame))
            if not frame.empty
            else render_measures(frame) + "\n"
        )
        return (
            to_markdown(self.to_frame()) + "\n" + measures + "\n" + "\n".join(f"- {x}" for x in items) + "\n"
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CbsAnalysis:
        """The analysis ``to_dict`` wrote (laws without their bootstrap samples)."""
        laws: dict[str, PowerLawFit | JointPowerLawFit] = {
            name: JointPowerLawFit.from_dict(d) if "exponents" in d else PowerLawFit.from_dict(d)
            for name, d in data["laws"].items()
        }
        return cls(
            groups=[CbsGroup.from_dict(g) for g in data["groups"]],
            laws=laws,
            laws_absent=dict(data["laws_absent"]),
            overhead=float(data["overhead"]),
            n_boot=int(data["n_boot"]),
            subset_laws=[SubsetLaw.from_dict(d) for d in data.get("subset_laws", [])],
        )

    def to_dict(self) -> dict[str, object]:
        laws = {}
        for name, law in self.laws.items():
            law_d = law.to_dict()
            base, optimizer = law_key(name)
            other = {"n_params": "data_tokens", "data_tokens": "n_params"}.get(base)
            if other and self.fixed_value(other) is not None:
                law_d[f"at_fixed_{other}"] = self.fixed_value(other)
            law_d["optimizer"] = optimizer
            law_d["variables"] = ["n_params", "data_tokens"] if base == "joint" else [base]
            law_d["form"] = FORMS[base]
            law_d["warnings"] = self.law_warnings(name)
            laws[name] = law_d
        return {
            "units": UNITS,
            "b_opt": self.b_opt,
            "overhead": self.overhead,
            "n_boot": self.n_boot,
            "ci_level": 0.95,
            "groups": [g.to_dict() for g in self.groups],
            "laws": laws,
            "laws_absent": self.laws_absent,
            "subset_laws": [law.to_dict() for law in self.subset_laws],
            "diagnostics": self.diagnostics.to_dict(),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per group: model, N (millions), D, B*, its interval, S_min, B_noise, α-variant, the batch
        sizes that never reached the target, the warning codes, error."""
        rows = []
        for g in self.groups:
            f = g.fit
            v = f.alpha_variant if f else None
            rows.append(
                {
                    "model": g.model,
                    "n_params_millions": g.n_params / 1e6,
                    "data_tokens": g.data_tokens,
                    "dataset": g.dataset,
                    "optimizer": g.optimizer,
                    "n_seeds": g.n_seeds,
                    "cbs": f.cbs if f else np.nan,
                    "cbs_lo": f.cbs_ci[0] if f else np.nan,
                    "cbs_hi": f.cbs_ci[1] if f else np.nan,
                    "s_min": f.s_min if f else np.nan,
                    "b_noise": f.b_noise if f else np.nan,
                    "alpha": v.alpha if v else np.nan,
                    "cbs_alpha_variant": v.cbs if v else np.nan,
                    "n_batch_sizes": f.n_points if f else 0,
                    "unreached_batch_sizes": " ".join(f"{b:g}" for b in g.unreached_batch_sizes),
                    "warnings": " ".join(w.code for w in g.warnings),
                    "error": g.error or "",
                }
            )
        return pd.DataFrame(rows)


def _fit_group(
    key: tuple, grp: pd.DataFrame, b_opt: float | None, overhead: float, n_boot: int, seed: int
) -> CbsGroup:
    model, n_params, data_tokens, dataset, optimizer = key
    reached = grp[np.isfinite(grp["steps_to_target"].to_numpy(float))]
    unreached = sorted({float(b) for b in grp["batch_size"]} - {float(b) for b in reached["batch_size"]})
    # seeds are replicates: one point per (batch size, seed), each the fastest of its rows (lr, β2, τ)
    point = ["batch_size", "seed"] if "seed" in grp else ["batch_size"]
    n_seeds = int(grp["seed"].nunique()) if "seed" in grp else 1
    target = grp["target_loss"].dropna().unique() if "target_loss" in grp else []
    common: dict[str, Any] = dict(
        model=str(model),
        n_params=float(n_params),
        data_tokens=float(data_tokens),
        dataset=str(dataset),
        optimizer=str(optimizer),
        unreached_batch_sizes=unreached,
        target_loss=float(target[0]) if len(target) == 1 else None,
        n_seeds=max(n_seeds, 1),
    )
    ref = None
    try:
        ref = reference_batch(grp, b_opt, column="b_opt")
        if reached.empty:
            raise FitError(
                f"target never reached at any batch size ({unreached}); train longer or raise the target"
            )
        points = reached.groupby(point, dropna=False)["steps_to_target"].min().reset_index()
        fit = fit_cbs(
            points["batch_size"].to_numpy(float),
            points["steps_to_target"].to_numpy(float),
            b_opt=ref,
            overhead=overhead,
            n_boot=n_boot,
            seed=seed,
        )
    except FitError as exc:
        suffix = f" (target never reached at B = {unreached})" if unreached and not reached.empty else ""
        return CbsGroup(fit=None, error=f"{exc}{suffix}", warnings=diagnose_group(grp, None, ref), **common)
    return CbsGroup(fit=fit, warnings=diagnose_group(grp, fit, ref) + fit.warnings, **common)


def law_key(name: str) -> tuple[str, str]:
    """('n_params', 'lion') for the law key 'n_params/lion'; ('n_params', 'adamw') for 'n_params'."""
    law, _, optimizer = name.partition("/")
    return law, optimizer or "adamw"


def _laws(
    groups: list[CbsGroup], n_boot: int, seed: int
) -> tuple[dict[str, PowerLawFit | JointPowerLawFit], dict[str, str]]:
    """Power laws of B* across the fitted groups of each optimizer (keys: `law_key`), and why any is absent."""
    laws: dict[str, PowerLawFit | JointPowerLawFit] = {}
    absent: dict[str, str] = {}
    for optimizer in dict.fromkeys(g.optimizer for g in groups):
        suffix = "" if optimizer == "adamw" else f"/{optimizer}"
        own, why = _optimizer_laws([g for g in groups if g.optimizer == optimizer], n_boot, seed)
        laws.update({f"{k}{suffix}": v for k, v in own.items()})
        absent.update({f"{k}{suffix}": v for k, v in why.items()})
    return laws, absent


def _optimizer_laws(
    groups: list[CbsGroup], n_boot: int, seed: int
) -> tuple[dict[str, PowerLawFit | JointPowerLawFit], dict[str, str]]:
    """Power laws of B* across the fitted groups (of one optimizer), and why any law is absent."""
    ok = [g for g in groups if g.fit is not None]
    laws: dict[str, PowerLawFit | JointPowerLawFit] = {}
    absent: dict[str, str] = {}
    n_m = np.array([g.n_params / 1e6 for g in ok])
    d = np.array([g.data_tokens for g in ok])
    cbs = np.array([g.fitted.cbs for g in ok])
    fin = np.isfinite(d)
    for name, x, mask in (("n_params", n_m, np.ones(len(ok), bool)), ("data_tokens", d, fin)):
        distinct = np.unique(x[mask]).size
        if distinct < MIN_DISTINCT:
            absent[name] = (
                f"{name} takes {distinct} distinct value(s) across fitted groups; a law needs {MIN_DISTINCT}"
            )
            continue
        try:
            laws[name] = fit_power_law(x[mask], cbs[mask], n_boot=n_boot, seed=seed)
        except FitError as exc:
            absent[name] = str(exc)
    if np.unique(n_m).size < 2 or np.unique(d[fin]).size < 2:
        absent["joint"] = "the joint law needs both n_params and data_tokens to vary across fitted groups"
    else:
        try:
            laws["joint"] = fit_joint_power_law(
                {"n_params": n_m[fin], "data_tokens": d[fin]}, cbs[fin], n_boot=n_boot, seed=seed
            )
        except FitError as exc:
            absent["joint"] = f"{exc} (e.g. Chinchilla-scaled budgets, D ∝ N)"
    return laws, absent


def _subset_laws(groups: list[CbsGroup], n_boot: int, seed: int) -> list[SubsetLaw]:
    """B* vs N at each data size, B* vs D at each model size, and B* vs N along the Chinchilla line, wherever
    the subset spans ≥ MIN_DISTINCT values of its variable (a subset whose law cannot be fitted is left out)."""
    ok = [g for g in groups if g.fit is not None and np.isfinite(g.data_tokens)]
    subsets: list[tuple[str, dict[str, float], list[CbsGroup]]] = []
    for variable, other in (("n_params", "data_tokens"), ("data_tokens", "n_params")):
        for value in sorted({getattr(g, other) for g in ok}):
            subsets.append((variable, {other: value}, [g for g in ok if getattr(g, other) == value]))
    ratio = CHINCHILLA_TOKENS_PER_PARAM
    line = [g for g in ok if abs(np.log(g.data_tokens / g.n_params / ratio)) <= np.log(CHINCHILLA_TOLERANCE)]
    subsets.append(("n_params", {"tokens_per_param": ratio}, line))
    out = []
    for variable, fixed, members in subsets:
        members = sorted(members, key=lambda g: (getattr(g, variable), g.model))
        x = np.array([g.n_params / 1e6 if variable == "n_params" else g.data_tokens for g in members])
        if np.unique(x).size < MIN_DISTINCT:
            continue
        try:
            law = fit_power_law(x, [g.fitted.cbs for g in members], n_boot=n_boot, seed=seed)
        except FitError:
            continue
        out.append(SubsetLaw(variable, fixed, [g.key for g in members], law))
    return out


def _numeric(table: pd.DataFrame) -> pd.DataFrame:
    """The steps-to-target table with its numbers checked (`numeric_columns`): N and B in every row; steps
    (empty or inf: not reached), D, the target, b_opt and the diagnostics' columns where given."""
    optional = [c for c in ("data_tokens", "target_loss", "b_opt", "best_loss", "initial_loss") if c in table]
    seeds = [Numeric("seed", positive=False, missing_ok=True)] if "seed" in table else []
    grid = [c for hp in HYPERPARAMETERS for c in (hp, f"{hp}_grid_min", f"{hp}_grid_max") if c in table]
    return numeric_columns(
        table if "data_tokens" in table else table.assign(data_tokens=np.nan),
        [
            Numeric("n_params"),
            Numeric("batch_size"),
            Numeric("steps_to_target", positive=False, missing_ok=True, finite=False),
            *(Numeric(c, missing_ok=True, finite=c not in ("best_loss", "initial_loss")) for c in optional),
            *(Numeric(c, positive=False, missing_ok=True) for c in grid),
            *seeds,
        ],
        "the steps-to-target table",
    )


def fit_cbs_table(
    table: pd.DataFrame,
    *,
    b_opt: float | None = None,
    overhead: float = CBS_OVERHEAD,
    n_boot: int = 1000,
    seed: int = 0,
) -> CbsAnalysis:
    """Fit the CBS per group (cell) of a steps-to-target table, then the CBS laws across the groups of each
    optimizer.

    Columns: model, n_params, batch_size, steps_to_target (NaN = target not reached), optional data_tokens,
    dataset and optimizer (the rest of the cell key: two datasets at one model and D are two groups; missing:
    one dataset, adamw), target_loss and b_opt (the group's reference batch; ``b_opt=None`` uses it, else 256), and the diagnostics'
    best_loss, initial_loss, lr/beta2/ewa_tau and their *_grid_min/max. Several rows of one batch size in a
    group and seed (e.g. one per lr) count as their minimum; seeds (an optional ``seed`` column) are replicates:
    each seed's steps at a batch size is one point of the group's fit (and of its residual bootstrap). A group that cannot be fitted is kept with its ``error``;
    if none can be, FitError lists why. Every group carries its ``warnings``
    (`cbs.fit.diagnostics.diagnose_group`), and each law in the JSON the warnings of its groups. The laws over
    subsets of groups (per data size, per model size, along the Chinchilla line) that figures draw are in
    ``subset_laws``, fitted with the same bootstrap.
    """
    require_columns(table, ["model", "n_params", "batch_size", "steps_to_target"], "a CBS fit")
    table = _numeric(table)
    table["model"] = table["model"].astype(str)
    table["dataset"] = table["dataset"].fillna("").astype(str) if "dataset" in table else ""
    table["optimizer"] = (
        table["optimizer"].fillna(DEFAULT_OPTIMIZER).astype(str)
        if "optimizer" in table
        else DEFAULT_OPTIMIZER
    )
    groups = [
        _fit_group(key, grp, b_opt, overhead, n_boot, seed)
        for key, grp in table.groupby(CELL_KEYS, dropna=False, sort=True)
    ]
    groups.sort(
        key=lambda g: (g.n_params, g.data_tokens, g.model, g.dataset, g.optimizer != "adamw", g.optimizer)
    )
    if all(g.fit is None for g in groups):
        reasons = "; ".join(
            f"{g.label}: {g.error}" + "".join(f" [{w.message}]" for w in g.warnings) for g in groups
        )
        raise FitError(f"no group could be fitted: {reasons}")
    laws, absent = _laws(groups, n_boot, seed)
    return CbsAnalysis(
        groups=groups,
        laws=laws,
        laws_absent=absent,
        overhead=float(overhead),
        n_boot=n_boot,
        subset_laws=_subset_laws(groups, n_boot, seed),
    )
