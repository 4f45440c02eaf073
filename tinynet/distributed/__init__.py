"""Data-parallel training over MPI (through ``mpi4py``): the same script on one process or on many.

::

    import tinynet.distributed as tnd
    tnd.init()                                            # join the processes mpiexec / srun started
    model.compile(optimizer=tnd.DistributedOptimizer(SGD(lr=0.01, momentum=0.9, nesterov=True)), loss=...)
    model.fit(x, y, batch_size=128, epochs=10)            # 128 = the global batch, shared by the processes
    if tnd.is_chief():
        model.save("model.tnz")

Run it with ``mpiexec -n 4 python train.py`` (or ``srun``); without a launcher it runs in one process. The parts:
:mod:`~tinynet.distributed.world` (:func:`init`, :func:`rank`, :func:`size`, :func:`is_chief`; a rank that
raises stops the job), :mod:`~tinynet.distributed.optimizer` (:func:`DistributedOptimizer`: gradients summed over
the processes between ``compute_gradients`` and ``apply_gradients``), :mod:`~tinynet.distributed.exchange` (one
message per step, sums in rank order) and :mod:`~tinynet.distributed.data_parallel` (how ``fit`` shares each
global batch). ``docs/distributed.md`` tells what is exact and how it scales. mpi4py is imported by
:func:`init` only: ``import tinynet.distributed`` works without it.
"""

from tinynet.distributed.optimizer import DistributedOptimizer
from tinynet.distributed.world import INSTALL_HINT, World, init, is_chief, local_rank, local_size, rank, size, world

__all__ = [
    "INSTALL_HINT",
    "DistributedOptimizer",
    "World",
    "broadcast_model",
    "init",
    "is_chief",
    "local_rank",
    "local_size",
    "rank",
    "size",
    "world",
]


def broadcast_model(model) -> None:
    """Give every process rank 0's weights, optimizer state and random generators (``fit`` does this itself at
    its start; call it in a custom training loop)."""
    from tinynet.distributed.data_parallel import DataParallel

    DataParallel(world(), model.optimizer).broadcast_state(model)
