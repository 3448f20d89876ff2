"""One driver per results store: a second `cbs sweep`/`cbs branch` on a store in use is refused before Ray starts,
and the lock of a driver killed with SIGKILL does not outlive it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from test_sweep_spec import make_dataset, spec_dict

from cbs.errors import ResultsError
from cbs.sweep import parse_spec, plan_sweep, run_sweep
from cbs.sweep.lock import LOCK_NAME, driver_lock

REPO = Path(__file__).resolve().parents[1]
HOLD = "import sys, time; from pathlib import Path; from cbs.sweep.lock import driver_lock\n" \
       "with driver_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)"  # fmt: skip


def _holder(root: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_store_in_use_is_refused_and_a_killed_holder_frees_it(tmp_path):
    root = tmp_path / "results"
    holder = _holder(root)
    try:
        with (
            pytest.raises(
                ResultsError, match=rf"in use by another cbs sweep or cbs branch \(pid {holder.pid}\)"
            ),
            driver_lock(root),
        ):
            pass
        data = tmp_path / "data"
        data.mkdir()
        plan = plan_sweep(parse_spec(spec_dict(make_dataset(data))))
        started = time.monotonic()
        with pytest.raises(ResultsError, match="another --results folder"):
            run_sweep(plan, root, num_cpus=1, console=Console(quiet=True))
        assert time.monotonic() - started < 5  # refused before Ray starts
        assert not (root / "runs").exists()  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with driver_lock(root):  # the kernel released the killed holder's lock
        assert (root / LOCK_NAME).read_text() != str(holder.pid)
