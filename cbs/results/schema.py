"""The results contract between `cbs sweep` and the analysis layer: the Arrow schemas of the two tables.

A results directory holds ``runs/`` (one row per run) and ``curves/`` (one row per evaluation point and eval
set), each a folder of Parquet files that pandas, pyarrow.dataset, DuckDB or Polars read without cbs.
See docs/results.md for the column meanings.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 2  # v2: the in-run gradient noise scale columns of the curves table
READABLE_VERSIONS = (1, 2)  # older stores read with the newer columns null
SCHEMA_VERSION_KEY = b"cbs.schema_version"
TABLE_KEY = b"cbs.table"

# pruned: stopped by the sweep once another arm of its (cell, batch size) had reached the target sooner;
# skipped_past_cbs: not trained (or stopped) because a smaller batch size of its cell never reached the target
STATUSES = ("completed", "reached_target", "diverged", "failed", "pruned", "skipped_past_cbs")

RUNS_SCHEMA = pa.schema(
    [
        # identity
        ("run_id", pa.string()),  # stable hash of the resolved config
        ("experiment", pa.string()),
        # model
        ("preset", pa.string()),
        ("n_params", pa.int64()),  # non-embedding parameters: the paper's N
        ("total_params", pa.int64()),
        ("d_model", pa.int64()),
        ("n_layers", pa.int64()),
        ("n_heads", pa.int64()),
        ("vocab_size", pa.int64()),
        ("seq_len", pa.int64()),
        ("flops_per_token", pa.float64()),  # training FLOPs per token: 6N + attention
        # batch and optimiser
        ("batch_size", pa.int64()),  # global batch in sequences
        ("batch_tokens", pa.int64()),
        ("micro_batch_size", pa.int64()),
        ("optimizer", pa.string()),  # optim.name (null in stores written before the optimizer axis: adamw)
        ("lr", pa.float64()),
        ("beta1", pa.float64()),
        ("beta2", pa.float64()),
        ("eps", pa.float64()),
        ("weight_decay", pa.float64()),
        ("grad_clip", pa.float64()),
        ("schedule", pa.string()),
        ("warmup_tokens", pa.int64()),
        ("ewa_tau", pa.float64()),
        # data
        ("token_budget", pa.int64()),  # tokens the run was allowed
        ("data_tokens", pa.int64()),  # the cell's nominal data size D (groups runs for CBS fits)
        ("dataset", pa.string()),
        ("dataset_fingerprint", pa.string()),
        ("tokenizer", pa.string()),
        ("eval_sets", pa.list_(pa.string())),  # the first is the primary eval set
        ("seed", pa.int64()),
        ("target_loss", pa.float64()),  # null when the run stops on its budget only
        (
            "reference_batch_size",
            pa.int64(),
        ),  # the cell's B_opt whose best loss sets the target (CBS protocol)
        # outcome
        ("status", pa.string()),  # one of STATUSES
        ("steps", pa.int64()),
        ("tokens", pa.int64()),
        ("final_train_loss", pa.float64()),
        ("final_eval_loss", pa.float64()),  # primary eval set, raw weights
        ("final_ewa_eval_loss", pa.float64()),  # primary eval set, EWA weights
        ("best_ewa_eval_loss", pa.float64()),
        ("steps_to_target", pa.int64()),  # first evaluated step with EWA loss <= target_loss
        ("wall_time_s", pa.float64()),
        ("eval_time_s", pa.float64()),  # of wall_time_s, spent evaluating (null in stores written before it)
        ("tokens_per_s", pa.float64()),
        ("mfu", pa.float64()),  # null where the device peak is unknown (CPU)
        ("device", pa.string()),
        ("dtype", pa.string()),
        ("error", pa.string()),  # message of a failed run
        (
            "stop_reason",
            pa.string(),
        ),  # why the sweep stopped a pruned / skipped_past_cbs run (null otherwise)
        # provenance
        ("cbs_version", pa.string()),
        ("git_sha", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("config_json", pa.string()),  # the full resolved config, to rebuild the run exactly
        # branched runs (`cbs branch`); null for every other run and in stores written before these columns
        ("parent_run_id", pa.string()),  # the run whose kept checkpoint the branch started from
        ("branch_fraction", pa.float64()),  # fraction of the parent's steps at the branch point
        ("branch_step", pa.int64()),  # the parent's step at the branch point
        ("branch_k", pa.int64()),  # batch multiplier: batch_size = k × the parent's
    ]
)

CURVES_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("step", pa.int64()),
        ("tokens", pa.int64()),
        ("eval_set", pa.string()),
        ("train_loss", pa.float64()),  # mean train loss since the previous evaluation
        ("eval_loss", pa.float64()),  # raw weights
        ("ewa_eval_loss", pa.float64()),  # bias-corrected EWA weights
        ("lr", pa.float64()),
        ("wall_time_s", pa.float64()),
        # training since the previous evaluation (null in stores written before these columns)
        ("tokens_per_s", pa.float64()),
        ("mfu", pa.float64()),  # null where the device peak is unknown (CPU)
        ("grad_norm", pa.float64()),  # mean pre-clip gradient norm over the interval's steps
        ("peak_memory_bytes", pa.int64()),  # torch.cuda.max_memory_allocated; null on CPU
        # in-run gradient noise scale (cbs/train/gns.py; v2, null where a step saw one batch size only)
        ("grad_sq_small", pa.float64()),  # mean |G_s|² over the interval's steps, G_s at b_small
        ("grad_sq_big", pa.float64()),  # mean |G_b|² over the interval's steps, G_b at b_big
        ("b_small", pa.int64()),  # sequences behind G_s: the micro-batch, or a rank's share of the batch
        ("b_big", pa.int64()),  # sequences behind G_b: the global batch
        ("gns_trace", pa.float64()),  # bias-corrected EMA of the unbiased tr(Σ) estimator
        ("gns_grad_sq", pa.float64()),  # bias-corrected EMA of the unbiased |G|² estimator
        ("b_simple", pa.float64()),  # gns_trace / gns_grad_sq (null where gns_grad_sq <= 0), in sequences
    ]
)

TABLES = {"runs": RUNS_SCHEMA, "curves": CURVES_SCHEMA}
