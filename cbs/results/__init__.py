"""The results store: Parquet runs table + curves dataset (see docs/results.md)."""

from cbs.results.schema import CURVES_SCHEMA, RUNS_SCHEMA, SCHEMA_VERSION, STATUSES
from cbs.results.store import ResultsStore, atomic_write_parquet, without_branches

__all__ = [
    "CURVES_SCHEMA",
    "RUNS_SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "ResultsStore",
    "atomic_write_parquet",
    "without_branches",
]
