"""Shared fixtures: the public validation data in ../shared/data (skipped with a reason where absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the public measurements (Chinchilla points, loss-to-loss runs)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public validation data not found at {SHARED_DATA} (it lives beside the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> str:
    """The first 600k tokens of the standard-library corpus, 5% of the documents held out."""
    from cbs.data import ByteTokenizer, prepare_dataset
    from cbs.data.sources import stdlib_documents

    out = tmp_path_factory.mktemp("data") / "stdlib"
    prepare_dataset(
        stdlib_documents(),
        ByteTokenizer(),
        out,
        source="stdlib",
        val_fraction=0.05,
        max_tokens=600_000,
        progress=False,
    )
    return str(out)


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and a shared CPU makes two threads spin against each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
