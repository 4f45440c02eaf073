"""Numerical faults: finding the NaN or infinity that stopped training, and saying where it first showed.

The training step checks the loss and every gradient before the optimizer applies the step (then the weights are
those of the last good step) and the weights right after it (the update kernels count non-finite values in their
own pass); ``fit`` checks the validation loss at the end of each epoch. Only once a check has failed does
:func:`locate_fault` look further, so the search costs nothing while training is healthy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

# What the message says of each kind of fault, and whether the weights in memory are still those of a good step.
_WHAT = {
    "loss": "the loss is {loss}",
    "gradient": "a gradient is NaN or infinite",
    "update": "the update made a weight NaN or infinite though the loss and every gradient were finite",
    "validation": "the validation loss is {loss}",
}


class NumericalFaultError(FloatingPointError):
    """A NaN or infinity appeared in the loss, in a gradient, in a weight after an update, or in the validation
    loss, during training.

    The loss and every gradient are checked before the optimizer applies the step (then the weights are those of
    the last good step), every weight right after it (a finite gradient times a huge learning rate can overflow),
    and the validation loss at the end of each epoch. Either way no checkpoint is written for the epoch. The
    message names the epoch and batch (as the progress bar numbers them, with the 0-based indices callbacks see)
    and the layer where the fault first showed. Attributes: ``epoch`` and ``batch`` (0-based; ``None`` outside
    ``fit`` and for the validation pass), ``layer`` (its name, or ``None``), ``quantity`` (``'loss'``,
    ``'gradient'``, ``'update'`` or ``'validation'``) and ``figures`` (the loss and accuracy concerned). Pass
    ``TerminateOnNaN()`` to ``fit`` to stop training quietly instead, as Keras does.
    """

    def __init__(self, message: str, *, epoch: int | None, batch: int | None, layer: str | None, quantity: str,
                 figures: dict[str, float], model_name: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.layer = layer
        self.quantity = quantity
        self.figures = figures
        self._model_name = model_name
        self._detail = detail

    @classmethod
    def describe(cls, model_name: str, quantity: str, figures: dict[str, float], layer: str | None, detail: str,
                 position: tuple[int, int, int | None, int] | None = None) -> NumericalFaultError:
        """The error for a fault of ``quantity`` first seen in ``layer``; ``position`` is ``(epoch, epochs, batch,
        steps)`` inside ``fit`` (``batch`` None for the validation pass) and None for a step on its own."""
        if position is None:
            where, epoch, batch = "in train_on_batch", None, None
        else:
            epoch, epochs, batch, steps = position
            where = (f"at epoch {epoch + 1}/{epochs}, " + (
                f"batch {batch + 1}/{steps} (0-based: epoch={epoch}, batch={batch})" if batch is not None
                else f"in the validation pass after its last batch (0-based: epoch={epoch})"))
        what = _WHAT[quantity].format(loss=figures.get("loss"))
        applied = "The update was not applied" if quantity in ("loss", "gradient") else \
            "The weights in memory are spoiled; the checkpoints saved before are not"
        message = (f"{model_name}: training diverged {where}: {what}; first non-finite values in layer "
                   f"{layer!r}: {detail}. {applied}. Lower the learning rate, check the data and the initial "
                   "weights, or pass callbacks=[TerminateOnNaN()] to stop without an error.")
        return cls(message, epoch=epoch, batch=batch, layer=layer, quantity=quantity, figures=figures,
                   model_name=model_name, detail=detail)

    def at(self, position: tuple[int, int, int | None, int]) -> NumericalFaultError:
        """The same fault, its message placed at ``(epoch, epochs, batch, steps)`` of ``fit``."""
        return self.describe(self._model_name, self.quantity, self.figures, self.layer, self._detail, position)


def arrays_are_finite(dicts: Iterable[dict[str, np.ndarray]]) -> bool:
    """True when no array in the dicts holds a NaN or an infinity."""
    # One sum per array is cheap; NaN and Inf survive it. A sum that overflows though every element is finite
    # is confirmed element-wise before it counts as a fault.
    for arrays in dicts:
        for array in arrays.values():
            if not np.isfinite(array.sum()) and not np.isfinite(array).all():
                return False
    return True


def locate_fault(layers: list[Any], quantity: str, x_batches: Iterable[np.ndarray]) -> tuple[str | None, str]:
    """``(layer name, what is wrong there)`` for the first place a NaN/Inf shows (runs only once training failed).

    A weight that is already NaN/Inf is the root of everything after it; for a gradient fault, the last layer
    whose gradient holds one (backward runs last to first); otherwise the forward pass is replayed layer by layer
    with dropout off (no random draws) and the first non-finite output is named.
    """
    for layer in layers:
        for name, weight in {**layer.params, **layer.state}.items():
            if not np.isfinite(weight).all():
                return layer.name, f"its weight {name!r} holds NaN or Inf"
    if quantity == "gradient":
        for layer in reversed(layers):
            for name, grad in layer.grads.items():
                if not np.isfinite(grad).all():
                    return layer.name, f"the gradient of its {name!r} holds NaN or Inf"
        return None, "no layer's gradient could be singled out"
    with np.errstate(all="ignore"):
        for x_batch in x_batches:
            values = x_batch
            for layer in layers:
                values = layer.forward(values, training=False)
                if not np.isfinite(values).all():
                    return layer.name, "its output holds NaN or Inf though its input was finite"
    return layers[-1].name, "the outputs are finite but the loss of them is not"
