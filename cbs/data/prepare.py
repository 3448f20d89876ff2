"""Tokenize a stream of documents into a prepared dataset folder (see `cbs.data.dataset`).

Each document goes wholly to ``train`` or ``val`` (by a hash of its text, so train and val never share a
document, and identical documents land in the same split), followed by the tokenizer's end-of-text token.
Tokens are streamed to disk, so corpora larger than memory work; the folder appears atomically at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import TypedDict

import numpy as np

from cbs.data.dataset import FORMAT_VERSION, MANIFEST, SPLITS, PreparedDataset, open_dataset, token_dtype
from cbs.data.tokenizer import ByteTokenizer, HFTokenizer
from cbs.errors import DataError

_CHUNK = 256  # documents tokenized per batch


class SplitCounts(TypedDict):
    """A split's entry in the manifest's ``splits``."""

    file: str
    n_tokens: int
    n_documents: int


def in_val(text: str, val_fraction: float) -> bool:
    """Deterministic split: a document is in val when the hash of its text falls below ``val_fraction``."""
    digest = hashlib.blake2b(text.encode("utf-8", errors="replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < val_fraction


def check_out(out: str | Path, overwrite: bool) -> None:
    """Refuse to replace an existing output folder unless asked to."""
    if Path(out).expanduser().exists() and not overwrite:
        raise DataError(f"{out} already exists; pass --overwrite to replace it or choose another --out")


def prepare_dataset(
    documents: Iterable[str],
    tokenizer: ByteTokenizer | HFTokenizer,
    out: str | Path,
    *,
    source: str,
    val_fraction: float = 0.01,
    max_tokens: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> PreparedDataset:
    """Write ``documents`` tokenized into folder ``out``; returns the opened dataset."""
    out = Path(out).expanduser()
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"--val-fraction must be in (0, 1), got {val_fraction}")
    if max_tokens is not None and max_tokens < 2:
        raise DataError(f"--max-tokens must be >= 2, got {max_tokens}")
    check_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tokenizer.vocab_size)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        counts, hashes = _write_splits(documents, tokenizer, tmp, dtype, val_fraction, max_tokens, progress)
        for split in SPLITS:
            if counts[split]["n_tokens"] < 2:
                raise DataError(
                    f"the {split} split got {counts[split]['n_tokens']} tokens; add data or change --val-fraction"
                )
        tokenizer_info = {
            "name": tokenizer.name,
            "vocab_size": tokenizer.vocab_size,
            "eos_id": tokenizer.eos_id,
        }
        if isinstance(tokenizer, HFTokenizer):
            tokenizer.save(tmp / "tokenizer.json")
            tokenizer_info["file"] = "tokenizer.json"
        manifest = {
            "format_version": FORMAT_VERSION,
            "source": source,
            "tokenizer": tokenizer_info,
            "dtype": dtype.name,
            "val_fraction": val_fraction,
            "max_tokens": max_tokens,
            "splits": counts,
            "fingerprint": hashlib.sha256((hashes["train"] + hashes["val"]).encode()).hexdigest()[:16],
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return open_dataset(out)


def _write_splits(
    documents: Iterable[str],
    tokenizer: ByteTokenizer | HFTokenizer,
    folder: Path,
    dtype: np.dtype,
    val_fraction: float,
    max_tokens: int | None,
    progress: bool,
) -> tuple[dict[str, SplitCounts], dict[str, str]]:
    """Tokenize ``documents`` into ``<split>.bin`` files under ``folder``: each split's counts (its manifest
    entry) and the sha256 of its bytes."""
    counts = {s: SplitCounts(file=f"{s}.bin", n_tokens=0, n_documents=0) for s in SPLITS}
    hashers = {s: hashlib.sha256() for s in SPLITS}
    files = {s: (folder / f"{s}.bin").open("wb") for s in SPLITS}
    eos = None if tokenizer.eos_id is None else np.array([tokenizer.eos_id], dtype=dtype)
    total = 0
    try:
        with _progress(progress, max_tokens) as advance:
            for texts in _chunks(iter(documents)):
                for text, ids in zip(texts, tokenizer.encode_batch(texts), strict=True):
                    ids = ids.astype(dtype)
                    if eos is not None:
                        ids = np.concatenate([ids, eos])
                    if max_tokens is not None:
                        ids = ids[: max_tokens - total]
                    split = "val" if in_val(text, val_fraction) else "train"
                    data = ids.tobytes()
                    files[split].write(data)
                    hashers[split].update(data)
                    counts[split]["n_tokens"] += len(ids)
                    counts[split]["n_documents"] += 1
                    total += len(ids)
                    advance(len(ids))
                    if max_tokens is not None and total >= max_tokens:
                        break
                else:
                    continue
                break
    finally:
        for fh in files.values():
            fh.close()
    return counts, {split: hashers[split].hexdigest() for split in SPLITS}


def _chunks(it: Iterator[str]) -> Iterator[list[str]]:
    while chunk := list(islice(it, _CHUNK)):
        yield chunk


@contextmanager
def _progress(enabled: bool, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over tokens (total known only with --max-tokens); a no-op when disabled."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns) as bar:
        task = bar.add_task("tokens", total=total)
        yield lambda n: bar.advance(task, n)
