"""Save and load the complete state of a run, so that a resumed run continues exactly where it stopped."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cbs.atomic import atomic_write
from cbs.errors import ConfigError
from cbs.optim_params import strip_unused

STATE_FILE = "state.pt"
FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``directory/state.pt`` atomically and durably (cbs.atomic)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    return atomic_write(path, lambda tmp: torch.save({"format_version": FORMAT_VERSION, **state}, tmp))


def load_checkpoint(directory: str | Path, config: dict[str, Any]) -> dict[str, Any]:
    """Load a checkpoint written for the same resolved ``config`` (device, compile, parallel and gns may differ)."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path}; pass a directory written by write_checkpoint")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"{path} has checkpoint format {state.get('format_version')}, expected {FORMAT_VERSION}"
        )
    if _comparable(state["config"]) != _comparable(config):
        raise ConfigError(f"{path} was written by a different run configuration; resume with the same config")
    return state


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    skip = ("device", "compile", "experiment", "parallel", "gns", "keep_checkpoints_at")
    out = {k: v for k, v in config.items() if k not in skip}
    out["optim"] = strip_unused(out["optim"])  # checkpoints from before the optimizer axis still load
    return out
