"""The shared look of every cbs figure: one rc context, colour-blind-safe colours, axis helpers, saving.

Figures are built with ``matplotlib.figure.Figure`` (never pyplot), so they draw on the Agg canvas and leave
the caller's backend and global state alone.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.rcsetup import cycler
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

from cbs.atomic import atomic_path
from cbs.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

P = ParamSpec("P")
R = TypeVar("R")

# Okabe & Ito (2008), distinguishable under the common colour-vision deficiencies; yellow last (low contrast).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
# Ordered quantities (batch size, D, lr) use viridis without its palest yellow end, readable on white.
ORDERED_CMAP = LinearSegmentedColormap.from_list(
    "cbs_ordered", mpl.colormaps["viridis"](np.linspace(0, 0.85, 256))
)

FORMATS = ("pdf", "png")
PNG_DPI = 200
SINGLE_WIDTH = 3.4  # inches: one column of a two-column paper
DOUBLE_WIDTH = 7.0  # inches: full page width

RC: dict[RcKeyType, Any] = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 7.5,
    "legend.title_fontsize": 8,
    "legend.frameon": False,
    "axes.prop_cycle": cycler(color=OKABE_ITO),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.color": "0.88",
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.5,
    "figure.dpi": 100,
    "savefig.dpi": PNG_DPI,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
    "pdf.fonttype": 42,  # embed TrueType: editable text in the PDF, accepted by publishers
    "ps.fonttype": 42,
    "mathtext.default": "regular",
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The rc context every cbs figure is drawn and saved in."""
    with mpl.rc_context(RC):
        yield


def styled(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator: build the figure inside `style()` (rc settings are read when artists are created)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with style():
            return func(*args, **kwargs)

    return wrapper


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float | None = None, height: float = 2.6):
    """A figure (Agg canvas, no pyplot) and its axes array, sized for a paper: ``(fig, axes[nrows][ncols])``."""
    width = width or (SINGLE_WIDTH if ncols == 1 else min(DOUBLE_WIDTH, 2.5 * ncols + 0.4))
    fig = Figure(figsize=(width, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def ordered_colors(values: Sequence[float]) -> dict[float, tuple]:
    """A colour per distinct value, in order along the (colour-blind-safe) ordered map."""
    distinct = sorted(set(values))
    cmap: Colormap = ORDERED_CMAP
    if len(distinct) == 1:
        return {distinct[0]: cmap(0.0)}
    return {v: cmap(i / (len(distinct) - 1)) for i, v in enumerate(distinct)}


def categorical_colors(keys: Sequence[object]) -> dict[object, str]:
    """A colour per key from the Okabe–Ito palette (cycled past eight keys)."""
    return {k: OKABE_ITO[i % len(OKABE_ITO)] for i, k in enumerate(dict.fromkeys(keys))}


def human(x: float) -> str:
    """Compact count: 85_000_000 -> '85M', 3.07e9 -> '3.07B', 512 -> '512', 1e18 -> '$10^{18}$'."""
    if abs(x) >= 1e15:
        exponent = int(np.floor(np.log10(abs(x))))
        mantissa = x / 10**exponent
        return (
            f"$10^{{{exponent}}}$"
            if np.isclose(mantissa, 1.0)
            else f"${mantissa:.2g}\\times10^{{{exponent}}}$"
        )
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def batch_label(value: float, powers: bool = False) -> str:
    """Tick label on a log2 axis: '256', or '$2^{8}$' with ``powers``; '1/4' below 1."""
    if 0 < value < 1:
        return f"1/{round(1 / value):d}"
    exponent = np.log2(value)
    if powers and np.isclose(exponent, round(exponent)):
        return f"$2^{{{round(exponent)}}}$"
    return f"{value:.0f}" if value <= 65536 else human(value)


def log2_axis(ax: Axes, axis: str, ticks: Iterable[float] | None = None) -> None:
    """Log base-2 scale on ``axis`` ('x' or 'y'), ticks at ``ticks`` or at the powers of two in view.

    Labels are plain numbers below 1000 and powers of two (2^k) otherwise, so they stay narrow; more than
    eight ticks are thinned. Call after plotting.
    """
    getattr(ax, f"set_{axis}scale")("log", base=2)
    target = ax.xaxis if axis == "x" else ax.yaxis
    if ticks is None:
        lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
        ticks = 2.0 ** np.arange(np.ceil(np.log2(lo)), np.floor(np.log2(hi)) + 1)
    ticks = sorted({float(t) for t in ticks if t > 0})
    if len(ticks) > 8:
        ticks = ticks[:: int(np.ceil(len(ticks) / 8))]
    powers = bool(ticks) and max(ticks) >= 1000
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(FuncFormatter(lambda v, _: batch_label(v, powers)))
    target.set_minor_locator(NullLocator())
    target.set_minor_formatter(NullFormatter())


def power_of_ten(x: float) -> str:
    """'$10^{18}$' for exact powers of ten, '$3\\times10^{18}$' otherwise (FLOP axes)."""
    exponent = int(np.floor(np.log10(abs(x))))
    mantissa = x / 10**exponent
    return (
        f"$10^{{{exponent}}}$" if np.isclose(mantissa, 1.0) else f"${mantissa:.2g}\\times10^{{{exponent}}}$"
    )


def log_axis(ax: Axes, axis: str, *, min_span: float = 1.0, powers: bool = False) -> None:
    """Log base-10 scale on ``axis`` with compact labels (1M, 10M, ...). Call after plotting.

    The view spans at least a factor ``min_span`` (centred geometrically), and ranges under ~1.5 decades
    are also labelled at 2× and 5×, so every log axis has readable ticks. ``powers``: label as 10^k.
    """
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    get_lim, set_lim = (ax.get_xlim, ax.set_xlim) if axis == "x" else (ax.get_ylim, ax.set_ylim)
    lo, hi = get_lim()
    if hi / lo < min_span:
        mid = np.sqrt(lo * hi)
        lo, hi = mid / np.sqrt(min_span), mid * np.sqrt(min_span)
        set_lim(lo, hi)
    if hi / lo < 30:  # under ~1.5 decades: ticks at 1-2-5 (or every digit under a factor 3) of each decade
        subs = np.arange(1.0, 10.0) if hi / lo < 3 else np.array([1.0, 2.0, 5.0])
        decades = 10.0 ** np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
        ticks = (decades[:, None] * subs[None, :]).ravel()
        target.set_major_locator(FixedLocator(ticks[(ticks >= lo) & (ticks <= hi)].tolist()))
    else:
        target.set_major_locator(LogLocator(base=10, numticks=5 if axis == "x" else 7))
    target.set_major_formatter(FuncFormatter(lambda v, _: power_of_ten(v) if powers else human(v)))
    target.set_minor_formatter(NullFormatter())


def shared_legend(axes: Iterable[Axes]) -> tuple[list, list[str]]:
    """Handles and labels of all ``axes``, each label once, for one figure-level legend."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """'pdf,png' -> ('pdf', 'png'); only formats matplotlib writes as files we support."""
    items = [f.strip().lower().lstrip(".") for f in (text.split(",") if isinstance(text, str) else text)]
    items = [f for f in items if f]
    bad = [f for f in items if f not in ("pdf", "png", "svg")]
    if bad or not items:
        raise ConfigError(f"unsupported figure format(s) {bad or text!r}: use a comma list of pdf, png, svg")
    return tuple(dict.fromkeys(items))


def save(fig: Figure, out_dir: Path, name: str, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.<fmt>`` for each format, each atomically (cbs.atomic)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with style():
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=PNG_DPI, metadata=_metadata(fmt))
            paths.append(path)
    return paths


def _metadata(fmt: str) -> dict[str, str | None]:
    # A fixed creator and no timestamp, so the same data gives byte-stable PDFs.
    if fmt == "pdf":
        return {"Creator": "cbs", "CreationDate": None}
    if fmt == "svg":
        return {"Creator": "cbs", "Date": None}
    return {"Software": "cbs"}
