"""Thread counts: read and set them for OpenBLAS, Numba and PyTorch without adding a dependency.

Four thread pools can share this machine's cores during a benchmark:

* tinynet's own workers (:mod:`tinynet.engine.threads`), which split its steps; while they compute, tinynet keeps
  OpenBLAS at one thread;
* OpenBLAS, under every NumPy matrix product (the ``peak`` suite's, and tinynet's outside a step);
* Numba's pool, which exists only once a ``parallel=True`` kernel has run (or ``numba.set_num_threads`` was called);
* PyTorch's OpenMP pool, in the ``torch`` suite.

Environment variables (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``NUMBA_NUM_THREADS``...) are read once, when
each library loads, so :func:`set_thread_environment` must run before NumPy is imported to take effect in this
process; subprocesses (``coldstart``, ``memory``) always inherit it. For a process where NumPy is already loaded
(``tinynet bench`` calls :func:`benchmarks.main` after importing tinynet), :func:`set_runtime_threads` changes the
running pools: tinynet's through ``tinynet.engine.set_num_threads``, OpenBLAS through its C API
(:mod:`tinynet.engine.blas`, which finds it among the libraries mapped into this process, as threadpoolctl does),
Numba through ``numba.set_num_threads``, PyTorch through ``torch.set_num_threads``.

This module imports neither NumPy nor Numba at import time, so the command line can set the environment first.
"""

from __future__ import annotations

import os
import sys
from typing import Any

THREAD_ENVIRONMENT_VARIABLES = (
    "TINYNET_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)
"""Set to ``--threads N`` for this process (if not yet loaded) and for every subprocess."""

REPORTED_ENVIRONMENT_VARIABLES = (
    *THREAD_ENVIRONMENT_VARIABLES,
    "NUMBA_THREADING_LAYER",
    "NUMBA_CACHE_DIR",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
    "OPENBLAS_CORETYPE",
    "NUMBA_CPU_NAME",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "XLA_FLAGS",
    "TINYNET_L2_BYTES",
)
"""Copied into the environment block of every report (``None`` when unset)."""

def set_thread_environment(threads: int) -> None:
    """Set every thread-count variable to ``threads`` for this process and the subprocesses it starts."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"set_thread_environment: threads must be a positive int, got {threads!r}")
    for name in THREAD_ENVIRONMENT_VARIABLES:
        os.environ[name] = str(threads)


def openblas_info() -> list[dict[str, Any]]:
    """Each OpenBLAS loaded in this process: path, version/config string, CPU kernel set and thread count.

    Empty when NumPy is not loaded yet or uses another BLAS (the lookup itself is :mod:`tinynet.engine.blas`'s).
    """
    from tinynet.engine import blas

    return blas.openblas_info()


def blas_threads() -> int | None:
    """The thread count of the (first) OpenBLAS in this process, or ``None`` when none is found."""
    from tinynet.engine import blas

    return blas.get_threads()


def set_blas_threads(threads: int) -> bool:
    """Set every loaded OpenBLAS to ``threads`` threads; ``False`` if no OpenBLAS was found."""
    from tinynet.engine import blas

    return blas.set_threads(threads)


def numba_threading_layer() -> str:
    """The threading layer Numba chose, or a note saying its thread pool was never started.

    Numba picks a layer (``omp``, ``tbb`` or ``workqueue``) the first time a parallel kernel runs or a thread
    count is asked for; until then there is no pool and so no spinning thread that could steal a core.
    """
    numba = sys.modules.get("numba")
    if numba is None:
        return "not loaded (Numba was not imported)"
    try:
        return str(numba.threading_layer())
    except ValueError:
        return "not started (no Numba parallel kernel ran in this process)"


def numba_threads() -> dict[str, Any]:
    """Numba's configured thread count, and the active one when its pool is running (never starts the pool)."""
    numba = sys.modules.get("numba")
    if numba is None:
        return {"configured": os.environ.get("NUMBA_NUM_THREADS")}
    report: dict[str, Any] = {"configured": int(numba.config.NUMBA_NUM_THREADS),
                              "threading_layer_setting": str(numba.config.THREADING_LAYER)}
    if not numba_threading_layer().startswith("not"):
        report["active"] = int(numba.get_num_threads())
    return report


def set_runtime_threads(threads: int) -> dict[str, Any]:
    """Apply ``threads`` to the pools already loaded in this process; return what was changed.

    Numba's pool is resized only when it is running or Numba was imported before the environment was set,
    because ``numba.set_num_threads`` starts the pool, and a pool that was never needed is better left unstarted.
    """
    from tinynet import engine

    engine.set_num_threads(threads)  # tinynet's own threads (it keeps OpenBLAS at 1 while it computes)
    changed: dict[str, Any] = {"openblas": set_blas_threads(threads), "tinynet": True}
    numba = sys.modules.get("numba")
    if numba is not None:
        running = not numba_threading_layer().startswith("not")
        configured = int(numba.config.NUMBA_NUM_THREADS)
        if running or threads < configured:
            numba.set_num_threads(min(threads, configured))
            changed["numba"] = True
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        changed["torch"] = True
    return changed


def thread_settings() -> dict[str, Any]:
    """The thread-related environment variables and the live thread counts of each loaded library."""
    settings: dict[str, Any] = {
        "environment": {name: os.environ.get(name) for name in REPORTED_ENVIRONMENT_VARIABLES},
        "openblas_threads": blas_threads(),
        "tinynet_threads": tinynet_threads(),
        "numba": numba_threads(),
        "numba_threading_layer": numba_threading_layer(),
    }
    torch = sys.modules.get("torch")
    settings["torch_threads"] = int(torch.get_num_threads()) if torch is not None else None
    return settings


def tinynet_threads() -> int:
    """How many threads tinynet computes with (``tinynet.engine.num_threads``)."""
    from tinynet import engine

    return engine.num_threads()
