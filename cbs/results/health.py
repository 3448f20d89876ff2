"""Health of a results store: every run row has a readable row file and a readable curve file.

The check reads Parquet footers only (``pq.read_metadata``: a few KB per file), which is enough to see a
truncated, empty or foreign file: the footer and its magic bytes sit at the end of a Parquet file. Damaged runs
are healed by moving their files aside (``DIR/damaged/{runs,curves}/<id>.parquet.damaged-<UTC time>``) so that
the next `cbs sweep` trains them again.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cbs.errors import ResultsError
from cbs.results.schema import READABLE_VERSIONS, SCHEMA_VERSION, SCHEMA_VERSION_KEY, TABLE_KEY


@dataclass(frozen=True)
class DamagedRun:
    """A run whose row or curve cannot be read: ``path`` is the file at fault, ``problem`` says how."""

    run_id: str
    path: Path
    problem: str

    def describe(self) -> str:
        return f"run {self.run_id}: {self.path} {self.problem}"


class DamagedStoreError(ResultsError):
    """The store holds runs whose row or curve cannot be read (``damaged`` lists them)."""

    def __init__(self, root: Path, damaged: list[DamagedRun]) -> None:
        self.damaged = damaged
        listed = "; ".join(d.describe() for d in damaged)
        super().__init__(
            f"{len(damaged)} damaged run(s) in {root}: {listed}. Fix: `cbs sweep SPEC --results {root}` moves "
            f"them to {root / 'damaged'} and trains them again (or pass --skip-damaged to leave them out)"
        )


def file_problem(path: Path, table: str) -> str | None:
    """None if ``path`` is a readable cbs Parquet file of ``table`` with at least one row, else why not."""
    try:
        meta = pq.read_metadata(path)
    except FileNotFoundError:
        return "is missing"
    except (OSError, pa.ArrowException) as exc:
        return f"is not a readable Parquet file (truncated or corrupt: {exc})"
    kv = meta.metadata or {}
    version = kv.get(SCHEMA_VERSION_KEY)
    if version is None:
        return f"has no {SCHEMA_VERSION_KEY.decode()} metadata: it was not written by cbs"
    if int(version) not in READABLE_VERSIONS:
        return (
            f"uses results schema v{int(version)}, this cbs reads v1..v{SCHEMA_VERSION}: install the cbs version "
            "that wrote it, or re-run the sweep"
        )
    if kv.get(TABLE_KEY, table.encode()) != table.encode():
        return f"holds the {kv[TABLE_KEY].decode()} table, found under {table}/"
    if table == "runs" and meta.num_rows < 1:
        return "holds no run row"
    return None


def damaged_runs(root: Path) -> list[DamagedRun]:
    """Every run of the store at ``root`` whose row file or curve file is missing or unreadable, by run id.

    A run counts as stored once its row file exists (rows are written after their curve), so a curve without
    a row is a run still to train, not damage."""
    runs_dir, curves_dir = root / "runs", root / "curves"
    out = []
    for row in sorted(runs_dir.glob("*.parquet")) if runs_dir.is_dir() else []:
        curve = curves_dir / row.name
        for path, table in ((row, "runs"), (curve, "curves")):
            problem = file_problem(path, table)
            if problem:
                out.append(DamagedRun(row.stem, path, problem))
                break
    return out


def quarantine(root: Path, damaged: list[DamagedRun], now: dt.datetime | None = None) -> list[Path]:
    """Move the row and curve files of each damaged run to ``root/damaged/{runs,curves}/`` (nothing is deleted),
    so that the run is no longer stored and the next sweep trains it again. Returns the new paths."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for d in damaged:
        for table in ("curves", "runs"):  # the row last: a crash in between leaves a curve without a row
            src = root / table / f"{d.run_id}.parquet"
            if not src.exists():
                continue
            dst = root / "damaged" / table / f"{src.name}.damaged-{stamp}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            moved.append(dst)
    return moved
