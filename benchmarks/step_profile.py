"""Where a training step's time goes: the model's own public step (``Sequential.train_step``), with a stopwatch
around each stage's forward and backward, the loss and its gradient, and the optimizer's update.

Nothing is written out again: the stopwatches wrap the methods of the objects the step calls (the stages of
:func:`tinynet.models.passes.stages`, which are the layers when ``model.fuse`` is off and the engine's stages when
it is on, or the engine's whole-network passes when it runs those; the loss; the optimizer) for the length of one
call, and are removed afterwards. The step that is timed is the step ``fit`` runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from benchmarks.timing import Stopwatch
from tinynet.models import passes

LOSS = "loss"
OPTIMIZER = "optimizer"

# The methods timed on each kind of object, with the phase each one is counted under.
_STAGE_METHODS = (("forward", "forward"), ("backward", "backward"), ("backward_preactivation", "backward"))
_LOSS_METHODS = (("gradient", "backward"), ("softmax_gradient", "backward"))  # its value: _timed_loss_value


def _timed(method: Callable, watch: Stopwatch, key: str) -> Callable:
    def timed(*args: Any, **kwargs: Any) -> Any:
        with watch(key):
            return method(*args, **kwargs)

    return timed


@contextlib.contextmanager
def _stopwatches(targets: list[tuple[Any, str, tuple[tuple[str, str], ...]]], watch: Stopwatch) -> Iterator[None]:
    """Wrap each ``(object, name, methods)``'s methods on the instance; take the wrappers off at the end."""
    installed = []
    try:
        for target, name, methods in targets:
            for method_name, phase in methods:
                method = getattr(target, method_name, None)
                if method is None or method_name in vars(target):
                    continue  # absent, or already wrapped by someone else: leave it alone
                setattr(target, method_name, _timed(method, watch, f"{name}|{phase}"))
                installed.append((target, method_name))
        yield
    finally:
        for target, method_name in installed:
            delattr(target, method_name)


@contextlib.contextmanager
def _timed_loss_value(loss: Any, watch: Stopwatch) -> Iterator[None]:
    """Time ``loss(y_true, y_pred)``: special methods are looked up on the type, so for the length of the step the
    loss object takes a subclass of its own class whose ``__call__`` holds the stopwatch (``isinstance`` checks
    still see the loss's class)."""
    own_class = type(loss)

    def timed_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with watch(f"{LOSS}|forward"):
            return own_class.__call__(self, *args, **kwargs)

    loss.__class__ = type(f"Timed{own_class.__name__}", (own_class,), {"__call__": timed_call})
    try:
        yield
    finally:
        loss.__class__ = own_class


def training_step_by_piece(model: Any, x: np.ndarray, targets: np.ndarray, watch: Stopwatch) -> float:
    """One ``model.train_step(x, targets)``; every piece is timed into ``watch`` as ``"<stage name>|forward"``,
    ``"<stage name>|backward"``, ``"loss|forward"``, ``"loss|backward"`` and ``"optimizer|update"``.

    Returns the batch loss. The model must be compiled and built.
    """
    targets_to_time = [(piece, piece.name, _STAGE_METHODS) for piece in _pieces(model)]
    targets_to_time += [(model.loss, LOSS, _LOSS_METHODS), (model.optimizer, OPTIMIZER,
                                                                 (("apply_gradients", "update"),))]
    with _stopwatches(targets_to_time, watch), _timed_loss_value(model.loss, watch):
        figures = model.train_step(x, targets)
    return float(figures["loss"])


def _pieces(model: Any) -> list[Any]:
    """What a training step runs forward and backward: the stages, or, when the engine runs the whole network
    as compiled calls per thread (:mod:`tinynet.engine.compiled_training`), that one piece."""
    whole = passes.compiled_training(model)
    return [whole] if whole is not None else list(passes.stages(model))


def stage_kinds(model: Any) -> dict[str, str]:
    """The kind of every piece :func:`training_step_by_piece` times, by its name."""
    return {piece.name: type(piece).__name__ for piece in _pieces(model)} | {LOSS: "loss", OPTIMIZER: "optimizer"}
