"""Terminal output that fits the width: tables whose cells are never cut, lines that keep their key fields.

Widths follow rich: $COLUMNS where set, else the terminal's width, else 80 columns.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.table import Table


@dataclass(frozen=True)
class Column:
    """A table column. ``drop`` 0: always shown; otherwise, when the table is too wide for the console,
    columns go in decreasing ``drop`` order (the least important first). Cells of a ``wrap`` column (prose)
    wrap at spaces; all others are never wrapped or cut. A newline in ``header`` splits it."""

    header: str
    drop: int = 0
    justify: JustifyMethod = "left"
    wrap: bool = False


def _needed(column: Column, cells: Sequence[str]) -> int:
    """Cells a column needs: its widest line, or for a wrap column its longest word."""
    texts = [*column.header.split("\n"), *cells]
    pieces = [w for t in texts for w in t.split()] if column.wrap else texts
    return max((cell_len(p) for p in pieces), default=1)


def fitted_table(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]], **table_options
) -> tuple[Table, list[str]]:
    """A rich Table (default box) of ``rows`` (one string per column) whose names and numbers are never
    wrapped or cut: while it does not fit ``console``, the next droppable column is left out. Returns the
    table and the headers left out, so the caller can say so."""
    need = [_needed(c, [row[i] for row in rows]) for i, c in enumerate(columns)]
    shown = list(range(len(columns)))
    order = sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: -columns[i].drop)
    while order and sum(need[i] + 3 for i in shown) + 1 > console.width:  # 2 padding + 1 rule per column
        shown.remove(order.pop(0))
    table = Table(**table_options)
    for i in shown:
        c = columns[i]
        table.add_column(c.header, no_wrap=not c.wrap, justify=c.justify, min_width=need[i])
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table, [c.header.replace("\n", " ") for i, c in enumerate(columns) if i not in shown]


def print_fitted_table(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]], **table_options
) -> None:
    """Print ``fitted_table`` and, where columns were left out, one line naming them."""
    table, dropped = fitted_table(console, columns, rows, **table_options)
    console.print(table)
    if dropped:
        console.print(
            f"[dim]left out at {console.width} columns: {', '.join(dropped)} (a wider terminal shows them)[/]",
            highlight=False,
        )


def render_fitted_table(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None = None, **table_options
) -> str:
    """``print_fitted_table`` as plain text (no colour) for a console ``width`` columns wide (None: rich's
    default, $COLUMNS or 80), for results whose ``report()`` holds a table."""
    buf = io.StringIO()
    print_fitted_table(Console(file=buf, width=width, color_system=None), columns, rows, **table_options)
    return buf.getvalue().rstrip("\n")


def fitted_line(fields: Sequence[str], width: int, separator: str = " | ") -> str:
    """``fields`` joined by ``separator``, leaving out trailing fields while the line is wider than ``width``
    (the first field always stays): put the fields in order of importance."""
    kept = list(fields)
    while len(kept) > 1 and len(separator.join(kept)) > width:
        kept.pop()
    return separator.join(kept)
