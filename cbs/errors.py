"""Typed errors. Every error a user can cause is a `CbsError` whose message names the problem and the fix."""


class CbsError(Exception):
    """Base class: the CLI prints these as one clear line instead of a traceback."""


class ConfigError(CbsError, ValueError):
    """A config or experiment spec is invalid (unknown key, impossible value, missing file)."""


class DataError(CbsError):
    """A dataset is missing, too small, or does not match what a run asks for."""


class ResultsError(CbsError):
    """A results store is missing, unreadable, or of an unsupported schema version."""


class FitError(CbsError):
    """A fit refused to return a number: too few points, non-finite data, no convergence, ..."""


class RunStopped(Exception):
    """Raised from an ``on_eval`` callback to end a run early on purpose (not a failure): the run is stored
    with ``status`` (e.g. "pruned") and ``reason`` as its ``stop_reason``."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason
