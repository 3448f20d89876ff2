"""Loss curves: eval loss of the raw and EWA weights vs steps and vs tokens, one line per batch size."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cbs.errors import ResultsError
from cbs.fit.store_fits import primary_eval_set
from cbs.plots.style import human, log_axis, new_figure, ordered_colors, styled

LOSS_COLUMNS = {"eval_loss": "raw weights", "ewa_eval_loss": "EWA weights"}
X_COLUMNS = {"step": "optimizer steps", "tokens": "training tokens"}


def best_run_per_batch(runs: pd.DataFrame, preferred: Collection[str] = ()) -> pd.DataFrame:
    """For each batch size, a ``preferred`` run (e.g. the fastest to the target, as `cbs fit` picks it),
    else the run with the lowest best EWA eval loss (the best lr, β2, τ)."""
    score = runs["best_ewa_eval_loss"].fillna(runs["final_ewa_eval_loss"]).fillna(runs["final_eval_loss"])
    ranked = runs.assign(_pref=~runs["run_id"].isin(list(preferred)), _score=score)
    ranked = ranked.sort_values(["batch_size", "_pref", "_score"], na_position="last")
    return ranked.drop_duplicates("batch_size").drop(columns=["_pref", "_score"]).reset_index(drop=True)


LOG_SPAN = 20.0  # losses spanning more than this factor (e.g. an excess risk going to 0) get a log axis


def loss_limits(losses: pd.Series) -> tuple[float, float, bool]:
    """(bottom, top, log): the approach to the final losses, from just below the lowest to at most twice it,
    or the whole range on a log axis when it spans more than a factor LOG_SPAN."""
    finite = losses[np.isfinite(losses)]  # a diverged run must not stretch the view
    lo, hi = float(finite.min()), float(finite.max())
    if lo > 0 and hi / lo > LOG_SPAN:
        return lo / 1.5, hi * 1.1, True
    top = min(hi, 2.0 * lo)
    return lo - 0.03 * (top - lo), top, False


@styled
def loss_curves(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    *,
    eval_set: str | None = None,
    target: float | None = None,
    preferred: Collection[str] = (),
    theory: bool = False,
) -> Figure:
    """2×2 panels (raw / EWA eval loss × steps / tokens) of ``runs``, coloured by batch size.

    ``runs`` is one group (a model size and data size); each batch size shows one run (`best_run_per_batch`
    with ``preferred``). ``target``, if
    given, is drawn as a dashed horizontal line. ``theory``: label for a `cbs theory` store (excess risk,
    samples, dimension). Lines carry ``gid = "curve:<run_id>:<loss>:<x>"``.
    """
    eval_set = eval_set or primary_eval_set(runs, curves)
    chosen = best_run_per_batch(runs, preferred)
    data = curves[(curves["eval_set"] == eval_set) & curves["run_id"].isin(chosen["run_id"])]
    if data.empty:
        raise ResultsError(f"no curve points on eval set {eval_set!r} for these runs; pass another eval set")
    colors = ordered_colors(chosen["batch_size"].tolist())
    fig, axes = new_figure(2, 2, height=2.3)
    for row, (loss_col, loss_name) in enumerate(LOSS_COLUMNS.items()):
        for col, (x_col, x_name) in enumerate(X_COLUMNS.items()):
            ax = axes[row][col]
            for run in chosen.itertuples():
                pts = data[data["run_id"] == run.run_id].sort_values("step")
                pts = pts[(pts[x_col] > 0) & pts[loss_col].notna()]
                ax.plot(
                    pts[x_col].to_numpy(float),
                    pts[loss_col].to_numpy(float),
                    color=colors[run.batch_size],
                    label=f"B = {run.batch_size}",
                    gid=f"curve:{run.run_id}:{loss_col}:{x_col}",
                )
            if target is not None:
                ax.axhline(target, color="0.3", ls="--", lw=0.9, label="target", gid="target")
            bottom, top, log = loss_limits(data[loss_col])
            ax.set_ylim(bottom, top)
            if log:
                log_axis(ax, "y")
            in_view = data.loc[data[loss_col] <= top, x_col]
            if not in_view.empty:  # start where the curves enter the view, not at step 1
                ax.set_xlim(left=float(in_view[in_view > 0].min()) / 1.3)
            log_axis(ax, "x")
            ax.set_xlabel("Samples" if theory and x_col == "tokens" else x_name.capitalize())
            ax.set_ylabel(f"Excess risk, {loss_name}" if theory else f"Eval loss, {loss_name}\n(nats/token)")
    first = chosen.iloc[0]
    if theory:
        size = f"dim = {human(first.n_params)}, D = {human(first.data_tokens)} samples"
    else:
        size = f"N = {human(first.n_params)} params, D = {human(first.data_tokens)} tokens"
    fig.suptitle(f"{first.preset}: {size}, eval: {eval_set}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside right center", title="Batch (samples)" if theory else "Batch (seqs)"
    )
    return fig
