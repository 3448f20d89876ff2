"""A prepared dataset folder: ``train.bin`` / ``val.bin`` token arrays (memory-mapped) and ``manifest.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cbs.errors import DataError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
SPLITS = ("train", "val")
_HINT = "run `cbs data prepare` (e.g. `cbs data prepare --builtin stdlib --out data/stdlib`) to create it"


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every token id fits, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 65535 else np.uint32)


@dataclass
class PreparedDataset:
    """A folder written by `cbs data prepare`; ``tokens(split)`` is a read-only memory map."""

    path: Path
    manifest: dict[str, Any]
    _maps: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["tokenizer"]["vocab_size"])

    @property
    def tokenizer_name(self) -> str:
        return str(self.manifest["tokenizer"]["name"])

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    @cached_property
    def dtype(self) -> np.dtype:
        return np.dtype(self.manifest["dtype"])

    def n_tokens(self, split: str) -> int:
        return int(self._split(split)["n_tokens"])

    def tokens(self, split: str) -> np.ndarray:
        if split not in self._maps:
            info = self._split(split)
            file = self.path / info["file"]
            expected = int(info["n_tokens"]) * self.dtype.itemsize
            if not file.is_file() or file.stat().st_size != expected:
                raise DataError(
                    f"{file} is missing or not {expected} bytes long; the dataset is damaged: {_HINT}"
                )
            self._maps[split] = np.memmap(file, dtype=self.dtype, mode="r", shape=(int(info["n_tokens"]),))
        return self._maps[split]

    def _split(self, split: str) -> dict[str, Any]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.manifest["splits"][split]


def open_dataset(path: str | Path) -> PreparedDataset:
    """Open a prepared dataset folder, checking its manifest; a clear DataError if it is missing or garbled."""
    path = Path(path).expanduser()
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"no prepared dataset at {path} ({MANIFEST} not found): {_HINT}")
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{manifest_path} has format version {manifest.get('format_version')!r}, this cbs reads "
                f"{FORMAT_VERSION}: {_HINT}"
            )
        int(manifest["tokenizer"]["vocab_size"]), str(manifest["fingerprint"]), np.dtype(manifest["dtype"])
        for split in SPLITS:
            int(manifest["splits"][split]["n_tokens"]), str(manifest["splits"][split]["file"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{manifest_path} is not a valid cbs manifest ({exc!r}): {_HINT}") from exc
    return PreparedDataset(path, manifest)
