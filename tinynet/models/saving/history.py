"""The training history in a model file: every epoch recorded so far, written and read back with its checks."""

from __future__ import annotations

from typing import Any

from tinynet.callbacks import History
from tinynet.models.saving.file_format import FormatError, typed

#: More epochs than any run does; a larger ``epochs_done`` in a file is an attack or an accident.
MAX_EPOCHS = 2**31 - 1


def merged_history(model: Any) -> tuple[list[int], dict[str, list[float | None]]]:
    """Every epoch recorded so far: a loaded model's saved history, continued by the last ``fit``'s.

    Epochs of the saved history at or after the first epoch of the last fit are replaced by the new ones.
    """
    epochs: list[int] = []
    history: dict[str, list[float | None]] = {}  # None: the metric was not recorded in that epoch
    restored = getattr(model, "_restored_history", None)
    current = getattr(model, "history", None)
    sources = [source for source in (restored, current) if source is not None]
    if len(sources) == 2 and sources[0] is sources[1]:
        sources = sources[:1]
    for source in sources:
        if not source.epoch:
            continue
        first = source.epoch[0]
        keep = [row for row, epoch in enumerate(epochs) if epoch < first]
        epochs = [epochs[row] for row in keep]
        history = {key: [values[row] for row in keep] for key, values in history.items()}
        for row, epoch in enumerate(source.epoch):
            epochs.append(int(epoch))
            for key in [*history, *(key for key in source.history if key not in history)]:
                column = source.history.get(key)
                history.setdefault(key, [None] * (len(epochs) - 1))
                history[key].append(float(column[row]) if column is not None and row < len(column) else None)
    return epochs, history


def history_document(model: Any) -> dict[str, Any]:
    epochs, history = merged_history(model)
    return {"epoch": epochs, "history": history}


def epoch_number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EPOCHS:
        raise FormatError(f"{what} is {value!r:.80}; expected an epoch count, an int from 0 to {MAX_EPOCHS}")
    return value


def restore_history(model: Any, history_document: Any) -> None:
    """The saved History: epochs are epoch numbers, and each metric a list of numbers (or None), one per epoch."""
    history_document = typed(history_document, dict, "history")
    epochs = [epoch_number(epoch, "an epoch of the history")
              for epoch in typed(history_document["epoch"], list, "history.epoch")]
    columns = {}
    for key, values in typed(history_document["history"], dict, "history.history").items():
        values = typed(values, list, f"history of {key!r}")
        if len(values) != len(epochs) or not all(
                value is None or (isinstance(value, int | float) and not isinstance(value, bool)) for value in values):
            raise FormatError(f"the history of {key!r} must hold one number (or null) per epoch ({len(epochs)})")
        columns[key] = list(values)
    history = History()
    history.epoch = epochs
    history.history = columns
    history.set_model(model)
    model.history = history
    model._restored_history = history
