r"""``fit`` on several processes: each computes its share of every global batch, as one process would compute it.

With ``fit(x, y, batch_size=B)`` on ``N`` processes, every process reads the same data and draws the same shuffle
(rank 0's generators are broadcast at the start), so all of them walk through the same global batches of ``B``
samples in the same order as one process would. Process ``r`` computes rows ``[r B / N, (r + 1) B / N)`` of each
(a last batch of ``b < B`` samples is cut the same way, ``[r b / N, (r + 1) b / N)``).

**The loss is normalised by the global batch.** The one-process loss of a batch with sample weights ``w``
(all ones when none are given) is ``L = sum_i l_i w_i / nnz(w)``. Process ``r`` computes its rows with the
weights ``w_i * nnz_r / nnz`` (``nnz_r`` the non-zero weights of its rows), so its weighted-mean loss
``sum_{i in r} l_i w_i / nnz`` and its gradient are exactly its part of ``L`` and of ``dL``: summed over the
processes (:meth:`combine_shares`) they give the global ones, uneven last batch included. Metrics, plain means
over samples, are weighted by each share's ``rows / B``.

**Random numbers.** Dropout draws the global batch's mask and keeps its rows (:mod:`tinynet.layers.batch_shard`);
BatchNormalization adds its statistics over the processes. A process with no row of a small last batch
computes one stand-in row with weight zero: it takes part in every exchange and draws the same random words.

**Files and printing.** Only rank 0 prints the progress bar and runs the callbacks that write files
(ModelCheckpoint, CSVLogger, and any callback with ``chief_only = True``); every process runs the others, on the
same summed logs, so EarlyStopping or ReduceLROnPlateau decide the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from tinynet.distributed.exchange import sum_over_processes
from tinynet.distributed.world import World
from tinynet.layers import batch_shard
from tinynet.models import passes
from tinynet.models.batches import Batch
from tinynet.models.data_parallel import OneProcess


def share_rows(global_size: int, rank: int, size: int) -> tuple[int, int]:
    """Process ``rank``'s rows ``[start, stop)`` of a global batch: contiguous, sizes differing by at most one."""
    return rank * global_size // size, (rank + 1) * global_size // size


def chief_only(callback: Any) -> bool:
    """Whether only rank 0 runs ``callback``: those that write files, and any that declare ``chief_only``."""
    from tinynet.callbacks import CSVLogger, ModelCheckpoint

    return bool(getattr(callback, "chief_only", False)) or isinstance(callback, ModelCheckpoint | CSVLogger)


class DataParallel(OneProcess):
    """This process's part in a data-parallel ``fit`` (see the module docstring)."""

    def __init__(self, world: World, optimizer: Any) -> None:
        self.world, self.optimizer = world, optimizer
        self.is_chief = world.is_chief

    # ------------------------------------------------------------------------------------------- the start
    def start(self, model: Any, params: dict[str, Any]) -> None:
        """Check that every process reads the same amount of data, then give every process rank 0's weights,
        optimizer state and random generators (Horovod's ``BroadcastGlobalVariablesCallback``)."""
        plan = (params["epochs"], params["steps"], params["samples"], params["batch_size"])
        plans = self.world.gather_objects(plan)
        if any(other != plans[0] for other in plans):
            raise ValueError("tinynet.distributed: every process must fit the same data with the same settings; "
                             "(epochs, steps, samples, batch_size) per rank: "
                             + ", ".join(f"rank {rank}: {other}" for rank, other in enumerate(plans)))
        self.broadcast_state(model)

    def broadcast_state(self, model: Any) -> None:
        """Rank 0's weights, optimizer state (iterations, slots) and random generators, on every process."""
        optimizer = self.optimizer
        state = self.world.broadcast({
            "weights": model.get_weights(),
            "iterations": optimizer.iterations,
            "optimizer_state": optimizer.get_state(),
            "slots": optimizer.get_slots(model.layers),
            "generators": [layer_generators(layer) for layer in model.layers],
            "shuffle": model._shuffle_generator.bit_generator.state,
        } if self.world.is_chief else None)
        if not self.world.is_chief:
            model.set_weights(state["weights"])
            optimizer.iterations = state["iterations"]
            optimizer.set_state(state["optimizer_state"])
            optimizer.set_slots(model.layers, state["slots"])
            for layer, generators in zip(model.layers, state["generators"], strict=True):
                for name, generator_state in generators.items():
                    getattr(layer, name).bit_generator.state = generator_state
            model._shuffle_generator.bit_generator.state = state["shuffle"]
        optimizer._combined = False

    def callbacks_here(self, callbacks: list[Any]) -> list[Any]:
        return callbacks if self.is_chief else [callback for callback in callbacks if not chief_only(callback)]

    # ----------------------------------------------------------------------------------------- each batch
    def _shard(self, x: np.ndarray, weights: np.ndarray | None) -> tuple[batch_shard.BatchShard, np.ndarray]:
        """This process's shard of a global batch, and the loss weights of its rows (see the module docstring)."""
        global_size = len(x)
        start, stop = share_rows(global_size, self.world.rank, self.world.size)
        counted = stop > start
        if not counted:
            start, stop = 0, 1  # a stand-in row, weight zero (its loss and gradient are exactly zero)
        all_weights = np.ones(global_size) if weights is None else np.asarray(weights, dtype=np.float64)
        nonzero = np.count_nonzero(all_weights)
        mine = all_weights[start:stop]
        share_of_loss = np.count_nonzero(mine) / nonzero if counted and nonzero else 0.0
        shard = batch_shard.BatchShard(global_size, start, stop, self.sum_over_shards, counted)
        return shard, mine * share_of_loss

    def sum_over_shards(self, array: np.ndarray) -> np.ndarray:
        return sum_over_processes(self.world, array)

    @contextmanager
    def share(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> Iterator[Batch]:
        shard, share_weights = self._shard(x, weights)
        with batch_shard.holding(shard):
            yield x[shard.start:shard.stop], y[shard.start:shard.stop], share_weights

    # ----------------------------------------------------------------------------------------- validation
    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, float]:
        """The validation figures of the global batches: each process evaluates its rows, and the totals are
        summed over the processes in one exchange at the end."""
        keys = list(model.metrics_names)
        totals = np.zeros(len(keys) + 1)  # the figures times the batch sizes, then the samples seen
        for x, y, weights in batches:
            shard, share_weights = self._shard(x, weights)
            totals[-1] += shard.global_size
            if not shard.counted:
                continue
            if y is None:
                raise ValueError("validation batches must carry targets")
            outputs = passes.forward(model, x[shard.start:shard.stop], training=False)
            figures = model._batch_figures(y[shard.start:shard.stop], outputs, share_weights)
            metric_share = shard.rows / shard.global_size
            for index, key in enumerate(keys):
                totals[index] += figures[key] * (1.0 if key == "loss" else metric_share) * shard.global_size
        passes.clear_caches(model)
        totals = sum_over_processes(self.world, totals)
        totals[-1] /= self.world.size  # every process counted every batch
        return {key: float(totals[index] / totals[-1]) for index, key in enumerate(keys)}


def layer_generators(layer: Any) -> dict[str, Any]:
    """The states of a layer's random generators (Dropout's mask stream), by attribute name."""
    return {name: value.bit_generator.state for name, value in vars(layer).items()
            if isinstance(value, np.random.Generator)}
