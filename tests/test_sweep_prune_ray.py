"""A real pruned sweep against the same sweep with --no-prune (tiny grid, local Ray with 2 CPUs): the same
steps-to-target table and the same CBS fit, for fewer tokens."""

from __future__ import annotations

import pandas as pd
import pytest
from rich.console import Console
from test_sweep_spec import make_dataset, spec_dict

from cbs.fit import fit_cbs_table, steps_to_target_table
from cbs.results import ResultsStore
from cbs.sweep import parse_spec, plan_sweep, run_sweep
from cbs.sweep.cluster import ray_session
from cbs.sweep.replay import UNCHANGED

pytestmark = pytest.mark.slow  # two sweeps of 10 tiny runs each on Ray


def test_pruned_and_unpruned_sweeps_give_the_same_table_and_fit(tmp_path):
    data = make_dataset(tmp_path)
    spec = spec_dict(data, target={"reference_batch_size": 1, "budget_multiple": 3})
    spec["grid"] = {"batch_size": [1, 2, 4, 8, 16], "optim.lr": [1e-2, 3e-2]}
    plan = plan_sweep(parse_spec(spec))
    stores = {}
    with ray_session(num_cpus=2):
        for prune in (False, True):
            stores[prune] = ResultsStore(tmp_path / f"prune-{prune}")
            run_sweep(plan, stores[prune].root, console=Console(quiet=True), prune=prune)
    tables = {p: steps_to_target_table(s) for p, s in stores.items()}
    pd.testing.assert_frame_equal(tables[True][UNCHANGED], tables[False][UNCHANGED])
    fits = {p: fit_cbs_table(t, n_boot=50).to_frame() for p, t in tables.items()}
    pd.testing.assert_frame_equal(fits[True], fits[False])
    runs = {p: s.runs() for p, s in stores.items()}
    assert len(runs[True]) == len(runs[False]) == len(plan.trials)  # every grid point has its row
    assert runs[True].status.isin(["pruned", "skipped_past_cbs"]).any()
    assert runs[True].tokens.sum() < runs[False].tokens.sum()
