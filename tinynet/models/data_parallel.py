"""The seam between the fit loop and data-parallel training: what the loop asks, answered for one process.

The fit loop (:mod:`tinynet.models.training`) runs every step, validation and callback through an object with the
interface below. With an ordinary optimizer it is :class:`OneProcess`, which changes nothing. An optimizer wrapped
by :func:`tinynet.distributed.DistributedOptimizer` hands the loop its ``data_parallel`` object instead, which
answers the same questions as one of several processes: each computes its share of every global batch, the
validation figures are summed over the processes, and only the chief writes files and prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from tinynet.models.batches import Batch
from tinynet.models.evaluation import evaluate_batches


class OneProcess:
    """Training in this process alone: every answer is the plain one."""

    #: Whether this process prints the progress bar and writes checkpoints and logs.
    is_chief = True

    def start(self, model: Any, params: dict[str, Any]) -> None:
        """Called once before the first epoch, with the model built and the fit's ``params`` known."""

    def callbacks_here(self, callbacks: list[Any]) -> list[Any]:
        """The callbacks this process runs."""
        return callbacks

    @contextmanager
    def share(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> Iterator[Batch]:
        """This process's share of the global batch ``(x, y, weights)``, for the training step run inside."""
        yield x, y, weights

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, float]:
        """The validation figures over ``batches``."""
        return evaluate_batches(model, batches)
