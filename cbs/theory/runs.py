"""Rows of the results store for one theory cell: one run per batch size (its best (γ, τ)) and its curve.

Same contract as the language-model runs (docs/results.md), so `cbs fit cbs` and the figures read it:
n_params = dim, data_tokens = D, batch_size = B, lr = γ, ewa_tau = τ, one "token" = one sample, eval set
"risk" holding excess risks ½(w − w*)ᵀH(w − w*) (not counting the irreducible ½σ²).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from cbs import __version__
from cbs.theory.problem import PowerLawProblem
from cbs.theory.sweep import BatchResult, CellResult

EXPERIMENT = "theory-linreg"
EVAL_SET = "risk"


def preset_name(cell: CellResult) -> str:
    """E.g. ``linreg-a2-b4-s1-dim64``: the problem (spectrum, source, noise, truncation) of a cell."""
    p = cell.problem
    return f"linreg-a{p.a:g}-b{p.b:g}-s{p.sigma:g}-dim{p.dim}"


def dataset_name(problem: PowerLawProblem) -> str:
    """E.g. ``gaussian-powerlaw-a2-b4-s1``: the data distribution (everything but dim)."""
    return f"gaussian-powerlaw-a{problem.a:g}-b{problem.b:g}-s{problem.sigma:g}"


def _run_row(cell: CellResult, run: BatchResult, wall_s: float, now: datetime) -> dict[str, object]:
    p = cell.problem
    config = {
        "problem": {"a": p.a, "b": p.b, "sigma": p.sigma, "dim": p.dim},
        "data_size": cell.data_size,
        "batch_size": run.batch_size,
        "lr": run.lr,
        "ewa_tau": run.tau,
        "max_steps": cell.max_steps,
        "target_excess_risk": cell.target,
    }
    config_json = json.dumps(config, sort_keys=True)
    reached = run.steps_to_target is not None
    steps = int(run.curve_steps[-1])
    return {
        "run_id": hashlib.sha256(config_json.encode()).hexdigest()[:16],
        "experiment": EXPERIMENT,
        "preset": preset_name(cell),
        "n_params": p.dim,
        "total_params": p.dim,
        "d_model": p.dim,
        "seq_len": 1,
        "batch_size": run.batch_size,
        "batch_tokens": run.batch_size,
        "micro_batch_size": run.batch_size,
        "lr": run.lr,
        "beta1": 0.0,
        "weight_decay": 0.0,
        "schedule": "constant",
        "warmup_tokens": 0,
        "ewa_tau": run.tau,
        "token_budget": cell.max_steps * run.batch_size,
        "data_tokens": cell.data_size,
        "dataset": dataset_name(p),
        "eval_sets": [EVAL_SET],
        "seed": 0,
        "target_loss": cell.target,
        "reference_batch_size": cell.reference_batch,
        "status": "reached_target" if reached else "completed",
        "steps": steps,
        "tokens": steps * run.batch_size,
        "final_eval_loss": float(run.curve_risk[-1]),
        "final_ewa_eval_loss": float(run.curve_ewa_risk[-1]),
        "best_ewa_eval_loss": float(run.curve_ewa_risk.min()),
        "steps_to_target": run.steps_to_target,
        "wall_time_s": wall_s,
        "device": "cpu",
        "dtype": "float64",
        "cbs_version": __version__,
        "started_at": now,
        "finished_at": now,
        "config_json": config_json,
    }


def _curve_rows(run: BatchResult) -> list[dict[str, object]]:
    return [
        {
            "step": int(step),
            "tokens": int(step) * run.batch_size,
            "eval_set": EVAL_SET,
            "eval_loss": float(risk),
            "ewa_eval_loss": float(ewa),
            "lr": run.lr,
        }
        for step, risk, ewa in zip(run.curve_steps, run.curve_risk, run.curve_ewa_risk, strict=True)
    ]


def cell_rows(cell: CellResult, wall_s: float) -> list[tuple[dict[str, object], list[dict[str, object]]]]:
    """(run row, curve rows) for each batch size of the cell; ``wall_s`` is the cell's time, shared out."""
    now = datetime.now(timezone.utc)
    share = wall_s / len(cell.batches)
    return [(_run_row(cell, run, share, now), _curve_rows(run)) for run in cell.batches]
