"""``distributed``: data-parallel training over MPI on this machine, and a projection for several machines.

For 1, 2 and 4 ranks (``mpiexec -n N``, each rank with ``cores / N`` engine threads) the probe
(:mod:`benchmarks.probes.distributed`) times a training step of the tutorial CNN on a global batch of 128 through
the fit loop's path, the gradient exchange inside it (pack the 563,114 float32 gradients, 2.25 MB, into one
buffer; gather; sum in rank order), the wait for the slowest rank before it, and a bare ``Allreduce`` and
``Allgather`` of the same 2.25 MB.

The projection for ``M`` machines is on paper, since one machine is all there is: compute per rank scales as
``1 / M`` of the one-machine step (the global batch is fixed), plus the exchange over a network of bandwidth ``b``:
``(M - 1) S / b`` for tinynet's gather (every rank receives every other rank's ``S`` bytes), against the
bandwidth-optimal ring allreduce's ``2 (M - 1) / M * S / b``. Latency (tens of microseconds per message) is left
out: at 2.25 MB per step the bandwidth term dominates.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.context import RunContext
from benchmarks.probes import probe_environment
from benchmarks.report import format_table

NETWORKS = {"10 GbE": 1.25e9, "100 Gb/s InfiniBand": 12.5e9}
MACHINES = (1, 2, 4, 8, 16, 32)


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _probe(mpiexec: str, ranks: int, batch: int, steps: int, exchanges: int) -> dict[str, Any]:
    import json

    command = [mpiexec, "-n", str(ranks), sys.executable, "-m", "benchmarks.probes.distributed",
               "--batch", str(batch), "--steps", str(steps), "--exchanges", str(exchanges)]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=probe_environment(
        {"TINYNET_NUM_THREADS": None}), timeout=900, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with code {completed.returncode}:\n"
                           f"{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1]) | {"process_s": time.perf_counter() - started}


def projection(one_machine_step_s: float, gradient_bytes: int, bandwidth: float) -> list[dict[str, float]]:
    """Projected time per global batch on ``M`` machines (see the module docstring)."""
    rows = []
    for machines in MACHINES:
        compute = one_machine_step_s / machines
        gather = (machines - 1) * gradient_bytes / bandwidth
        ring = 2 * (machines - 1) / machines * gradient_bytes / bandwidth
        rows.append({"machines": machines, "compute_s": compute, "gather_s": gather, "ring_allreduce_s": ring,
                     "step_gather_s": compute + gather, "step_ring_s": compute + ring})
    return rows


def run(context: RunContext) -> dict[str, Any]:
    mpiexec = _mpiexec()
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        mpiexec = None
    if mpiexec is None:
        print("distributed: skipped (needs mpi4py and mpiexec: pip install 'tinynet[mpi]')\n")
        return {"skipped": "mpi4py or mpiexec not installed"}
    smoke = context.settings.mode == "smoke"
    batch, steps, exchanges = (16, 1, 2) if smoke else (128, 5 if context.settings.quick else 15, 30)
    ranks_list = (1, 2) if smoke else (1, 2, 4)
    runs = [_probe(mpiexec, ranks, batch, steps, exchanges) for ranks in ranks_list]
    rows = [[run["ranks"], run["threads_per_rank"], run["step_s"] * 1e3, batch / run["step_s"],
             run["exchange_s"] * 1e3, 100 * run["exchange_s"] / run["step_s"], run["wait_s"] * 1e3,
             run["allreduce_s"] * 1e3, run["allgather_s"] * 1e3] for run in runs]
    print(format_table(
        ["ranks", "threads", "ms/global batch", "img/s", "exchange ms", "exchange %", "wait ms", "Allreduce ms",
         "Allgather ms"],
        rows, title=f"distributed: tutorial CNN, global batch {batch}, median of {steps} steps per rank count "
                    "(this machine: all ranks share its cores)"))
    print()
    result: dict[str, Any] = {"global_batch": batch, "runs": runs, "projections": {}}
    gradient_bytes = runs[0]["gradient_bytes"]
    for network, bandwidth in NETWORKS.items():
        rows_projected = projection(runs[0]["step_s"], gradient_bytes, bandwidth)
        result["projections"][network] = rows_projected
        print(format_table(
            ["machines", "compute ms", "gather ms", "ring ms", "step ms (gather)", "step ms (ring)"],
            [[row["machines"], row["compute_s"] * 1e3, row["gather_s"] * 1e3, row["ring_allreduce_s"] * 1e3,
              row["step_gather_s"] * 1e3, row["step_ring_s"] * 1e3] for row in rows_projected],
            title=f"projection on {network} ({bandwidth / 1e9:g} GB/s), {gradient_bytes / 1e6:.2f} MB of gradients "
                  "per step, one rank per machine at this machine's one-process speed"))
        print()
    measured = [run for run in runs if run["ranks"] > 1 and run["allgather_s"] > 0]
    if measured:
        run = measured[0]
        result["measured_gather_bandwidth_Bps"] = (run["ranks"] - 1) * gradient_bytes / run["allgather_s"]
        print(f"measured on this machine ({run['ranks']} ranks, shared memory): Allgather moves "
              f"{result['measured_gather_bandwidth_Bps'] / 1e9:.2f} GB/s per rank\n")
    return result
