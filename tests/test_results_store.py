import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cbs.errors import ResultsError
from cbs.results import ResultsStore
from cbs.results.schema import SCHEMA_VERSION_KEY


def _run(run_id: str, loss: float, minute: int = 0) -> dict:
    return {
        "run_id": run_id,
        "status": "completed",
        "batch_size": 8,
        "lr": 1e-3,
        "eval_sets": ["val"],
        "final_ewa_eval_loss": loss,
        "finished_at": dt.datetime(2026, 1, 1, 0, minute, tzinfo=dt.timezone.utc),
    }


def _curve(n: int) -> list[dict]:
    return [{"step": s, "tokens": 100 * s, "eval_set": "val", "eval_loss": 5.0 - s} for s in range(1, n + 1)]


def test_write_and_read_back(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_run(_run("a", 2.0), _curve(3))
    store.write_run(_run("b", 1.5), _curve(2))
    runs = store.runs()
    assert list(runs.run_id) == ["a", "b"]
    assert runs.set_index("run_id").final_ewa_eval_loss.to_dict() == {"a": 2.0, "b": 1.5}
    curves = store.curves()
    assert len(curves) == 5 and curves.groupby("run_id").size().to_dict() == {"a": 3, "b": 2}
    assert store.run_ids() == {"a", "b"}
    # readable without cbs
    assert pd.read_parquet(tmp_path / "runs").shape[0] == 2
    assert pq.read_table(tmp_path / "curves").num_rows == 5


def test_rewriting_a_run_never_duplicates(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_run(_run("a", 2.0, minute=1), _curve(3))
    store.write_run(_run("a", 1.9, minute=2), _curve(4))
    runs, curves = store.runs(), store.curves()
    assert len(runs) == 1 and runs.final_ewa_eval_loss.iloc[0] == 1.9
    assert len(curves) == 4 and not curves.duplicated(["run_id", "step", "eval_set"]).any()
    assert not list(tmp_path.rglob("*.tmp"))


def test_unknown_column_and_bad_status_are_refused(tmp_path):
    store = ResultsStore(tmp_path)
    with pytest.raises(ResultsError, match="not in the results schema"):
        store.write_run({**_run("a", 1.0), "bogus": 1}, _curve(1))
    with pytest.raises(ResultsError, match="status"):
        store.write_run({**_run("a", 1.0), "status": "done"}, _curve(1))
    assert store.run_ids() == set()


def test_schema_version_is_checked(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_run(_run("a", 1.0), _curve(1))
    path = tmp_path / "runs" / "a.parquet"
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({SCHEMA_VERSION_KEY: b"999"}), path)
    with pytest.raises(ResultsError, match="schema v999"):
        store.runs()
    pq.write_table(pa.table({"x": [1]}), path)
    with pytest.raises(ResultsError, match="not written by cbs"):
        store.runs()


def test_missing_store_says_how_to_make_one(tmp_path):
    with pytest.raises(ResultsError, match="cbs sweep"):
        ResultsStore(tmp_path / "nope").runs()


def test_a_file_without_a_later_nullable_column_reads_as_null(tmp_path):
    """Columns added to the schema after a file was written (e.g. reference_batch_size) read back as null."""
    store = ResultsStore(tmp_path)
    store.write_run({**_run("a", 1.0), "reference_batch_size": 16}, _curve(1))
    path = tmp_path / "runs" / "a.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["reference_batch_size"]), path)
    runs = store.runs()
    assert runs.reference_batch_size.isna().all() and runs.final_ewa_eval_loss.iloc[0] == 1.0


def test_a_curve_written_before_the_interval_columns_reads_them_as_null(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_run(_run("a", 1.0), [{**row, "grad_norm": 0.5} for row in _curve(2)])
    path = tmp_path / "curves" / "a.parquet"
    old = ["tokens_per_s", "mfu", "grad_norm", "peak_memory_bytes"]
    pq.write_table(pq.read_table(path).drop_columns(old), path)
    curves = store.curves()
    assert curves[old].isna().all().all() and curves.eval_loss.tolist() == [4.0, 3.0]


def test_a_schema_v1_store_is_still_readable():
    """tests/fixtures/store_v1 was written by cbs before the GNS columns (schema v1): it reads, with those null."""
    from pathlib import Path

    from cbs.results.schema import SCHEMA_VERSION

    assert SCHEMA_VERSION > 1
    store = ResultsStore(Path(__file__).parent / "fixtures" / "store_v1")
    assert store.damaged() == [] and store.run_ids() == {"v1run"}
    curves = store.curves()
    assert curves.step.tolist() == [1, 2, 3] and curves.grad_norm.tolist() == [1.0, 0.5, 1 / 3]
    assert curves[["b_small", "b_simple", "gns_trace"]].isna().all().all()
    assert store.runs().micro_batch_size.tolist() == [4]
