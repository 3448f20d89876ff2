"""`cbs report`: one Markdown (optionally HTML) page with the fitted numbers as tables and the figures."""

from __future__ import annotations

import html
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cbs import __version__
from cbs.atomic import fsync_dir, write_text_atomic
from cbs.errors import CbsError
from cbs.fit import JointPowerLawFit
from cbs.fit.cbs_laws import law_key
from cbs.fit.measure_results import measures_display, measures_frame
from cbs.fit.store_fits import StoreFits
from cbs.fit.tables import to_markdown
from cbs.plots import style
from cbs.plots.registry import STORE_FIGURES, Made, Skipped, make_store_figures

FIGURES_DIR = "figures"


@dataclass(frozen=True)
class Block:
    """One piece of the page: a heading, a paragraph, a bullet list, a table, or a figure."""

    kind: str  # "h2" | "p" | "list" | "table" | "figure"
    text: str = ""
    items: Sequence[str] = ()
    frame: pd.DataFrame | None = None
    path: str = ""  # figure path relative to the page


def ci(value: float, interval: Sequence[float] | None, fmt: str = ".4g") -> str:
    """'612 [540, 700]' (value and its 95% interval); blank for a missing value."""
    if value is None or not math.isfinite(value):
        return ""
    if not interval or any(v is None or not math.isfinite(v) for v in interval):
        return format(value, fmt)
    return f"{value:{fmt}} [{interval[0]:{fmt}}, {interval[1]:{fmt}}]"


def values(series: pd.Series, fmt: str = ".3g") -> str:
    """'64, 128, 256' for a few distinct values, 'min–max (k values)' for many."""
    v = sorted(series.dropna().unique())
    if len(v) > 5:
        return f"{v[0]:{fmt}}–{v[-1]:{fmt}} ({len(v)} values)"
    return ", ".join(f"{x:{fmt}}" for x in v)


def summary_table(runs: pd.DataFrame, theory: bool = False) -> pd.DataFrame:
    """Runs per model and data size: batch sizes, learning rates, statuses."""
    size, data, batch = (
        ("dim", "D (samples)", "batch sizes (samples)")
        if theory
        else (
            "N (params)",
            "D (tokens)",
            "batch sizes (seqs)",
        )
    )
    rows = []
    for (n, d, model), grp in runs.groupby(["n_params", "data_tokens", "preset"], sort=True, dropna=False):
        statuses = grp["status"].value_counts()
        rows.append(
            {
                "model": model,
                size: style.human(n),
                data: style.human(d),
                "runs": len(grp),
                batch: values(grp["batch_size"], ".6g"),
                "lrs": values(grp["lr"]),
                "status": ", ".join(f"{k} {v}" for k, v in statuses.items()),
            }
        )
    return pd.DataFrame(rows)


def cbs_table(src: StoreFits) -> pd.DataFrame:
    """One row per (model, data size) group: target, S_min, B_noise and B* with 95% intervals, the batch sizes
    that never reached the target, and the warning codes (`warning_items` has their messages)."""
    theory = src.is_theory()
    unit_b, unit_d = ("samples", "samples") if theory else ("seqs", "tokens")
    rows = []
    for g in src.analysis.groups:
        f = g.fit
        size = f"{g.n_params:g}" if theory else f"{g.n_params / 1e6:.4g}"
        rows.append(
            {
                "model": g.model,
                "dim" if theory else "N (M params)": size,
                f"D ({unit_d})": style.human(g.data_tokens),
                "target risk" if theory else "target loss": ""
                if g.target_loss is None
                else f"{g.target_loss:.4g}",
                "batch sizes fitted": f.n_points if f else 0,
                "S_min (steps)": ci(f.s_min, f.a_ci) if f else "",
                f"B_noise ({unit_b})": ci(f.b_noise, f.b_noise_ci) if f else "",
                f"CBS B* ({unit_b})": ci(f.cbs, f.cbs_ci) if f else "",
                "B* free-α": ci(f.alpha_variant.cbs, f.alpha_variant.cbs_ci) if f and f.alpha_variant else "",
                f"target not reached at B ({unit_b})": ", ".join(f"{b:g}" for b in g.unreached_batch_sizes),
                "warnings": ", ".join(w.code for w in g.warnings),
                "note": g.error or "",
            }
        )
    return pd.DataFrame(rows)


def warning_items(src: StoreFits) -> list[str]:
    """'micro-4k, D=71280 — lr_edge: <message>' for every warning of every group (cbs.fit.diagnostics)."""
    return [f"{g.label} — {w.code}: {w.message}" for g in src.analysis.groups for w in g.warnings]


def held_fixed(src: StoreFits, law: str) -> str:
    """'D = 8M' when the other variable takes one value across the fitted groups, else 'pooled'."""
    other = {"n_params": "data_tokens", "data_tokens": "n_params"}.get(law_key(law)[0])
    if other is None:
        return ""
    value = src.analysis.fixed_value(other)
    if value is None:
        return f"pooled over {'D' if other == 'data_tokens' else 'N'}"
    return f"D = {style.human(value)}" if other == "data_tokens" else f"N = {value:.4g}M"


def laws_table(src: StoreFits) -> tuple[pd.DataFrame, list[str]]:
    """The CBS power laws `cbs fit cbs` reports (units stated), and why absent ones are absent."""
    rows = []
    for name, law in src.analysis.laws.items():
        if isinstance(law, JointPowerLawFit):
            form = "B* = c · N^α · D^β"
            exps = "; ".join(f"{k}: {ci(v, law.exponent_cis[k], '.3f')}" for k, v in law.exponents.items())
        else:
            form = "B* = c · N^α" if law_key(name)[0] == "n_params" else "B* = c · D^β"
            exps = ci(law.exponent, law.exponent_ci, ".3f")
        rows.append(
            {
                "law": name,
                "form": form,
                "c": ci(law.coefficient, law.coefficient_ci),
                "exponent(s)": exps,
                "other variable": held_fixed(src, name),
                "R²": f"{law.r2:.3f}",
                "groups": law.n_points,
                "warnings of its groups": src.analysis.law_warning_note(name),
            }
        )
    absent = [f"no {name} law: {why}" for name, why in src.analysis.laws_absent.items()]
    return pd.DataFrame(rows), absent


def scaling_law_table(src: StoreFits) -> pd.DataFrame:
    _, _, _, fit = src.scaling_law
    intervals = fit.intervals()
    return pd.DataFrame(
        [
            {"parameter": k, "value": ci(getattr(fit, k), intervals.get(k))}
            for k in ("E", "A", "B", "alpha", "beta")
        ]
    )


def measures_blocks(src: StoreFits) -> list[Block]:
    """The groups' three measures with interval and cost (`measures_frame`); none for a theory store or a fit
    without a store (the CBS table is then all there is)."""
    if src.is_theory():
        return []  # the testbed's exact noise scale is `cbs theory`'s own report
    frame = measures_frame(src.analysis.groups)
    if frame.empty:
        return []
    text = (
        "Steps-to-target B* (the grid, its bootstrap 95% CI), branched B* per branch point ([k*·B, next k·B]) "
        "and the in-run B_simple (its range over the evaluations in [s*/2, 2·s*]), in sequences, with the "
        "tokens, FLOPs and wall seconds each trained (docs/measures.md)."
    )
    return [
        Block("h2", "Three measures of the CBS"),
        Block("p", text),
        Block("table", frame=measures_display(frame)),
    ]


def _b_opt(src: StoreFits) -> str:
    b_opt = src.analysis.b_opt
    return f"{b_opt:g}" if b_opt is not None else "per group (see the table)"


def _fits_from(src: StoreFits) -> str:
    """'1000 resamples, seed 0', or, for fits read from a JSON, where they come from."""
    if src.fitted is not None:
        return f"CBS fits read from a `cbs fit cbs --json` output, {src.fitted.n_boot} resamples"
    return f"{src.n_boot} resamples, seed {src.seed}"


def build(src: StoreFits, made: Sequence[Made], skipped: Sequence[Skipped], page_dir: Path) -> list[Block]:
    """The page's blocks, in order."""
    runs = src.runs
    blocks = [
        Block(
            "p",
            f"Results store `{src.store.root}`: {len(runs)} runs. CBS with B_opt = {_b_opt(src)} and "
            f"overhead o = {src.overhead:g}; intervals are 95% bootstrap ({_fits_from(src)}). "
            f"cbs {__version__}.",
        ),
        Block("h2", "Runs"),
        Block("table", frame=summary_table(runs, src.is_theory())),
    ]
    try:
        blocks += [Block("h2", "Critical batch size per group"), Block("table", frame=cbs_table(src))]
        if warnings := warning_items(src):
            blocks += [Block("p", "Warnings (docs/fit.md, Diagnostics):"), Block("list", items=warnings)]
        laws, absent = laws_table(src)
        blocks.append(Block("h2", "Scaling laws of the CBS"))
        units = (
            "B* and D in samples, N = the dimension."
            if src.is_theory()
            else "B* in sequences, N in millions of non-embedding parameters, D in tokens."
        )
        blocks.append(Block("p", units))
        if not laws.empty:
            blocks.append(Block("table", frame=laws))
        if absent:
            blocks.append(Block("list", items=absent))
    except CbsError as exc:
        blocks.append(Block("p", f"No CBS fit: {exc}"))
    try:
        blocks += measures_blocks(src)
    except CbsError as exc:
        blocks.append(Block("p", f"No measures: {exc}"))
    try:
        blocks += [
            Block("h2", "L(N, D) of the target losses (Chinchilla form)"),
            Block("table", frame=scaling_law_table(src)),
        ]
    except CbsError as exc:
        blocks.append(Block("p", f"No L(N, D) fit: {exc}"))
    blocks.append(Block("h2", "Figures"))
    for m in made:
        png = next((p for p in m.paths if p.suffix == ".png"), m.paths[0])
        caption = f"{m.name}: {STORE_FIGURES[m.family].description}" + (f" ({m.note})" if m.note else "")
        blocks.append(Block("figure", text=caption, path=Path(os.path.relpath(png, page_dir)).as_posix()))
    if skipped or src.notes:
        blocks.append(Block("h2", "Not drawn"))
        blocks.append(Block("list", items=[f"{s.name}: {s.reason}" for s in skipped] + list(src.notes)))
    return blocks


def to_markdown_page(title: str, blocks: Sequence[Block]) -> str:
    out = [f"# {title}", ""]
    for b in blocks:
        if b.kind == "h2":
            out += [f"## {b.text}", ""]
        elif b.kind == "p":
            out += [b.text, ""]
        elif b.kind == "list":
            out += [f"- {item}" for item in b.items] + [""]
        elif b.kind == "table":
            out += [to_markdown(b.frame), ""]
        elif b.kind == "figure":
            out += [f"![{b.text}]({b.path})", "", f"*{b.text}*", ""]
    return "\n".join(out)


def to_html_page(title: str, markdown: str) -> str:
    """The Markdown page rendered as one standalone HTML page (CommonMark with tables, raw HTML escaped); image
    paths stay as written, so the page works beside report.md."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;}table{border-collapse:collapse;}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%;}img{max-width:100%;}"
        "code{background:#f4f4f4;padding:0 2px;}</style></head><body>\n"
        f"{body}</body></html>\n"
    )


def write_report(
    src: StoreFits, out_dir: Path, *, formats: Sequence[str] = style.FORMATS, html_page: bool = False
) -> list[Path]:
    """Make every figure the store supports under ``out_dir/figures``, then write ``out_dir/report.md``
    (and ``report.html``). Returns the page paths. Everything is written into a staging folder beside
    ``out_dir`` and moved into place (figures first, pages last) only once the whole report is made, so a
    failure leaves no partial figure or page behind."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        pages = _write_report(src, stage, formats, html_page)
        folders = set()
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            dst = out_dir / path.relative_to(stage)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dst)
            folders.add(dst.parent)
        for folder in sorted(folders):
            fsync_dir(folder)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return [out_dir / p.relative_to(stage) for p in pages]


def _write_report(src: StoreFits, out_dir: Path, formats: Sequence[str], html_page: bool) -> list[Path]:
    formats = tuple(dict.fromkeys([*formats, "png"]))  # the page embeds PNGs
    made, skipped = make_store_figures(src, out_dir / FIGURES_DIR, list(STORE_FIGURES), formats, strict=False)
    title = f"cbs report: {src.store.root.name}"
    blocks = build(src, made, skipped, out_dir)
    markdown = to_markdown_page(title, blocks)
    pages = [out_dir / "report.md"]
    write_text_atomic(pages[0], markdown)
    if html_page:
        pages.append(out_dir / "report.html")
        write_text_atomic(pages[1], to_html_page(title, markdown))
    return pages
