"""The sweep's phases as dependencies, not barriers: a Ray Tune ``Searcher`` that hands out one experiment's
trials, every reference (budget) trial first, and a cell's target trials as soon as that cell's reference
trials have ended (its target R_opt is then in the results store), not after every cell's."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import pandas as pd
from ray.tune.search import Searcher

from cbs.presets import model_label
from cbs.results import ResultsStore
from cbs.results.cell import Cell
from cbs.sweep.plan import SweepPlan, Trial
from cbs.sweep.progress import SweepProgress
from cbs.sweep.prune import FINAL
from cbs.sweep.runner import done_ids, stored_runs
from cbs.sweep.stopper import PruneStopper


class PhaseSearcher(Searcher):
    """Suggests the not-yet-done trials of ``plan``: the budget trials in plan order, then each cell's target
    trials once the cell's reference trials ended (with ``stopper``: batch sizes in increasing order, the
    arms of one (cell, B) together, each cell's arms handed to the stopper). ``suggest`` returns None while
    a cell may still release trials and ``Searcher.FINISHED`` once nothing can follow."""

    def __init__(
        self,
        plan: SweepPlan,
        store: ResultsStore,
        params: Callable[[Trial], dict[str, Any]],
        progress: SweepProgress,
        stopper: PruneStopper | None = None,
    ) -> None:
        super().__init__()
        self.plan, self.store, self.params = plan, store, params
        self.progress, self.stopper = progress, stopper
        self.queue: deque[Trial] = deque()
        self.live: dict[str, Trial] = {}  # Tune trial id -> trial handed out and not ended
        self.handed: list[str] = []  # run ids handed out, in order
        self.skipped: list[str] = []  # run ids already done in the store
        self.cells: dict[str, str] = {}  # run id -> cell of every trial queued (the trackers' tags)
        runs = stored_runs(store)
        done = done_ids(runs)
        targets = plan.targets(runs)
        waiting_refs = {c: set(ids) - done for c, ids in plan.reference_ids().items() if c not in targets}
        self.waiting = {c: ids for c, ids in waiting_refs.items() if ids and plan.spec.target is not None}
        self.placeholders = {  # run ids shown until a waiting cell's target trials are known
            c: [t for t in plan.pending_target if t.cell == c] for c in self.waiting
        }
        self._enqueue(plan.budget, runs)
        self._enqueue(plan.target_trials(targets), runs)
        self._expect([t for ts in self.placeholders.values() for t in ts])

    # ignore: Ray annotates Searcher.suggest as Optional[Dict], leaving out its own Searcher.FINISHED (a str)
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if self.queue:
            trial = self.queue.popleft()
            self.live[trial_id] = trial
            self.handed.append(trial.run_id)
            return {"params": self.params(trial)}
        return None if self.live else Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """A trial ended for good (Tune's retries are over): release the cells whose reference trials all ended."""
        trial = self.live.pop(trial_id, None)
        if trial is None:
            return
        for cell, refs in list(self.waiting.items()):
            refs.discard(trial.run_id)
            if not refs:
                del self.waiting[cell]
                self._release(cell)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the results store holds every cell's state (a re-run re-derives it)."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore (see ``save``)."""

    def _release(self, cell: Cell) -> None:
        runs = stored_runs(self.store)
        placeholders = [t.run_id for t in self.placeholders.pop(cell, [])]
        target = self.plan.targets(runs).get(cell)  # None: a reference run failed or all diverged
        trials = self.plan.target_trials({cell: target}) if target is not None else []
        self._expect([], drop=placeholders)
        self._enqueue(trials, runs)

    def _enqueue(self, trials: list[Trial], runs: pd.DataFrame) -> None:
        done = done_ids(runs)
        if self.stopper is not None and trials and trials[0].phase == "target":
            # a cell's batch sizes in increasing order, the arms of one (cell, B, seed) together
            trials = sorted(trials, key=lambda t: (t.cell.id, t.config.batch_size, t.config.seed))
            ids = [t.run_id for t in trials]
            ended = runs.run_id[runs.run_id.isin(ids) & runs.status.isin(FINAL)]
            self.stopper.add(trials, runs[runs.run_id.isin(ids)], self.store.curves(ended))
        todo = [t for t in trials if t.run_id not in done]
        self.skipped += [t.run_id for t in trials if t.run_id in done]
        self._expect(todo, already_done=len(trials) - len(todo))
        self.cells.update({t.run_id: t.cell.label for t in todo})
        self.queue.extend(todo)

    def _expect(self, trials: list[Trial], already_done: int = 0, drop: list[str] | None = None) -> None:
        labels = {t.run_id: label(t) for t in trials}
        self.progress.expect(labels, {t.run_id: t.tokens for t in trials}, already_done, drop or [])


def label(t: Trial) -> str:
    """A trial's short description in the progress display."""
    c = t.config
    return f"{model_label(c.model)} B={c.batch_size} lr={c.optim.lr:g} ({t.run_id})"
