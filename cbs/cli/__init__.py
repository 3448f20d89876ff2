"""The `cbs` command line.

Each sub-command lives in its own module under `cbs.cli` and exposes ``register(subparsers)``, which adds its
parser and sets ``func`` (a callable taking the parsed namespace and returning an exit code). Modules import
their heavy dependencies (torch, ray, matplotlib) inside ``func`` so that ``cbs --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cbs import __version__
from cbs.errors import CbsError

# Order is the order shown by `cbs --help`.
COMMAND_MODULES = (
    "data",
    "train",
    "sweep",
    "branch",
    "status",
    "fit",
    "figures",
    "report",
    "theory",
    "advise",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cbs",
        description="Measure the critical batch size of LM pretraining and fit the scaling laws around it.",
    )
    parser.add_argument("--version", action="version", version=f"cbs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"cbs.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CbsError as exc:
        print(f"cbs {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cbs {args.command}: interrupted", file=sys.stderr)
        return 130
