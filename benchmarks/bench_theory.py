"""Time one full CBS-vs-D curve of `cbs theory` (default problem and grid, 6 data sizes, no dim sweep).

Prints wall and CPU time per data size and in total; the CPU time is what matters on a shared machine.
Run: PYTHONPATH=. python benchmarks/bench_theory.py [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    from cbs.fit import fit_power_law
    from cbs.theory.study import StudySpec, run_cell

    spec = StudySpec()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    cbs = []
    for data_size in spec.data_sizes:
        w, c = time.perf_counter(), time.process_time()
        cell = run_cell(spec, spec.dim, data_size)
        cbs.append(cell.fit.cbs)
        print(
            f"D={data_size:>6}: B*={cell.fit.cbs:7.1f}  wall {time.perf_counter() - w:5.1f} s  "
            f"cpu {time.process_time() - c:5.1f} s"
        )
    law = fit_power_law(spec.data_sizes, cbs, n_boot=spec.n_boot, seed=spec.seed)
    print(
        f"{len(spec.data_sizes)} data sizes, dim {spec.dim}: wall {time.perf_counter() - wall0:.1f} s, "
        f"cpu {time.process_time() - cpu0:.1f} s; B* ∝ D^{law.exponent:.3f} "
        f"[{law.exponent_ci[0]:.3f}, {law.exponent_ci[1]:.3f}]"
    )


if __name__ == "__main__":
    main()
