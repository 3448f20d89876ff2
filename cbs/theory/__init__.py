"""Theory testbed: the exact critical batch size of one-pass mini-batch SGD on power-law linear regression.

See docs/theory.md. `problem` defines the regression problem, `recursion` propagates the exact expected risk
of SGD and of its EWA iterate, `montecarlo` samples the same SGD to check it, `sweep` turns risk curves into
steps-to-target per batch size and writes them to a results store, `study` fits B* against D and dim.
"""

from cbs.theory.problem import PowerLawProblem
from cbs.theory.recursion import RiskTrace, propagate, stable

__all__ = ["PowerLawProblem", "RiskTrace", "propagate", "stable"]
