"""CSVLogger: one row per epoch in a CSV file, rewritten atomically."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tinynet.callbacks.base import Callback, Logs
from tinynet.fileio import atomic_write


class CSVLogger(Callback):
    """Write one row per epoch to a CSV file, as Keras 2's ``CSVLogger``: an ``epoch`` column (0-based, as
    Keras writes it) then every logged figure in sorted order.

    The whole file is rewritten atomically after every epoch, so after a crash it holds every finished epoch and
    never half a row. ``append=True`` continues an existing file (its header decides the columns): rows for epochs
    at or after the first epoch this run logs are replaced, so a run resumed from an earlier checkpoint does not
    leave the interrupted run's later rows behind. Rows use ``'\\n'`` line endings.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        if not isinstance(filename, str | os.PathLike) or not str(filename):
            raise TypeError(f"CSVLogger: filename must be a non-empty path, got {filename!r}")
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"":
            raise ValueError(f"CSVLogger: separator must be one character (not a quote or line break), "
                             f"got {separator!r}")
        self.filename = Path(filename)
        if self.filename.is_dir():
            raise ValueError(f"CSVLogger: filename {self.filename} is a folder; expected a file path")
        self.separator = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self._rows: list[list[str]] = []
        self._first_epoch_logged: int | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.keys = None
        self._rows = []
        self._first_epoch_logged = None
        if self.append and self.filename.exists():
            text = self.filename.read_text(encoding="utf-8")
            if text and not text.endswith("\n"):
                text = text[:text.rfind("\n") + 1]  # a row cut short (written by some other tool): drop it
            rows = list(csv.reader(io.StringIO(text), delimiter=self.separator))
            if rows:
                self.keys = rows[0][1:] if rows[0][:1] == ["epoch"] else None
                if self.keys is None:
                    raise ValueError(f"CSVLogger: cannot append to {self.filename}: its first line is not a header "
                                     f"starting with 'epoch' (separator {self.separator!r})")
                self._rows = rows[1:]

    @staticmethod
    def _cell(value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, Iterable):
            return "[" + ", ".join(map(str, value)) + "]"  # the csv writer quotes it when the separator is ','

        return str(value)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self._first_epoch_logged is None:
            self._first_epoch_logged = epoch
            self._rows = [row for row in self._rows if not _row_epoch_at_least(row, epoch)]
        self._rows.append([str(epoch), *(self._cell(logs[key]) if key in logs else "NA" for key in self.keys)])
        text = io.StringIO()
        writer = csv.writer(text, delimiter=self.separator, lineterminator="\n")
        writer.writerow(["epoch", *self.keys])
        writer.writerows(self._rows)
        with atomic_write(self.filename) as file:
            file.write(text.getvalue().encode("utf-8"))


def _row_epoch_at_least(row: list[str], epoch: int) -> bool:
    try:
        return int(row[0]) >= epoch
    except (ValueError, IndexError):
        return False
