"""The interface every fit result shares (lmfit's ``ModelResult`` in spirit).

A result is a frozen dataclass that can be written as JSON and read back: ``to_dict()`` is exactly the JSON
the CLI writes, ``from_dict(to_dict(r)) == r``, and a JSON file written before a key existed still loads
(the key takes its "not recorded" value). ``report()`` is the text the CLI prints; ``predict``,
``intervals()``, ``warnings`` and ``diagnostics`` (what the optimiser said) complete it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from cbs.fit.diagnostics import FitWarning

NOT_CONVERGED = "solver_not_converged"


@dataclass(frozen=True)
class SolverDiagnostics:
    """What the optimiser reported: whether it ``converged`` (None: not recorded, a JSON file older than
    this key), how many objective ``evaluations`` it spent, its ``message``, and for a bootstrap how many of
    ``resamples`` refits converged (``resamples_ok``)."""

    solver: str
    converged: bool | None
    evaluations: int
    message: str
    resamples: int = 0
    resamples_ok: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "solver": self.solver,
            "converged": self.converged,
            "evaluations": self.evaluations,
            "message": self.message,
            "resamples": self.resamples,
            "resamples_ok": self.resamples_ok,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SolverDiagnostics:
        """The diagnostics in ``data``; ``NOT_RECORDED`` when absent (a file written before they were kept)."""
        if data is None:
            return NOT_RECORDED
        return cls(
            solver=str(data["solver"]),
            converged=None if data["converged"] is None else bool(data["converged"]),
            evaluations=int(data["evaluations"]),
            message=str(data["message"]),
            resamples=int(data.get("resamples", 0)),
            resamples_ok=int(data.get("resamples_ok", 0)),
        )

    @classmethod
    def combine(cls, parts: Iterable[SolverDiagnostics], solver: str) -> SolverDiagnostics:
        """Several fits as one: converged when all did (None if any is unknown), evaluations and resamples
        summed, the distinct messages joined."""
        items = list(parts)
        flags = [p.converged for p in items]
        return cls(
            solver=solver,
            converged=None if None in flags else all(flags),
            evaluations=sum(p.evaluations for p in items),
            message="; ".join(dict.fromkeys(p.message for p in items)),
            resamples=sum(p.resamples for p in items),
            resamples_ok=sum(p.resamples_ok for p in items),
        )

    def warning(self, what: str) -> list[FitWarning]:
        """``[solver_not_converged]`` when the solver stopped without converging, else ``[]``."""
        if self.converged is not False:
            return []
        return [
            FitWarning(
                NOT_CONVERGED,
                f"the {what} stopped before converging after {self.evaluations} evaluations "
                f"({self.message}); raise the evaluation budget or check the data",
                {"evaluations": self.evaluations},
            )
        ]

    def describe(self) -> str:
        """'scipy least_squares: converged, 12 evaluations (`ftol` ...)' in one line."""
        state = {True: "converged", False: "NOT converged", None: "convergence not recorded"}[self.converged]
        boot = f"; bootstrap {self.resamples_ok}/{self.resamples} refits converged" if self.resamples else ""
        return f"solver {self.solver}: {state}, {self.evaluations} evaluations ({self.message}){boot}"


NOT_RECORDED = SolverDiagnostics("not recorded", None, 0, "written before solver diagnostics were kept")
EXACT = SolverDiagnostics("linear least squares", True, 1, "closed form")


@runtime_checkable
class FitResult(Protocol):
    """What every fit result offers (see the module docstring)."""

    @property
    def diagnostics(self) -> SolverDiagnostics: ...

    @property
    def warnings(self) -> Sequence[FitWarning]: ...

    def to_dict(self) -> dict[str, object]: ...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitResult: ...

    def report(self) -> str: ...

    def intervals(self) -> dict[str, tuple[float, float]]: ...

    def predict(self, *args: Any, **kwargs: Any) -> Any: ...


class JsonEquality:
    """Equality as "the same JSON": for results holding arrays or tables, which dataclass equality cannot
    compare. Use with ``@dataclass(eq=False)``."""

    def to_dict(self) -> dict[str, object]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and as_json(self.to_dict()) == as_json(other.to_dict())

    __hash__ = None  # type: ignore[assignment]  # unhashable, as a dataclass with eq and not frozen is


def as_json(payload: Mapping[str, object]) -> object:
    """``payload`` as the JSON file holds it (tuples as lists, non-finite floats as null)."""
    from cbs.fit.tables import json_safe

    return json.loads(json.dumps(json_safe(dict(payload)), allow_nan=False))


def number(value: float | None) -> float:
    """A JSON number back as a float; null (a non-finite value written as null) as NaN."""
    return math.nan if value is None else float(value)


def interval(value: object) -> tuple[float, float]:
    """A JSON ``[lower, upper]`` back as a tuple of floats (null ends, an unbounded interval, as inf/NaN)."""
    lo, hi = cast("Sequence[float | None]", value)
    return (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi))


def warnings_from(data: Iterable[Mapping[str, Any]] | None) -> list[FitWarning]:
    """FitWarnings from their JSON (``{code, message, **values}``); none when absent."""
    return [
        FitWarning(
            str(w["code"]), str(w["message"]), {k: v for k, v in w.items() if k not in ("code", "message")}
        )
        for w in data or []
    ]


def law_intervals(
    coefficient_ci: tuple[float, float], exponent_cis: Mapping[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """A power law's intervals by name: 'coefficient' and 'exponent.<variable>'."""
    return {"coefficient": coefficient_ci} | {f"exponent.{k}": v for k, v in exponent_cis.items()}


def fmt(value: float, ci: Sequence[float] | None = None) -> str:
    """'1.234 [1.1, 1.4]': a number to 4 significant digits with its interval."""
    text = f"{value:.4g}"
    return text + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci is not None else "")


def empty_samples(columns: int) -> np.ndarray:
    """The bootstrap samples of a result read from JSON, which does not hold them: none."""
    return np.empty((0, columns))
