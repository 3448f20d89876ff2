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
