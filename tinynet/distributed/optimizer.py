"""``DistributedOptimizer``: an optimizer whose update uses the gradients summed over every process's share.

As in Horovod (``horovod/_keras/__init__.py``), the wrapped optimizer is an instance of a subclass of the
optimizer's own class, with the same name: the model file records ``SGD`` and its state as usual, and a model
saved during distributed training loads anywhere. The subclass adds two things:

* :meth:`combine_shares`, which :meth:`tinynet.models.Sequential.train_step` calls between ``compute_gradients``
  and ``apply_gradients``: every gradient (and the step's figures) packed into one buffer, exchanged in one
  message, summed in rank order (:mod:`tinynet.distributed.exchange`). In ``fit`` each process's loss gradient is
  already its share of the global batch's mean (:mod:`tinynet.distributed.data_parallel`), so the shares add up
  to the one-process gradient; a step outside ``fit`` (``train_on_batch``, a custom loop) averages the processes'
  gradients with equal weights, as Horovod does;
* :attr:`data_parallel`, the object through which ``fit`` shares each global batch among the processes
  (:class:`tinynet.distributed.data_parallel.DataParallel`).

``apply_gradients`` called directly (a custom loop: ``compute_gradients`` then ``optimizer.apply_gradients``)
combines first if the step has not, so gradients are never applied unaveraged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import optimizers
from tinynet.distributed.exchange import Packer, sum_over_processes
from tinynet.distributed.world import World, init
from tinynet.layers import batch_shard


class _DataParallelOptimizer:
    """The methods added to the optimizer's class (see the module docstring)."""

    _world: World
    _packer: Packer | None
    _combined: bool
    #: How the gradients are summed: ``"gather"`` (every process adds every part in rank order: the result does
    #: not depend on the MPI library) or ``"allreduce"`` (MPI_Allreduce: less traffic with many processes).
    exchange: str

    def combine_shares(self, layers: list[Any], figures: dict[str, float]) -> dict[str, float]:
        """Replace every trainable ``layer.grads`` by its sum over the processes' shares; return the figures summed
        the same way (the loss as the gradients; each metric, a mean over samples, weighted by the share's
        rows). Every process gets the same bits."""
        world = self._world
        self._combined = True
        if world.size == 1:
            return figures  # the sum over one process: nothing to copy
        gradients = [(layer, name) for layer in layers if layer.trainable for name in layer.params]
        arrays = [np.ascontiguousarray(layer.grads[name]) for layer, name in gradients]
        shard = batch_shard.current()
        if shard is None:  # outside fit: every process's batch counts the same
            gradient_scale = metric_scale = 1.0 / world.size
        elif shard.counted:  # in fit the loss gradient is already this share's part of the global mean
            gradient_scale, metric_scale = 1.0, shard.rows / shard.global_size
        else:  # a stand-in row: its loss gradient is zero, but BatchNormalization's dx mixes in the other rows
            gradient_scale = metric_scale = 0.0
        keys = list(figures)
        figure_values = np.array([figures[key] * (gradient_scale if key == "loss" else metric_scale)
                                  for key in keys], dtype=np.float64)
        if self.exchange == "gather":  # the figures travel in the gradients' message
            arrays.append(figure_values)
        if self._packer is None or not self._packer.matches(arrays):
            self._packer = Packer(arrays)
        scales = [gradient_scale] * len(gradients) + [1.0] * (len(arrays) - len(gradients))
        if self.exchange == "gather":
            sums = self._packer.sum_over(world, arrays, scales)
            figure_sums = sums.pop()
        else:  # Allreduce for the gradients (one dtype), a second, tiny message for the figures in float64
            sums = self._packer.reduce_over(world, arrays, scales)
            figure_sums = sum_over_processes(world, figure_values)
        for (layer, name), total in zip(gradients, sums, strict=True):
            layer.grads[name] = total
        return {key: float(value) for key, value in zip(keys, figure_sums, strict=True)}

    def apply_gradients(self, layers: Any) -> Any:
        layers = list(layers)
        if not self._combined:
            self.combine_shares(layers, {})
        self._combined = False
        return super().apply_gradients(layers)  # type: ignore[misc]

    @property
    def data_parallel(self) -> Any:
        """How ``fit`` runs with this optimizer: None in a world of one process (``fit`` then runs exactly as
        without the wrapper), else this process's :class:`~tinynet.distributed.data_parallel.DataParallel`."""
        if self._world.size == 1:
            return None
        from tinynet.distributed.data_parallel import DataParallel

        return DataParallel(self._world, self)

    @property
    def world(self) -> World:
        return self._world


_classes: dict[type, type] = {}


def _data_parallel_class(optimizer_class: type) -> type:
    if optimizer_class not in _classes:
        _classes[optimizer_class] = type(optimizer_class.__name__, (_DataParallelOptimizer, optimizer_class),
                                         {"__module__": optimizer_class.__module__,
                                          "__qualname__": optimizer_class.__qualname__,
                                          "__doc__": optimizer_class.__doc__})
    return _classes[optimizer_class]


def DistributedOptimizer(optimizer: Any, world: World | None = None,  # noqa: N802 (Horovod's name)
                         exchange: str = "gather") -> Any:
    """``optimizer`` (an instance, or a name such as ``'adam'``) made data-parallel over the processes of
    ``world`` (:func:`tinynet.distributed.init`'s by default).

    ``exchange="gather"`` (the default) sums the gradients in rank order on every process, so all processes hold
    the same bits with any MPI library; each process receives ``size - 1`` gradient buffers per step, which suits
    a machine or a few. ``exchange="allreduce"`` uses MPI_Allreduce (about two buffers per process at any size,
    for many machines); its order of additions is the MPI library's (MPICH's gives every process the same bits).

    The result takes over the optimizer's settings and state (iterations, slots): compile the model with it and
    use it in place of the original. Its class has the original's name, so a model saved with it records, and
    loads back, the plain optimizer; wrap it again after loading to go on training on several processes."""
    if exchange not in ("gather", "allreduce"):
        raise ValueError(f"DistributedOptimizer: exchange must be 'gather' or 'allreduce', got {exchange!r}")
    if isinstance(optimizer, str):
        optimizer = optimizers.get(optimizer)
    if isinstance(optimizer, _DataParallelOptimizer):
        optimizer.exchange = exchange
        return optimizer
    if not hasattr(optimizer, "apply_gradients"):
        raise TypeError(f"DistributedOptimizer: expected a tinynet optimizer (or its name), got "
                        f"{type(optimizer).__name__}")
    wrapped: Any = object.__new__(_data_parallel_class(type(optimizer)))
    wrapped.__dict__.update(optimizer.__dict__)
    wrapped._world = world if world is not None else init()
    wrapped._packer = None
    wrapped._combined = False
    wrapped.exchange = exchange
    return wrapped
