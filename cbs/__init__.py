"""cbs: measure the critical batch size of language-model pretraining and fit the scaling laws around it."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cbs")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+src"

__all__ = ["__version__"]
