"""`cbs advise`: the batch size for a planned run, from a fitted store or fit JSON and from published laws."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cbs.cli.options import whole_number


def positive_number(value: str) -> float:
    """An argparse ``type``: a number > 0 (1.5e8 and 151000000 both work)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value}")
    return number


def register(subparsers: argparse._SubParsersAction) -> None:
    from cbs.advise.laws import LAWS

    p = subparsers.add_parser(
        "advise",
        help="what batch size should a planned run use: CBS forecasts from your fit and from published laws",
        description="Forecast the critical batch size of a run with N non-embedding parameters and D tokens from "
        "a fitted store or `cbs fit cbs --json` file (its joint B*(N, D) law where fitted, else B*(D), else "
        "B*(N)) and from bundled published laws, side by side, with the serial-steps / compute trade-off.",
    )
    p.add_argument(
        "--n-params", type=positive_number, required=True, help="non-embedding parameters (e.g. 1.5e8)"
    )
    p.add_argument("--tokens", type=positive_number, required=True, help="training tokens D (e.g. 3e9)")
    p.add_argument(
        "--seq-len", type=whole_number(1), default=512, help="sequence length of the run (default 512)"
    )
    p.add_argument("--n-layers", type=whole_number(1), help="layers (DeepSeek's FLOPs per token need them)")
    p.add_argument("--d-model", type=whole_number(1), help="width (DeepSeek's FLOPs per token need it)")
    p.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="a results store (fitted here with `cbs fit cbs`'s defaults) or a `cbs fit cbs --json` file",
    )
    p.add_argument(
        "--fit-law",
        choices=("joint", "data_tokens", "n_params"),
        help="which law of the fit to use (default: first fitted of these)",
    )
    p.add_argument(
        "--law",
        action="append",
        metavar="NAME",
        help=f"a bundled law (repeatable; default: all): {', '.join(LAWS)}; 'none' for the fit only",
    )
    p.add_argument("--json", type=Path, help="write the forecasts as JSON to this file")
    p.set_defaults(func=run)


def _fit_dict(source: Path) -> tuple[dict, int | None, str]:
    """(the fit's JSON dict, its sequence length where known, a label) from a store or a fit JSON."""
    from cbs.errors import FitError

    if not source.exists():
        raise FitError(f"--from {source} does not exist; give a results store or a `cbs fit cbs --json` file")
    if source.is_file():
        try:
            return json.loads(source.read_text()), None, f"fit {source}"
        except json.JSONDecodeError as exc:
            raise FitError(f"--from {source} is not JSON ({exc}); give a `cbs fit cbs --json` file") from None
    from cbs.cli.options import open_store
    from cbs.fit import fit_cbs_table, steps_to_target_table

    store = open_store(source, False)
    seq = store.runs()["seq_len"].dropna().unique()
    if len(seq) > 1:
        raise FitError(f"the store {source} mixes sequence lengths {sorted(seq)}; fit one length at a time")
    analysis = fit_cbs_table(steps_to_target_table(store))
    return analysis.to_dict(), int(seq[0]) if len(seq) else None, f"store {source}"


def run(args: argparse.Namespace) -> int:
    from cbs.advise import Advice, PlannedRun, from_fit, from_published, published_law
    from cbs.advise.laws import LAWS
    from cbs.errors import ConfigError
    from cbs.fit.tables import write_json

    if (args.n_layers is None) != (args.d_model is None):
        raise ConfigError("give --n-layers and --d-model together (DeepSeek's FLOPs per token need both)")
    names = [n for n in (args.law or list(LAWS)) if n != "none"]
    laws = [published_law(n) for n in names]  # unknown names fail here, before any fit
    run = PlannedRun(args.n_params, args.tokens, args.seq_len, args.n_layers, args.d_model)
    forecasts = []
    if args.source is not None:
        fit, fit_seq, label = _fit_dict(args.source)
        forecasts.append(from_fit(fit, run, fit_seq, label, args.fit_law))
    elif args.fit_law:
        raise ConfigError("--fit-law needs --from STORE_OR_FIT_JSON")
    forecasts += [from_published(law, run) for law in laws]
    if not forecasts:
        raise ConfigError("nothing to forecast: give --from STORE_OR_FIT_JSON or a --law other than 'none'")
    advice = Advice(run, forecasts)
    print(advice.report())
    if args.json:
        write_json(args.json, advice.to_dict())
    return 0
