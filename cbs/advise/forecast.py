"""Forecast the batch size of a planned run from a fitted CBS law or a bundled published law, with the
serial-steps / compute trade-off around it.

Trade-off: McCandlish et al.'s hyperbola, S(B) = S_min·(1 + B_noise/B) steps and E(B) = E_min·(1 + B/B_noise)
samples to reach the same loss. A critical batch B* = (1 + o)·b_opt + o·B_noise (Zhang et al.'s definition with
the α = 1 fit, overhead o) gives B_noise = (B* − (1 + o)·b_opt)/o; an optimal-batch law gives no B_noise, so no
trade-off.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbs.advise.laws import PlannedRun, PublishedLaw
from cbs.errors import FitError
from cbs.protocol import CBS_OVERHEAD

Z_95 = 1.959963984540054
TRADE_OFF_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)  # batch sizes of the trade-off table, as multiples of B*


@dataclass(frozen=True)
class Forecast:
    """One law's answer for a run: the batch in the run's sequences and in tokens, its 95% interval (None for a
    law published without one), whether the run lies outside the law's measured range, and the trade-off."""

    law: str
    kind: str  # critical | optimal
    batch_size: float  # sequences of the planned run's length
    batch_tokens: float
    interval: tuple[float, float] | None  # sequences
    units: str
    source: str
    extrapolated: bool
    warnings: list[str] = field(default_factory=list)
    b_noise: float | None = None  # sequences
    trade_off: list[dict[str, float]] = field(default_factory=list)
    extras: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "law": self.law,
            "kind": self.kind,
            "batch_size": self.batch_size,
            "batch_tokens": self.batch_tokens,
            "interval": list(self.interval) if self.interval else None,
            "units": self.units,
            "source": self.source,
            "extrapolated": self.extrapolated,
            "warnings": list(self.warnings),
            "b_noise": self.b_noise,
            "trade_off": list(self.trade_off),
            **self.extras,
        }


def trade_off(b_star: float, b_noise: float | None) -> list[dict[str, float]]:
    """Steps S/S_min = 1 + B_noise/B and samples E/E_min = 1 + B/B_noise at B = B*/4 … 4·B* (empty without a
    positive B_noise)."""
    if b_noise is None or not b_noise > 0:
        return []
    return [
        {
            "batch_size": f * b_star,
            "steps_over_min": 1 + b_noise / (f * b_star),
            "samples_over_min": 1 + f * b_star / b_noise,
        }
        for f in TRADE_OFF_FACTORS
    ]


def noise_scale(b_star: float, b_opt: float | None, overhead: float = CBS_OVERHEAD) -> float | None:
    """B_noise = (B* − (1 + o)·b_opt)/o, or None when it is not positive (B* at the b_opt floor)."""
    if b_opt is None:
        return None
    b_noise = (b_star - (1 + overhead) * b_opt) / overhead
    return b_noise if b_noise > 0 else None


def _in_run_units(
    name: str, batch: float, unit: str, law_seq_len: int, run: PlannedRun
) -> tuple[float, float, list[str]]:
    """(sequences of the run's length, tokens, warnings) of a law's batch: the law's tokens are kept."""
    tokens = batch * law_seq_len if unit == "sequences" else batch
    notes = []
    if unit == "sequences" and law_seq_len != run.seq_len:
        notes.append(
            f"{name} counts sequences of {law_seq_len} tokens; converted at equal tokens to sequences of "
            f"{run.seq_len} (an assumption: the CBS in tokens is taken not to depend on the sequence length)"
        )
    return tokens / run.seq_len, tokens, notes


def from_published(law: PublishedLaw, run: PlannedRun) -> Forecast:
    """The bundled law's forecast (no interval: the laws are published as point estimates)."""
    outside = law.validity.outside(law.quantities(run))
    notes = list(outside)
    if law.name == "deepseek2024" and (run.n_layers is None or run.d_model is None):
        notes.append(
            "FLOPs per token taken as 6·N (attention left out): pass --n-layers and --d-model for DeepSeek's M"
        )
    batch = law.batch(run)
    seqs, tokens, unit_notes = _in_run_units(law.name, batch, law.unit, law.law_seq_len, run)
    b_star_law = batch  # in the law's own sequences, where its b_opt lives
    b_noise = noise_scale(b_star_law, law.b_opt) if law.kind == "critical" else None
    if law.kind == "critical" and b_noise is None:
        notes.append(
            f"B* is at the protocol's floor 1.2·b_opt = {1.2 * (law.b_opt or 0):g}: no B_noise, no trade-off"
        )
    scale = seqs / batch  # law sequences -> run sequences
    return Forecast(
        law=law.name,
        kind=law.kind,
        batch_size=seqs,
        batch_tokens=tokens,
        interval=None,
        units=f"sequences of {run.seq_len} tokens",
        source=f"{law.source}; {law.formula}",
        extrapolated=bool(outside),
        warnings=notes + unit_notes,
        b_noise=b_noise * scale if b_noise else None,
        trade_off=trade_off(seqs, b_noise * scale if b_noise else None),
        extras={k: float(v) for k, v in (law.extras(run) if law.extras else {}).items()},
    )


FIT_LAW_ORDER = ("joint", "data_tokens", "n_params")  # the fit's law a forecast uses, first present


def from_fit(
    fit: Mapping[str, Any],
    run: PlannedRun,
    fit_seq_len: int | None,
    source: str,
    law_name: str | None = None,
) -> Forecast:
    """The forecast of a CBS fit's law (``cbs fit cbs --json``'s dict): the joint B*(N, D) where fitted, else
    B*(D), else B*(N); the interval from the law's bootstrap covariance of (log c, exponents), normal on the log
    scale; extrapolated where N or D lies outside the fitted groups' range."""
    laws = fit.get("laws") or {}
    assert isinstance(laws, Mapping)
    name = law_name or next((n for n in FIT_LAW_ORDER if n in laws), None)
    if name is None or name not in laws:
        raise FitError(
            f"the fit has no CBS law{f' {law_name!r}' if law_name else ''} (laws: {sorted(laws)}); fit one with `cbs fit cbs` over groups that vary N or D"
        )
    law = laws[name]
    values = {"n_params": run.n_params / 1e6, "data_tokens": run.tokens}
    variables = list(law["variables"])
    exps = law["exponents"] if "exponents" in law else {variables[0]: law["exponent"]}
    g = np.array([1.0, *(math.log(values[v]) for v in variables)])
    log_b = math.log(law["coefficient"]) + sum(exps[v] * math.log(values[v]) for v in variables)
    notes: list[str] = []
    cov = law.get("log_covariance")
    interval = None
    if cov is not None:
        sd = float(np.sqrt(max(g @ np.asarray(cov, dtype=float) @ g, 0.0)))
        interval = (math.exp(log_b - Z_95 * sd), math.exp(log_b + Z_95 * sd))
    else:
        notes.append(
            "the fit JSON carries no law covariance (written by an older cbs): no interval; refit it"
        )
    groups = [grp for grp in fit.get("groups", []) if grp.get("cbs") is not None]
    for v, label in (("n_params", "N"), ("data_tokens", "D")):
        if v not in variables:
            continue
        seen = [float(grp[v]) / (1e6 if v == "n_params" else 1) for grp in groups]
        if seen and not min(seen) <= values[v] <= max(seen):
            notes.append(
                f"{label} = {values[v]:.4g} lies outside the fitted groups' [{min(seen):.4g}, {max(seen):.4g}]"
            )
    extrapolated = any("outside" in n for n in notes)
    b_star = math.exp(log_b)
    law_seq = fit_seq_len or run.seq_len
    if fit_seq_len is None:
        notes.append(
            "the fit's sequence length is unknown (a fit JSON): its sequences are taken to be the run's"
        )
    seqs, tokens, unit_notes = _in_run_units(name, b_star, "sequences", law_seq, run)
    scale = seqs / b_star
    b_opt = fit.get("b_opt")
    b_noise = noise_scale(
        b_star, float(b_opt) if b_opt is not None else None, float(fit.get("overhead", CBS_OVERHEAD))
    )
    return Forecast(
        law=f"fit:{name}",
        kind="critical",
        batch_size=seqs,
        batch_tokens=tokens,
        interval=(interval[0] * scale, interval[1] * scale) if interval else None,
        units=f"sequences of {run.seq_len} tokens",
        source=f"{source}; {law['form']}",
        extrapolated=extrapolated,
        warnings=notes + unit_notes,
        b_noise=b_noise * scale if b_noise else None,
        trade_off=trade_off(seqs, b_noise * scale if b_noise else None),
    )


@dataclass(frozen=True)
class Advice:
    """The forecasts of every law asked for, for one planned run; ``to_dict`` is the JSON `cbs advise --json`
    writes and ``report`` the text it prints."""

    run: PlannedRun
    forecasts: list[Forecast]

    def to_dict(self) -> dict[str, object]:
        return {"run": dataclasses.asdict(self.run), "forecasts": [f.to_dict() for f in self.forecasts]}

    def report(self) -> str:
        """One line per law (batch, interval, tokens, B_noise, extrapolated), its warnings, and the trade-off
        table of each law that has a B_noise."""
        r = self.run
        lines = [
            f"Planned run: N = {r.n_params:.4g} non-embedding params, D = {r.tokens:.4g} tokens, "
            f"sequences of {r.seq_len} tokens",
            "",
            f"{'law':<24} {'batch (seqs) [95% CI]':>30} {'batch tokens':>13} {'B_noise':>9}  extrapolated",
        ]
        for f in self.forecasts:
            ci = f" [{f.interval[0]:.4g}, {f.interval[1]:.4g}]" if f.interval else " [no interval]"
            noise = f"{f.b_noise:.4g}" if f.b_noise else "-"
            lines.append(
                f"{f.law:<24} {f'{f.batch_size:.4g}{ci}':>30} {f.batch_tokens:>13.4g} {noise:>9}  "
                f"{'yes' if f.extrapolated else 'no'}"
            )
            lines += [f"  {k} = {v:.4g}" for k, v in f.extras.items()]
            lines += [f"  warning: {w}" for w in f.warnings]
        for f in self.forecasts:
            if f.trade_off:
                lines += [
                    "",
                    f"Trade-off under {f.law} (S = S_min(1 + B_noise/B), E = E_min(1 + B/B_noise)):",
                ]
                lines.append(f"  {'batch (seqs)':>12} {'steps / S_min':>14} {'tokens / E_min':>15}")
                lines += [
                    f"  {t['batch_size']:>12.4g} {t['steps_over_min']:>14.3f} {t['samples_over_min']:>15.3f}"
                    for t in f.trade_off
                ]
        return "\n".join(lines)
