"""Read and write a results store: ``runs/<run_id>.parquet`` and ``curves/<run_id>.parquet`` under one folder.

Writes are atomic and durable (cbs.atomic), the curve before the run
row, so a run row is only ever visible once its whole curve is. Reads check the schema version written in
the Parquet metadata and de-duplicate on ``run_id`` (runs) and ``(run_id, step, eval_set)`` (curves), so
re-running or resuming a sweep never duplicates a row. Reading a store first checks its health
(cbs.results.health): a run whose row or curve cannot be read is an error naming it, or with
``skip_damaged=True`` is left out of both tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cbs.atomic import atomic_write
from cbs.errors import ResultsError
from cbs.results.health import DamagedRun, DamagedStoreError, damaged_runs, file_problem
from cbs.results.schema import (
    CURVES_SCHEMA,
    RUNS_SCHEMA,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    STATUSES,
    TABLE_KEY,
)


def to_table(rows: Iterable[Mapping[str, object]], schema: pa.Schema, table: str) -> pa.Table:
    """Build a table of ``schema`` from dict rows; unknown keys are an error, missing keys are null."""
    rows = list(rows)
    names = set(schema.names)
    for row in rows:
        unknown = set(row) - names
        if unknown:
            raise ResultsError(
                f"{table} row has columns not in the results schema: {sorted(unknown)}; "
                f"the {table} columns are listed in cbs/results/schema.py"
            )
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    try:
        out = pa.Table.from_pydict(columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ResultsError(f"{table} rows do not fit the results schema: {exc}") from exc
    metadata = {SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode(), TABLE_KEY: table.encode()}
    return out.replace_schema_metadata(metadata)


def atomic_write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so that readers see either the old file, the new one, or none."""
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


@dataclass(frozen=True)
class ResultsStore:
    """A results directory. ``ResultsStore(path).write_run(row, curve)`` then ``.runs()`` / ``.curves()``.

    ``skip_damaged``: read around damaged runs (see ``damaged()``) instead of raising DamagedStoreError."""

    root: Path
    skip_damaged: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser().absolute())

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def curves_dir(self) -> Path:
        return self.root / "curves"

    def write_run(self, run: Mapping[str, object], curve: Iterable[Mapping[str, object]]) -> None:
        """Store one run: its curve rows, then its runs-table row (the row marks the run as stored)."""
        run_id = run.get("run_id")
        if not run_id or not isinstance(run_id, str):
            raise ResultsError("a run row needs a non-empty string run_id")
        if run.get("status") not in STATUSES:
            raise ResultsError(f"run {run_id}: status {run.get('status')!r} is not one of {STATUSES}")
        curve = [dict(row, run_id=run_id) for row in curve]
        atomic_write_parquet(to_table(curve, CURVES_SCHEMA, "curves"), self.curves_dir / f"{run_id}.parquet")
        atomic_write_parquet(to_table([run], RUNS_SCHEMA, "runs"), self.runs_dir / f"{run_id}.parquet")

    def run_ids(self) -> set[str]:
        """Ids of the runs stored so far (cheap: file names only)."""
        if not self.runs_dir.is_dir():
            return set()
        return {p.stem for p in self.runs_dir.glob("*.parquet")}

    def damaged(self) -> list[DamagedRun]:
        """Runs whose row or curve file is missing or unreadable (Parquet footers only: cheap)."""
        return damaged_runs(self.root)

    def runs(self) -> pd.DataFrame:
        """The runs table, one row per run_id (the latest written wins); every run in it has a readable curve.
        Raises DamagedStoreError naming the damaged runs unless ``skip_damaged``, which leaves them out."""
        df = self._read("runs", RUNS_SCHEMA)
        if df.empty:
            return df
        df = df.sort_values("finished_at", kind="stable", na_position="first")
        return df.drop_duplicates("run_id", keep="last").sort_values("run_id").reset_index(drop=True)

    def curves(self, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Every evaluation point, optionally of some runs only, de-duplicated on (run_id, step, eval_set);
        damaged runs as in ``runs()``."""
        df = self._read("curves", CURVES_SCHEMA, run_ids)
        if df.empty:
            return df
        df = df.drop_duplicates(["run_id", "step", "eval_set"], keep="last")
        return df.sort_values(["run_id", "eval_set", "step"]).reset_index(drop=True)

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The runs table and the curves of its runs (what the fits take: `cbs.fit.steps_to_target_table`)."""
        runs = self.runs()
        return runs, self.curves(runs["run_id"])

    def _read(self, table: str, schema: pa.Schema, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
        folder = self.root / table
        if not self.root.is_dir():
            raise ResultsError(
                f"no results store at {self.root}: run `cbs sweep SPEC --results {self.root}` first"
            )
        files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
        damaged = self.damaged()
        if damaged and not self.skip_damaged:
            raise DamagedStoreError(self.root, damaged)
        skip = {d.run_id for d in damaged}
        files = [f for f in files if f.stem not in skip]
        if run_ids is not None:
            wanted = set(run_ids)
            files = [f for f in files if f.stem in wanted]
        tables = [self._read_file(f, table, schema) for f in files]
        if not tables:
            return schema.empty_table().to_pandas()
        return pa.concat_tables(tables).to_pandas()

    @staticmethod
    def _read_file(path: Path, table: str, schema: pa.Schema) -> pa.Table:
        problem = file_problem(path, table)
        if problem:
            raise ResultsError(f"{path} {problem}; move it aside and resume the sweep")
        return pq.read_table(path, schema=schema)


def without_branches(runs: pd.DataFrame) -> pd.DataFrame:
    """The grid runs of a runs table: branched runs (`cbs branch`, with a ``parent_run_id``) left out."""
    if "parent_run_id" not in runs:
        return runs
    return runs[runs["parent_run_id"].isna()].reset_index(drop=True)
