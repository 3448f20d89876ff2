"""Benchmark: the share of cores × wall time a sweep spends training, from scratch.

Runs ``cbs sweep SPEC`` as a user does (its own process, under GNU ``time -v``) into a fresh results folder,
then reads the runs table: the share of cores × the command's wall time spent inside runs (their
``wall_time_s``) and in training steps (``wall_time_s`` − ``eval_time_s``), and the share of the wall time in
which no run was active at all (from the union of the runs' ``started_at``..``finished_at``). ``--code DIR``
runs another checkout's cbs (e.g. main's, for a before/after): the command then runs in DIR, whose
``experiments/`` and ``data/`` it reads.

    PYTHONPATH=. python benchmarks/bench_sweep.py [--spec experiments/default.yaml] [--code DIR] [--num-cpus 2]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cbs.results import ResultsStore

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Busy:
    """How busy a sweep kept its cores."""

    runs: int
    elapsed_s: float  # the command's wall time (GNU time)
    in_runs_s: float  # Σ runs' wall time
    training_s: float  # Σ runs' wall time less their evaluation time
    active_s: float  # wall time in which at least one run was active
    lead_s: float  # from the command's start to the first run's start (Ray, Tune, worker start-up)
    tail_s: float  # from the last run's end to the command's end (shut-down)
    cores: int

    def row(self, label: str) -> str:
        capacity = self.cores * self.elapsed_s
        return (
            f"| {label} | {self.runs} | {self.elapsed_s:.1f} | {self.in_runs_s / capacity:.1%} | "
            f"{self.training_s / capacity:.1%} | {1 - self.active_s / self.elapsed_s:.1%} | "
            f"{self.lead_s:.1f} | {self.tail_s:.1f} |"
        )


HEADER = (
    "| code | runs | wall (s) | cores × wall in runs | in training steps | wall with no run active "
    "| before the first run (s) | after the last (s) |\n|---|---|---|---|---|---|---|---|"
)


def active_seconds(runs: pd.DataFrame) -> float:
    """Length of the union of the runs' [started_at, finished_at] intervals."""
    spans = sorted(zip(runs.started_at, runs.finished_at, strict=True))
    total, end = 0.0, None
    for start, finish in spans:
        if end is None or start > end:
            total += (finish - start).total_seconds()
            end = finish
        elif finish > end:
            total += (finish - end).total_seconds()
            end = finish
    return total


def gnu_time(stderr: str, field: str) -> str:
    match = re.search(rf"^\s*{re.escape(field)}: (.+)$", stderr, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"GNU time printed no {field!r}: is /usr/bin/time GNU time?")
    return match.group(1).strip()


def wall_seconds(text: str) -> float:
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def measure(spec: Path, code: Path, cores: int, results: Path) -> Busy:
    """Run the sweep of ``spec`` with ``code``'s cbs into ``results`` (fresh) and measure it."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "cbs", "sweep", str(spec)]
    command += ["--results", str(results), "--num-cpus", str(cores)]
    env = {**os.environ, "PYTHONPATH": str(code)}
    started = pd.Timestamp.now(tz="UTC")
    done = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"the sweep failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    ended = pd.Timestamp.now(tz="UTC")
    runs = ResultsStore(results).runs()
    runs = runs[runs.status != "skipped_past_cbs"]  # never trained: no wall time of their own
    return Busy(
        runs=len(runs),
        elapsed_s=wall_seconds(gnu_time(done.stderr, "Elapsed (wall clock) time (h:mm:ss or m:ss)")),
        in_runs_s=float(runs.wall_time_s.sum()),
        training_s=float((runs.wall_time_s - runs.eval_time_s.fillna(0)).sum()),
        active_s=active_seconds(runs),
        lead_s=(runs.started_at.min() - started).total_seconds(),
        tail_s=(ended - runs.finished_at.max()).total_seconds(),
        cores=cores,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="experiments/default.yaml", help="spec path, relative to --code")
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose cbs runs the sweep")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--label", default=None, help="row label (default: the --code folder)")
    args = parser.parse_args()
    code = args.code.absolute()
    with tempfile.TemporaryDirectory(prefix="cbs-bench-sweep-") as tmp:
        busy = measure(Path(args.spec), code, args.num_cpus, Path(tmp) / "results")
    print(HEADER)
    print(busy.row(args.label or str(code)))


if __name__ == "__main__":
    main()
