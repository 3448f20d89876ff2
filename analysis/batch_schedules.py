"""Batch-size schedules at CPU scale (results/README.md, "Batch-size schedules"): constant batch, a step-decay
lr, its Seesaw twin, and a batch ramp, on micro-6k at equal tokens (D = 251,520, the default job's cell, whose
B* is 6.2 sequences), from a first batch B0 = 1 (the schedules stay below B*) and B0 = 4 (they cross it).

    python analysis/batch_schedules.py --out results/batch-schedules

Trains 10 runs into a results store under --out (resumable: finished runs are skipped), then writes summary.md
and summary.json: final EWA and raw eval loss, serial steps, and the batch schedule of each run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cbs.atomic import write_text_atomic
from cbs.config import TrainConfig
from cbs.results import ResultsStore
from cbs.train import resolve_config, run_training
from cbs.train.batch_schedule import Seesaw, batch_ramp

FIRST_BATCHES, LR, CUTS = (1, 4), 1e-2, (0.5, 0.75)
BASE = {
    "experiment": "batch-schedules",
    "model": {"preset": "micro-6k"},
    "data": {"path": "data/stdlib"},
    "chinchilla_multiple": 2.0,
    "optim": {"lr": LR},
    "eval": {"n_log": 12, "n_dense": 8, "eval_tokens": 8192, "eval_batch_size": 128},
    "stop_at_target": False,
    "device": "cpu",
    "seed": 0,
}


def configs(batch: int) -> dict[str, TrainConfig]:
    """The five runs from first batch ``batch``: name -> config (all at the same token budget). β2 and the EWA
    τ follow the default job's rule for the first batch: max(0.95, 1 − B/1000) and 1 − B/256."""
    base = {**BASE, "batch_size": batch, "ewa_tau": 1 - batch / 256}
    base["optim"] = {**BASE["optim"], "beta2": max(0.95, 1 - batch / 1000)}
    budget = resolve_config(TrainConfig.from_dict(base)).token_budget
    seesaw = Seesaw(batch, CUTS, budget, factor=0.5, rule="adam").overrides()
    ramp = [{"at_tokens": s.at_tokens, "batch_size": s.batch_size} for s in batch_ramp(batch, CUTS, budget)]

    def make(**over) -> TrainConfig:
        data = json.loads(json.dumps(base))
        for k, v in over.items():
            data[k] = {**data[k], **v} if isinstance(v, dict) and k in data else v
        return TrainConfig.from_dict(data)

    return {
        f"constant B={batch}, constant lr": make(),
        f"constant B={batch}, step-decay lr (×½ at {CUTS[0]}, {CUTS[1]} of D)": make(
            optim={"schedule": "step", "step_at": list(CUTS)}
        ),
        "Seesaw twin of the step decay (B ×2, lr ×1/√2 at each cut)": make(**seesaw),
        f"batch ramp {batch}→{4 * batch} (√2 lr per doubling)": make(
            batch_schedule=ramp, batch_lr_rule="sqrt"
        ),
        f"constant B={4 * batch}, constant lr (β2, τ of B={batch})": make(batch_size=4 * batch),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("results/batch-schedules"))
    args = p.parse_args()
    store = ResultsStore(args.out / "store")
    done = set(store.runs()["run_id"]) if (args.out / "store").exists() else set()
    rows = []
    for b0, name, cfg in ((b, n, c) for b in FIRST_BATCHES for n, c in configs(b).items()):
        if cfg.run_id() not in done:
            run_training(cfg, store=store)
        row = store.runs().set_index("run_id").loc[cfg.run_id()]
        run = resolve_config(cfg)
        rows.append(
            {
                "family": f"B0={b0}",
                "run": name,
                "run_id": cfg.run_id(),
                "batches": list(run.batches.batches),
                "steps": int(row["steps"]),
                "tokens": int(row["tokens"]),
                "final_ewa_eval_loss": float(row["final_ewa_eval_loss"]),
                "final_eval_loss": float(row["final_eval_loss"]),
            }
        )
    lines = [
        "| family | run | batches | serial steps | tokens | final EWA eval loss | final raw eval loss |",
        "|---|---|---|---:|---:|---:|---:|",
        *(
            f"| {r['family']} | {r['run']} | {'→'.join(map(str, r['batches']))} | {r['steps']} | {r['tokens']:,} | "
            f"{r['final_ewa_eval_loss']:.4f} | {r['final_eval_loss']:.4f} |"
            for r in rows
        ),
    ]
    write_text_atomic(args.out / "summary.md", "\n".join(lines) + "\n")
    write_text_atomic(args.out / "summary.json", json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
