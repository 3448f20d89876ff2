"""analysis/measures.py: the B_simple fallback reads each batch size's best run at its target step."""

from __future__ import annotations

import math

import pandas as pd

from analysis.measures import b_simple_at_target

CELL = {"model": "m", "n_params": 10, "data_tokens": 100, "dataset": "d", "optimizer": "adamw"}


def _steps() -> pd.DataFrame:
    rows = [  # B = 1 logged no GNS, B = 8 never reached the target
        {**CELL, "batch_size": 1, "run_id": "r1", "steps_to_target": 50.0},
        {**CELL, "batch_size": 4, "run_id": "r4", "steps_to_target": 12.5},
        {**CELL, "batch_size": 2, "run_id": "r2", "steps_to_target": 30.0},
        {**CELL, "batch_size": 8, "run_id": None, "steps_to_target": math.nan},
    ]
    return pd.DataFrame(rows)


def _curves() -> pd.DataFrame:
    rows = []
    for run, gns in (("r1", None), ("r2", 3.0), ("r4", 5.0)):
        for step in (10, 20, 30, 40, 60):
            value = None if gns is None else gns + step / 100  # a different value at every evaluation
            rows.append({"run_id": run, "step": step, "tokens": step * 64, "wall_time_s": step / 10,
                         "b_simple": value})  # fmt: skip
    return pd.DataFrame(rows)


def test_b_simple_is_read_at_the_first_evaluation_at_or_after_the_target_smallest_batch_first():
    found = b_simple_at_target(_steps(), _curves())
    [(key, values)] = found.items()
    assert key == tuple(CELL.values())
    assert [s.batch_size for s in values] == [2, 4]  # B = 1 has no GNS column values, B = 8 no target
    first, second = values
    assert (first.run_id, first.step, first.tokens) == ("r2", 30, 30 * 64)  # at the target step itself
    assert first.value == 3.0 + 30 / 100
    assert (second.step, second.value) == (20, 5.0 + 20 / 100)  # 12.5 -> the next evaluation, 20
