"""Document sources for `cbs data prepare`: the Python standard library, local files, Hugging Face datasets.

Each source is an iterator of documents (strings) in a deterministic order.
"""

from __future__ import annotations

import glob
import json
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from cbs.errors import DataError

_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_files(root: str | Path | None = None) -> list[Path]:
    """The interpreter's standard-library ``.py`` files (no site-packages), sorted by relative path."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*.py") if not _SKIP_DIRS.intersection(p.relative_to(root).parts)]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def stdlib_documents(root: str | Path | None = None) -> Iterator[str]:
    """One document per standard-library source file (undecodable bytes replaced)."""
    for path in stdlib_files(root):
        yield path.read_bytes().decode("utf-8", errors="replace")


def expand_paths(patterns: list[str]) -> list[Path]:
    """Expand files and globs (sorted, de-duplicated); a pattern matching nothing is an error."""
    out: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches:
            raise DataError(f"{pattern!r} matches no file; check the path or glob")
        out.extend(Path(m) for m in matches if Path(m).is_file())
    return list(dict.fromkeys(out))


def file_documents(patterns: list[str], text_field: str = "text") -> Iterator[str]:
    """Documents from local files: ``.jsonl``/``.json`` (one JSON object per line, ``text_field``),
    ``.parquet`` (column ``text_field``), anything else is plain text, one document per file."""
    for path in expand_paths(patterns):
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json"):
            with path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if line.strip():
                        yield _field(json.loads(line), text_field, f"{path}:{lineno}")
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            if text_field not in pf.schema_arrow.names:
                raise DataError(
                    f"{path} has no column {text_field!r}; pass --text-field one of {pf.schema_arrow.names}"
                )
            for batch in pf.iter_batches(columns=[text_field]):
                yield from (t for t in batch.column(0).to_pylist() if t)
        else:
            yield path.read_text(encoding="utf-8", errors="replace")


def hf_documents(
    name: str,
    config: str | None = None,
    split: str = "train",
    text_field: str = "text",
    data_files: list[str] | None = None,
) -> Iterator[str]:
    """Stream documents of a Hugging Face dataset (``datasets.load_dataset(..., streaming=True)``)."""
    try:
        import datasets
    except ImportError as exc:
        raise DataError("--hf-dataset needs the `datasets` package: pip install 'cbs[hf]'") from exc
    try:
        stream = datasets.load_dataset(name, config, split=split, streaming=True, data_files=data_files)
    except Exception as exc:
        raise DataError(
            f"could not open Hugging Face dataset {name!r} (config {config}, split {split}): {exc}"
        ) from exc
    for i, record in enumerate(stream):
        yield _field(record, text_field, f"{name} record {i}")


def _field(record: dict, text_field: str, where: str) -> str:
    if not isinstance(record, dict) or text_field not in record:
        keys = list(record) if isinstance(record, dict) else type(record).__name__
        raise DataError(f"{where} has no field {text_field!r} (found {keys}); pass --text-field")
    return str(record[text_field])
