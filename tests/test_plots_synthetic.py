"""A synthetic results store whose steps to target follow S(B) = a + b/B with known a, b (figure tests).

Groups (N, D) cover a fixed D across three N, a fixed N across three D, and the Chinchilla line D = 20N.
For each group, B_noise = 200·(D/D0)^0.5 and a is set so that the B_opt = 256 run reaches the target
exactly at its token budget D (seq_len 64). Every run's EWA loss is L(s) = T·(S/s)^0.25, crossing the
target T at step S: S = round(a + b/B) for the best lr and round(f·(a + b/B)), f = 1.3 and 1.4, for the other two lrs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cbs.protocol import paper_beta2, paper_ewa_tau
from cbs.results import ResultsStore

SEQ_LEN = 64
B_OPT = 256
BATCHES = (64, 128, 256, 512, 1024, 2048)
LR_SLOWDOWN = {3e-4: 1.3, 1e-3: 1.0, 3e-3: 1.4}  # steps to target relative to the best lr, 1e-3
LRS = tuple(LR_SLOWDOWN)
D0 = 2_000_000
GROUPS = (  # (n_params, data_tokens)
    (100_000, 2_000_000),
    (100_000, 8_000_000),
    (400_000, 2_000_000),
    (400_000, 8_000_000),
    (400_000, 32_000_000),
    (1_600_000, 8_000_000),
    (1_600_000, 32_000_000),
)


def true_params(n_params: int, data_tokens: int) -> tuple[float, float]:
    """(a, b) of S(B) = a + b/B for a group."""
    b_noise = 200.0 * (data_tokens / D0) ** 0.5
    s_opt = data_tokens / (B_OPT * SEQ_LEN)
    a = s_opt / (1.0 + b_noise / B_OPT)
    return a, a * b_noise


def target_loss(n_params: int, data_tokens: int) -> float:
    """A Chinchilla-like loss reached by the group's B_opt run at D tokens."""
    return 2.0 + 20.0 / n_params**0.3 + 50.0 / data_tokens**0.28


def eval_steps(cross: int, last: int) -> np.ndarray:
    grid = np.unique(np.round(np.geomspace(1, last, 60)).astype(int))
    return np.unique(np.concatenate([grid, [cross - 1, cross, cross + 1, last]]))


def make_run(n_params: int, data_tokens: int, batch: int, lr: float, *, preset: str, eval_set: str):
    a, b = true_params(n_params, data_tokens)
    target = target_loss(n_params, data_tokens)
    cross = int(round((a + b / batch) * LR_SLOWDOWN[lr]))
    budget_steps = int(round(data_tokens / (batch * SEQ_LEN)))
    last = budget_steps if batch == B_OPT else int(np.ceil(1.5 * cross))
    steps = eval_steps(cross, last)
    steps = steps[steps <= last]
    ewa = target * (cross / steps) ** 0.25
    raw = ewa + 0.03 * target * (1 + 0.5 * np.sin(steps / 7.0))
    run_id = f"syn-{n_params}-{data_tokens}-{batch}-{lr:g}"
    curve = [
        {
            "step": int(s),
            "tokens": int(s) * batch * SEQ_LEN,
            "eval_set": eval_set,
            "train_loss": float(r) + 0.01,
            "eval_loss": float(r),
            "ewa_eval_loss": float(e),
            "lr": lr,
        }
        for s, r, e in zip(steps, raw, ewa, strict=True)
    ]
    row = {
        "run_id": run_id,
        "experiment": "synthetic",
        "preset": preset,
        "n_params": n_params,
        "seq_len": SEQ_LEN,
        "batch_size": batch,
        "batch_tokens": batch * SEQ_LEN,
        "lr": lr,
        "beta2": paper_beta2(batch),
        "ewa_tau": paper_ewa_tau(batch),
        "token_budget": int(last * batch * SEQ_LEN),
        "data_tokens": data_tokens,
        "eval_sets": [eval_set],
        "seed": 0,
        "status": "completed",
        "steps": int(last),
        "tokens": int(last) * batch * SEQ_LEN,
        "final_eval_loss": float(raw[-1]),
        "final_ewa_eval_loss": float(ewa[-1]),
        "best_ewa_eval_loss": float(ewa.min()),
        "target_loss": target,
    }
    return row, curve


def write_store(
    root: Path,
    groups=GROUPS,
    batches=BATCHES,
    lrs=LRS,
    *,
    preset_prefix: str = "tiny",
    eval_set: str = "val",
) -> ResultsStore:
    """Write the synthetic grid under ``root`` and return the store."""
    store = ResultsStore(root)
    for n, d in groups:
        for batch in batches:
            for lr in lrs:
                row, curve = make_run(
                    n, d, batch, lr, preset=f"{preset_prefix}-{n // 1000}k", eval_set=eval_set
                )
                store.write_run(row, curve)
    return store


def true_cbs(n_params: int, data_tokens: int, b_opt: float = B_OPT, overhead: float = 0.2) -> float:
    """B* = (1 + o)·B_opt + o·b/a of the group's true S(B)."""
    a, b = true_params(n_params, data_tokens)
    return (1 + overhead) * b_opt + overhead * b / a


def test_synthetic_store_steps_follow_the_hyperbola(tmp_path):
    """The generator's curves cross the target exactly at round(a + b/B) for the best lr (what the figure
    tests rely on), and the stored runs carry the target."""
    from cbs.fit import steps_to_target_table

    groups = GROUPS[:1]
    store = write_store(tmp_path, groups=groups, batches=(64, 256, 1024))
    table = steps_to_target_table(*store.tables())
    n, d = groups[0]
    a, b = true_params(n, d)
    expected = [round(a + b / batch) for batch in (64, 256, 1024)]
    assert table["steps_to_target"].tolist() == expected
    assert (table["lr"] == 1e-3).all()
    assert np.allclose(table["target_loss"], target_loss(n, d))
