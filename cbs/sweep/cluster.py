"""Start or join the Ray cluster a sweep runs on, and check that it can run the trials at all."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

from cbs.errors import ConfigError
from cbs.sweep.reaper import start_reaper, stop_reaper
from cbs.sweep.spec import Resources

if TYPE_CHECKING:
    from ray._private.worker import RayContext

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the cbs package, shipped to cluster workers


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Use the Ray already initialised in this process, else join ``address`` (or RAY_ADDRESS), else start a
    local Ray with ``num_cpus`` (default: this machine's cores). Only a Ray started here is shut down; a local
    one is watched by a reaper (cbs.sweep.reaper, Linux) that kills its processes if this driver is killed."""
    import ray

    quiet()
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    reaper = None
    if address:
        # cluster nodes run the same Python environment (torch, ray, ...); cbs itself is shipped with the job
        ray.init(address=address, runtime_env={"py_modules": [str(PACKAGE_DIR)]}, log_to_driver=False)
    else:
        # local workers inherit this environment: make sure they import this cbs whatever their directory
        paths = [str(PACKAGE_DIR.parent), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        os.environ["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in paths)
        context = ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False
        )
        # a local ray.init gives a RayContext (annotated as its base class)
        session_dir = cast("RayContext", context).address_info["session_dir"]
        if session_dir is None:
            ray.shutdown()
            raise RuntimeError("the local Ray session reports no session_dir; cannot watch its processes")
        reaper = start_reaper(session_dir)
    try:
        yield
    finally:
        ray.shutdown()
        stop_reaper(reaper)


def quiet() -> None:
    """Keep Ray's own console output to warnings: the sweep prints its own progress and trial errors."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter is silent at verbose=0
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C stops the sweep, not just one phase
    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)  # trial errors are reported by SweepProgress


def check_resources(resources: Resources, nodes: list[dict] | None = None) -> None:
    """Raise ConfigError unless some alive node can hold one trial (Ray would leave it pending forever)."""
    if nodes is None:
        import ray

        nodes = [n for n in ray.nodes() if n.get("Alive")]
    have = [(n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0)) for n in nodes]
    cpus, gpus = resources.trial_cpus, resources.trial_gpus  # a trial's ranks all run on one node
    if any(cpu >= cpus and gpu >= gpus for cpu, gpu in have):
        return
    total_gpus = sum(g for _, g in have)
    key = "gpus" if resources.gpus is not None else "gpus_per_worker"
    if gpus > 0 and total_gpus == 0:
        raise ConfigError(
            f"resources.{key}: {gpus:g} GPU per trial, but the Ray cluster has no GPU; set "
            f"resources.{key}: 0 to train on CPU, or join a GPU cluster with --address (or RAY_ADDRESS)"
        )
    raise ConfigError(
        f"resources: no Ray node has {cpus:g} CPUs and {gpus:g} GPUs free for one trial "
        f"(nodes have CPU/GPU {have}); lower resources.cpus/gpus (or workers) or add larger nodes"
    )
