"""The world: the processes of one training job, as MPI's world communicator sees them (through ``mpi4py``).

``mpiexec -n 4 python train.py`` (or ``srun`` under Slurm) starts four copies of a script; :func:`init` joins
them into one :class:`World` with a ``rank`` 0..3 each. Without ``mpiexec`` (or without mpi4py installed) the
world is the one process, ``rank() == 0`` and ``size() == 1``, so the same script runs on a laptop unchanged.

Two duties beyond naming the processes:

* **No hangs.** A process that raises would leave the others blocked forever in their next exchange (and itself
  in ``MPI_Finalize``). :func:`init` installs an exception hook that prints the traceback, prefixed with the rank,
  then calls ``MPI.COMM_WORLD.Abort``: the launcher stops every process within moments, and the error reaches the
  user. A process that dies outright (a signal, ``os._exit``) is noticed by the launcher itself.
* **No oversubscription.** Each process uses ``cores / processes on this node`` engine threads unless
  ``TINYNET_NUM_THREADS`` or ``init(threads=...)`` says otherwise.

Exchanges used by training: :meth:`World.gather` (every process receives every process's bytes, then each adds
them up in rank order itself, so that all of them hold the same bits) and :meth:`World.broadcast` (rank 0's
Python objects to all).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import warnings
from typing import Any

import numpy as np

INSTALL_HINT = ("pip install 'tinynet[mpi]' (which installs mpi4py and the mpich wheel), or pip install mpi4py "
                "with an MPI library of your cluster")

# Variables the common launchers set in every process they start: MPICH's Hydra (and srun with PMI), Open MPI,
# PMIx, and srun itself (SLURM_STEP_NUM_TASKS, not SLURM_NTASKS: a batch script run once also has that).
_LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS")


def _launched_size() -> int:
    """How many processes a launcher says it started (1 when none did)."""
    for name in _LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


class World:
    """The processes of the job: ``rank`` (0 is the chief), ``size``, and their ``local_rank`` / ``local_size`` on
    this node. ``comm`` is the mpi4py communicator, or None for the one-process world."""

    def __init__(self, comm: Any = None) -> None:
        self.comm = comm
        if comm is None:
            self.rank, self.size, self.local_rank, self.local_size = 0, 1, 0, 1
            return
        from mpi4py import MPI

        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def gather(self, part: np.ndarray) -> np.ndarray:
        """Every process's ``part`` (a 1-D uint8 array of the same length everywhere), as rows ``(size, bytes)``
        in rank order, on every process."""
        if self.comm is None:
            return part[None]
        gathered = np.empty((self.size, part.size), dtype=np.uint8)
        self.comm.Allgather(part, gathered)
        return gathered

    def allreduce(self, buffer: np.ndarray) -> None:
        """Replace ``buffer`` by its sum over the processes, in place (``MPI_Allreduce``)."""
        if self.comm is not None:
            from mpi4py import MPI

            self.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)

    def gather_objects(self, value: Any) -> list[Any]:
        """Every process's ``value`` (picklable), as a list in rank order, on every process."""
        return [value] if self.comm is None else self.comm.allgather(value)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object), on every process."""
        return value if self.comm is None else self.comm.bcast(value, root=0)

    def barrier(self) -> None:
        if self.comm is not None:
            self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """Stop every process of the job now (``MPI_Abort``)."""
        if self.comm is not None:
            self.comm.Abort(code)
        os._exit(code)


_world: World | None = None

#: How long a failing process waits, after writing its traceback, before it aborts the job.
ABORT_GRACE_SECONDS = 0.5


def _abort_on_uncaught_exception(world: World) -> None:
    previous = sys.excepthook

    def hook(kind, error, trace) -> None:
        message = "".join(traceback.format_exception(kind, error, trace))
        prefix = f"[tinynet rank {world.rank}/{world.size}] "
        sys.stderr.write(prefix + f"uncaught {kind.__name__}; stopping every process of the job\n"
                         + "".join(prefix + line + "\n" for line in message.rstrip("\n").split("\n")))
        sys.stderr.flush()
        if world.size > 1:
            # The launcher forwards our stderr from a pipe it polls; MPI_Abort makes it tear the job down at
            # once, and what it had not read yet is lost (1 run in 20 printed nothing). A moment's grace first.
            time.sleep(ABORT_GRACE_SECONDS)
            world.abort(1)
        previous(kind, error, trace)

    sys.excepthook = hook


def init(threads: int | None = None) -> World:
    """Join the job's processes (MPI's world communicator) and return the :class:`World`; safe to call again.

    Without a launcher, or without mpi4py when no launcher started several processes, the world is this process
    alone (with a warning naming how to install mpi4py if it is missing). Several processes started by a launcher
    without mpi4py is an error: each would otherwise train on its own, unaware of the others.

    ``threads`` sets this process's engine threads; by default ``TINYNET_NUM_THREADS`` if set, else the cores
    this process may use divided by the processes on this node (at least 1).
    """
    global _world
    if _world is not None:
        return _world
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as error:  # RuntimeError: mpi4py found no MPI library to load
        problem = "mpi4py is not installed" if isinstance(error, ImportError) else f"mpi4py cannot start ({error})"
        if _launched_size() > 1:
            raise ImportError(f"tinynet.distributed.init: this is one of {_launched_size()} processes started by "
                              f"an MPI launcher, but {problem}; install it: {INSTALL_HINT}") from None
        warnings.warn(f"tinynet.distributed: {problem}, so training runs in this process alone; for several "
                      f"processes install it ({INSTALL_HINT}) and start the script with mpiexec -n N",
                      stacklevel=2)
        _world = World()
        return _world
    _world = World(MPI.COMM_WORLD) if MPI.COMM_WORLD.Get_size() > 1 else World()
    if _world.size > 1:
        _abort_on_uncaught_exception(_world)
    _set_threads(_world, threads)
    return _world


def _set_threads(world: World, threads: int | None) -> None:
    from tinynet.engine import threads as engine_threads

    if threads is None:
        if os.environ.get("TINYNET_NUM_THREADS") or world.local_size == 1:
            return
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        threads = max(1, cores // world.local_size)
    engine_threads.set_num_threads(threads)


def world() -> World:
    """The world :func:`init` joined (:func:`init` is called on first use)."""
    return _world if _world is not None else init()


def rank() -> int:
    """This process's number in the job, 0 for the chief."""
    return world().rank


def size() -> int:
    """How many processes the job has."""
    return world().size


def local_rank() -> int:
    """This process's number among the job's processes on this node."""
    return world().local_rank


def local_size() -> int:
    return world().local_size


def is_chief() -> bool:
    """Whether this process is rank 0: the one that prints, saves checkpoints and writes logs and plots."""
    return world().rank == 0
