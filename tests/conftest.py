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
