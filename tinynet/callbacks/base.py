"""The callback protocol (:class:`Callback`, :class:`CallbackList`) and the two callbacks ``fit`` always adds:
:class:`History` (returned by ``fit``) and :class:`ProgbarLogger` (the progress bar)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tinynet.progbar import Progbar, epoch_header

Logs = dict[str, Any]


class Callback:
    """Base class: override the hooks you need."""

    #: True for a callback that adds figures to an epoch's logs: ``fit`` calls it before History records them.
    adds_to_epoch_logs = False

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Logs | None = None) -> None: ...
    def on_train_end(self, logs: Logs | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None: ...
    def on_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...


class CallbackList:
    """Calls each hook on every callback in order."""

    def __init__(self, callbacks: list[Callback], model: Any, params: dict[str, Any]) -> None:
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks: expected tinynet.callbacks.Callback instances, "
                                f"got {type(callback).__name__}")
            callback.set_model(model)
            callback.set_params(params)
        self.callbacks = callbacks

    def __getattr__(self, hook: str):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call_all(*args: Any) -> None:
            for callback in self.callbacks:
                getattr(callback, hook)(*args)

        return call_all


class History(Callback):
    """Records each epoch's logs: ``history.history['loss']`` is the per-epoch list, ``history.epoch`` the
    0-based epoch indices (``[1, ..., 9]`` for ``epochs=10, initial_epoch=1``). ``fit`` returns it."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch: list[int] = []
        # None only in a history read back from a model file, for an epoch that did not record that figure.
        self.history: dict[str, list[float | None]] = {}

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class ProgbarLogger(Callback):
    """Prints ``Epoch e/E`` and Keras's progress bar (verbose=1) or one line per epoch (verbose=2).

    The bar shows the running sample-weighted means of ``loss`` and the metrics since the epoch began, and the
    validation figures on the final line, as Keras 2.2 printed them. Training on a generator or a Sequence (no
    ``samples`` in the params), the bar counts steps instead of samples, as Keras's ``count_mode='steps'``.
    """

    def __init__(self, verbose: int = 1, stream: TextIO | None = None) -> None:
        super().__init__()
        self.verbose = verbose
        self.stream = stream
        self.progbar: Progbar | None = None
        self.seen = 0

    def _shown(self, logs: Logs) -> list[tuple[str, float]]:
        return [(key, logs[key]) for key in self.params.get("metrics", []) if key in logs]

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        stream = self.stream or sys.stdout
        stream.write(epoch_header(epoch, self.params["epochs"]) + "\n")
        stream.flush()
        self.seen = 0
        self._target = self.params["steps"] if self._counts_steps() else self.params["samples"]
        self.progbar = Progbar(target=self._target, verbose=self.verbose, stream=stream)

    def _counts_steps(self) -> bool:
        return self.params.get("samples") is None

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        self.seen += 1 if self._counts_steps() else logs.get("size", 0)
        self._last_batch = self._shown(logs)
        if self.seen < self._target:
            self._progbar("on_batch_end").update(self.seen, self._last_batch)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        # The last batch's figures go in with the final update (so the averages include it), then validation's.
        validation = [(key, value) for key, value in self._shown(logs or {}) if key.startswith("val_")]
        self._progbar("on_epoch_end").update(self.seen, getattr(self, "_last_batch", []) + validation)

    def _progbar(self, event: str) -> Progbar:
        if self.progbar is None:
            raise RuntimeError(f"ProgbarLogger.{event}: called before on_epoch_begin, which makes the progress bar")
        return self.progbar
