"""Progress of a running sweep: trials done/running/pending, best loss so far, ETA (a Ray Tune callback).

On a terminal it keeps one live status line (rich) that fits the terminal's width (the ETA stays, the best loss
and elapsed time go first); otherwise (logs, CI) it prints one whole line per finished trial and a heartbeat at
most every ``heartbeat_s`` seconds, so the output never floods.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from ray.tune import Callback
from rich.console import Console
from rich.live import Live

from cbs.console import fitted_line


class SweepProgress(Callback):
    def __init__(
        self,
        labels: dict[str, str],
        planned_tokens: dict[str, int],
        already_done: int = 0,
        console: Console | None = None,
        heartbeat_s: float = 60.0,
    ) -> None:
        self.labels = labels  # run_id -> short description of the trial
        self.planned = planned_tokens  # run_id -> token cap
        self.already_done = already_done  # runs of this phase found in the store
        self.console = console or Console(soft_wrap=True)
        self.heartbeat_s = heartbeat_s
        self.tokens: dict[str, int] = {}
        self.best = math.inf
        self.retries = 0  # trial failures Ray retried
        self.start = time.monotonic()
        self.counts = {"done": 0, "running": 0, "pending": len(labels), "errored": 0}
        self.live: Live | None = None
        self.last_print = self.start

    def expect(
        self,
        labels: dict[str, str],
        planned_tokens: dict[str, int],
        already_done: int = 0,
        drop: Iterable[str] = (),
    ) -> None:
        """Count more trials (``labels``, their token caps; ``already_done`` more found in the store), and no
        longer those of ``drop`` (placeholders of trials whose ids became known, or that will not run)."""
        for run_id in drop:
            self.labels.pop(run_id, None)
            self.planned.pop(run_id, None)
        self.labels.update(labels)
        self.planned.update(planned_tokens)
        self.already_done += already_done

    def __getstate__(self) -> dict:  # Tune pickles its callbacks with the experiment state
        return {**self.__dict__, "console": None, "live": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, console=Console(soft_wrap=True))

    # --- Tune hooks -----------------------------------------------------------------------------------
    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        run_id = _run_id(trial)
        if "tokens" in result:
            self.tokens[run_id] = int(result["tokens"])
        loss = result.get("ewa_eval_loss")
        if isinstance(loss, float) and math.isfinite(loss):
            self.best = min(self.best, loss)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        run_id = _run_id(trial)
        result = trial.last_result or {}
        status = result.get("status", "done") + (
            " (resumed from a checkpoint)" if result.get("resumed") else ""
        )
        self.tokens[run_id] = self.planned.get(run_id, 0)  # finished: whatever it did not need is not left
        self._event(trials, f"{self.labels.get(run_id, run_id)}: {status}")

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.retries += 1
        run_id = _run_id(trial)
        self._event(trials, f"{self.labels.get(run_id, run_id)}: failed, retrying from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        run_id = _run_id(trial)
        self._event(trials, f"{self.labels.get(run_id, run_id)}: failed, see {trial.path}/error.txt")

    def on_step_end(self, iteration, trials, **info) -> None:
        self._count(trials)
        now = time.monotonic()
        if self.live is not None:
            self.live.update(self.line())
        elif now - self.last_print >= self.heartbeat_s:
            self.console.print(self.line())
            self.last_print = now

    def on_experiment_end(self, trials, **info) -> None:
        self._count(trials)
        if self.live is not None:
            self.live.stop()
            self.live = None
        self.console.print(self.line())

    # --- rendering ------------------------------------------------------------------------------------
    def line(self) -> str:
        """Counts, ETA, best loss, elapsed time; on a terminal, what does not fit its width goes, last first."""
        c = self.counts
        total = len(self.labels) + self.already_done
        best = f"{self.best:.4f}" if math.isfinite(self.best) else "-"
        failed = f", {c['errored']} failed" if c["errored"] else ""
        fields = (
            f"trials {c['done'] + self.already_done}/{total} done, {c['running']} running, "
            f"{c['pending']} pending{failed}",
            f"ETA {self.eta()}",
            f"best EWA eval loss {best}",
            f"elapsed {_fmt(time.monotonic() - self.start)}",
        )
        return fitted_line(fields, self.console.width) if self.console.is_terminal else " | ".join(fields)

    def eta(self) -> str:
        """Remaining time from the fraction of planned tokens trained so far (stopped runs count as whole)."""
        total = sum(self.planned.values())
        done = sum(min(t, self.planned.get(r, t)) for r, t in self.tokens.items())
        if not total or not done:
            return "-"
        elapsed = time.monotonic() - self.start
        return _fmt(elapsed * (total - done) / done)

    def _count(self, trials) -> None:
        statuses = [t.status for t in trials]
        self.counts = {
            "done": statuses.count("TERMINATED"),
            "running": statuses.count("RUNNING"),
            "errored": statuses.count("ERROR"),
        }
        # trials the searcher has not handed out yet are pending too
        self.counts["pending"] = max(0, len(self.labels) - sum(self.counts.values()))
        if self.live is None and self.console.is_terminal:
            self.live = Live(self.line(), console=self.console, refresh_per_second=2, transient=True)
            self.live.start()

    def _event(self, trials, message: str) -> None:
        self._count(trials)
        self.console.print(f"  {message}  [{self.line()}]", highlight=False)
        self.last_print = time.monotonic()


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _run_id(trial) -> str:
    return trial.config["params"]["run_id"]
