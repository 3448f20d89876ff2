"""Sweeps: a YAML spec of a grid of training runs, run on Ray Tune into a Parquet results store.

``load_spec`` → ``plan_sweep`` (expands and validates the whole grid) → ``run_sweep`` (Ray Tune, resumable);
``summarize``/``render`` describe a results directory. See docs/sweep.md.
"""

from cbs.sweep.plan import SweepPlan, Trial, plan_sweep
from cbs.sweep.runner import SweepOutcome, run_sweep
from cbs.sweep.spec import Resources, SweepSpec, TargetRule, load_spec, parse_spec
from cbs.sweep.summary import Summary, invocation_line, render, render_plan, summarize

__all__ = [
    "Resources",
    "Summary",
    "SweepOutcome",
    "SweepPlan",
    "SweepSpec",
    "TargetRule",
    "Trial",
    "invocation_line",
    "load_spec",
    "parse_spec",
    "plan_sweep",
    "render",
    "render_plan",
    "run_sweep",
    "summarize",
]
