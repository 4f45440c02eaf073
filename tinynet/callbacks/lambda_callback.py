"""LambdaCallback: a callback made of plain functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinynet.callbacks.base import Callback, Logs


class LambdaCallback(Callback):
    """A callback from plain functions, as Keras 2's ``LambdaCallback``: ``on_epoch_begin(epoch, logs)``,
    ``on_epoch_end(epoch, logs)``, ``on_batch_begin(batch, logs)``, ``on_batch_end(batch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``, each called with positional arguments; a hook not given
    does nothing.

    Example: ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs['loss']))``.
    """

    def __init__(self, on_epoch_begin: Callable | None = None, on_epoch_end: Callable | None = None,
                 on_batch_begin: Callable | None = None, on_batch_end: Callable | None = None,
                 on_train_begin: Callable | None = None, on_train_end: Callable | None = None) -> None:
        super().__init__()
        given = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_batch_begin": on_batch_begin,
                 "on_batch_end": on_batch_end, "on_train_begin": on_train_begin, "on_train_end": on_train_end}
        for hook, function in given.items():
            if function is not None and not callable(function):
                raise TypeError(f"LambdaCallback: {hook} must be a function, got {function!r}")
        self._functions = given

    # Keras's CallbackList always passes ``logs`` (``{}`` when there are none); ``fit`` may leave it out.
    def _call(self, hook: str, *args: Any) -> None:
        function = self._functions[hook]
        if function is not None:
            function(*args)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._call("on_train_begin", logs if logs is not None else {})

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._call("on_train_end", logs if logs is not None else {})

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._call("on_epoch_begin", epoch, logs if logs is not None else {})

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._call("on_epoch_end", epoch, logs if logs is not None else {})

    def on_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        self._call("on_batch_begin", batch, logs if logs is not None else {})

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._call("on_batch_end", batch, logs if logs is not None else {})
