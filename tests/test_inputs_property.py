"""Property tests (hypothesis): malformed specs and tables thrown at the CLI's parsers end in exit 0 (the input
happened to be valid) or exit 2 with one line, never a traceback, and a failed command writes no file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_inputs import chinchilla_table, cli, l2l_table, steps_table, valid_spec

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["", "n/a", "tiny-16k", "nowhere", "1e-3", "cpu"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
SPEC_KEYS = [
    "name",
    "base",
    "grid",
    "zip",
    "target",
    "resources",
    "max_failures",
    "checkpoint_every",
    "eval_sets",
]
TARGET_KEYS = ["reference_batch_size", "budget_multiple"]
GRID_KEYS = ["batch_size", "optim.lr", "optim.beta2", "seed", "model.preset", "bogus"]


@st.composite
def specs(draw: st.DrawFn) -> object:
    """A random YAML document, or the valid spec with a few keys replaced, removed or garbled."""
    if draw(st.booleans()):
        return draw(values | st.dictionaries(st.sampled_from(SPEC_KEYS), values, max_size=4))
    spec = valid_spec()
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(["top", "grid", "target"]))
        if section == "top":
            key = draw(st.sampled_from(SPEC_KEYS))
            node = spec
        else:
            node = spec.setdefault(section, {}) if isinstance(spec.get(section), dict) else spec
            key = draw(st.sampled_from(GRID_KEYS if section == "grid" else TARGET_KEYS))
        if draw(st.integers(0, 4)) == 0:
            node.pop(key, None)
        elif section == "grid":
            node[key] = draw(st.lists(scalars, max_size=3) | values)
        else:
            node[key] = draw(values)
    return spec


def assert_clean(rc: int, err: str) -> None:
    assert rc in (0, 2), err
    assert "Traceback" not in err
    if rc == 2:
        assert err.strip() and len(err.strip().splitlines()) <= 2, err  # argparse: a usage line + the error


@SETTINGS
@given(spec=specs())
def test_malformed_specs_never_crash_the_dry_run(spec, capsys, monkeypatch):
    with tempfile.TemporaryDirectory() as tmp, monkeypatch.context() as patch:
        patch.chdir(tmp)  # undone before the folder goes
        path = Path(tmp) / "spec.yaml"
        path.write_text(yaml.safe_dump(spec, allow_unicode=True))
        rc, err = cli(["sweep", path, "--dry-run"], capsys)
        assert_clean(rc, err)
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["spec.yaml"]  # a dry run writes nothing


BAD_CELLS = st.one_of(
    st.sampled_from(["", "n/a", "NA", "nan", "inf", "-inf", "-1", "0", "abc", "1,5", " ", "1e400", "null"]),
    st.text(max_size=5),
    st.floats(allow_nan=True, allow_infinity=True),
)


def corrupt(table: pd.DataFrame, draw: st.DrawFn, columns: list[str]) -> pd.DataFrame:
    """Put random bad cells in ``columns`` and maybe drop one of them."""
    table = table.astype(object)
    for _ in range(draw(st.integers(0, 3))):
        row = draw(st.integers(0, len(table) - 1))
        table.loc[row, draw(st.sampled_from(columns))] = draw(BAD_CELLS)
    if draw(st.integers(0, 5)) == 0:
        table = table.drop(columns=[draw(st.sampled_from(columns))])
    if draw(st.integers(0, 7)) == 0:
        table = table.iloc[:0]
    return table


def hparams_table() -> pd.DataFrame:
    c, b, lr = (g.ravel() for g in np.meshgrid([1e17, 1e18, 1e19], [8.0, 16, 32], [1e-3, 3e-3, 1e-2]))
    loss = 3 + 0.1 * np.log(b / 16) ** 2 + 0.1 * np.log(lr / 3e-3) ** 2 - 0.1 * np.log10(c / 1e17)
    return pd.DataFrame({"compute": c, "batch_size": b, "lr": lr, "loss": loss})


COMMANDS = {
    "scaling-law": (
        chinchilla_table,
        ["n_params", "data_tokens", "loss"],
        ["fit", "scaling-law", "--n-starts", "2"],
    ),
    "cbs": (
        steps_table,
        ["n_params", "batch_size", "steps_to_target", "data_tokens"],
        ["fit", "cbs", "--b-opt", "16"],
    ),
    "hparams": (
        hparams_table,
        ["compute", "batch_size", "lr", "loss"],
        ["fit", "hparams", "--c-col", "compute"],
    ),
    "loss-to-loss": (
        l2l_table,
        ["n_params", "data_tokens", "loss", "test"],
        ["fit", "loss-to-loss", "--x-group", "a", "--x-col", "loss", "--y-group", "b", "--y-col", "test"]
        + ["--E-x", "1", "--E-y", "1"],
    ),
}


@st.composite
def tables(draw: st.DrawFn) -> tuple[str, pd.DataFrame, str]:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    make, columns, _ = COMMANDS[command]
    return command, corrupt(make(), draw, columns), draw(st.sampled_from(["csv", "parquet"]))


@SETTINGS
@given(case=tables())
def test_malformed_tables_exit_2_and_write_nothing(case, capsys):
    command, table, fmt = case
    _, _, argv = COMMANDS[command]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / f"table.{fmt}", Path(tmp) / "out.json"
        if fmt == "csv":
            table.to_csv(src, index=False)
        else:
            table.astype(str).where(table.notna(), None).to_parquet(src)  # text cells: a string column
        rc, err = cli([*argv, "--input", src, "--n-boot", "0", "--json", out], capsys)
        assert_clean(rc, err)
        assert out.exists() == (rc == 0)
