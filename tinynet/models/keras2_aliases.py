"""Keras 2.2.4's older spellings, kept so its scripts run: ``fit_generator``, ``evaluate_generator``,
``predict_generator`` (thin aliases of ``fit``/``evaluate``/``predict``, which take a Sequence or a generator
themselves) and ``predict_classes``/``predict_proba`` (which Keras 2's Sequential had and 2.6 removed).

The queue arguments (``max_queue_size``, ``workers``, ``use_multiprocessing``) are accepted and ignored: tinynet
reads the batches in the training thread, in order.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class _Model(Protocol):
    """What the aliases call on the model they are mixed into: Sequential's own ``fit``, ``evaluate``, ``predict``
    (their full signatures live there; the aliases pass keywords through)."""

    def fit(self, *args: Any, **kwargs: Any) -> Any: ...

    def evaluate(self, *args: Any, **kwargs: Any) -> Any: ...

    def predict(self, *args: Any, **kwargs: Any) -> np.ndarray: ...


class Keras2Aliases:
    """Mixed into :class:`tinynet.models.Sequential`."""

    def fit_generator(self: _Model, generator: Any, steps_per_epoch: int | None = None, epochs: int = 1,
                      verbose: int = 1, callbacks: list | None = None, validation_data: Any = None,
                      validation_steps: int | None = None, class_weight: dict | None = None,
                      max_queue_size: int = 10, workers: int = 1,
                      use_multiprocessing: bool = False, shuffle: bool = True, initial_epoch: int = 0) -> Any:
        """``fit`` on a Sequence or generator of ``(x, y[, sample_weight])`` batches, as Keras 2.2.4 spells it."""
        return self.fit(generator, epochs=epochs, verbose=verbose, callbacks=callbacks,
                        validation_data=validation_data, shuffle=shuffle, class_weight=class_weight,
                        initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                        validation_steps=validation_steps)

    def evaluate_generator(self: _Model, generator: Any, steps: int | None = None, max_queue_size: int = 10,
                           workers: int = 1, use_multiprocessing: bool = False, verbose: int = 0) -> Any:
        """``evaluate`` on a Sequence or generator (Keras 2.2.4's default here is ``verbose=0``)."""
        return self.evaluate(generator, steps=steps, verbose=verbose)

    def predict_generator(self: _Model, generator: Any, steps: int | None = None, max_queue_size: int = 10,
                          workers: int = 1, use_multiprocessing: bool = False, verbose: int = 0) -> np.ndarray:
        """``predict`` on a Sequence or generator of ``x`` (or ``(x, ...)``) batches."""
        return self.predict(generator, steps=steps, verbose=verbose)

    def predict_proba(self: _Model, x: Any, batch_size: int = 32, verbose: int = 0) -> np.ndarray:
        """The outputs, which are probabilities after a softmax or sigmoid (Keras 2 only warned otherwise)."""
        return self.predict(x, batch_size=batch_size, verbose=verbose)

    def predict_classes(self: _Model, x: Any, batch_size: int = 32, verbose: int = 0) -> np.ndarray:
        """Class indices: the argmax of each output row, or, for a single output, ``1`` where it exceeds 0.5
        (an int32 ``(samples, 1)`` array, as Keras 2 returns for a sigmoid)."""
        probabilities = self.predict(x, batch_size=batch_size, verbose=verbose)
        if probabilities.shape[-1] > 1:
            return probabilities.argmax(axis=-1)
        return (probabilities > 0.5).astype("int32")
