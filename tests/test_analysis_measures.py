"""analysis/measures.py: the B_simple of every batch size, read at each one's target step."""

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


def _runs() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run_id": r,
                "preset": "m",
                "n_params": 10,
                "data_tokens": 100,
                "dataset_fingerprint": "d",
                "optimizer": "adamw",
                "flops_per_token": 60.0,
                "config_json": "{}",
            }  # fmt: skip
            for r in ("r1", "r2", "r4")
        ]
    )


def _curves() -> pd.DataFrame:
    rows = []
    for run, gns in (("r1", None), ("r2", 3.0), ("r4", 5.0)):
        for step in (10, 20, 30, 40, 60):
            value = None if gns is None else gns + step / 100  # a different value at every evaluation
            rows.append({"run_id": run, "step": step, "tokens": step * 64, "wall_time_s": step / 10,
                         "b_simple": value})  # fmt: skip
    return pd.DataFrame(rows)


def test_b_simple_of_each_batch_size_is_read_at_its_own_target_step():
    found = b_simple_at_target(_steps(), _runs(), _curves())
    [(key, by_batch)] = found.items()
    assert key == tuple(CELL.values())
    assert sorted(by_batch) == [2, 4]  # B = 1 logged no b_simple, B = 8 has no target
    assert (by_batch[2].run_id, by_batch[2].step, by_batch[2].value) == ("r2", 30, 3.0 + 30 / 100)
    assert by_batch[2].cost.tokens == 30 * 64  # that run's tokens up to the evaluation read
    assert (by_batch[4].step, by_batch[4].value) == (20, 5.0 + 20 / 100)  # 12.5 -> the next evaluation, 20
