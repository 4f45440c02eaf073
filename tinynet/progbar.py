"""The text progress bar that ``fit`` prints, reproducing Keras 2.2.4's ``keras.utils.generic_utils.Progbar``.

What it looks like (one epoch of the MNIST tutorial, 60000 samples counted one by one)::

    Epoch 3/10
    18976/60000 [========>.....................] - ETA: 10s - loss: 0.3811 - acc: 0.8812
    ...
    60000/60000 [==============================] - 15s 246us/step - loss: 0.3529 - acc: 0.8903 - val_loss: ...

(on screen that last line goes on, as one line, with ``val_loss: 0.2036 - val_acc: 0.9416``).

Anatomy of a line (``verbose=1``)
---------------------------------
* The count ``{current}/{target}``, ``current`` right-aligned to as many digits as ``target`` has.
* The bar: ``width`` (30) characters between brackets. With ``filled = int(width * current / target)`` it is
  ``filled - 1`` times ``=``, then ``>`` while running or ``=`` once finished, then ``width - filled`` dots
  (no arrow at all while ``filled`` is 0).
* While running, `` - ETA: ...`` with ``eta = (elapsed / current) * (target - current)``, written
  ``H:MM:SS`` above an hour, ``M:SS`` above a minute, else ``Ns`` (every field truncated, not rounded).
* Once finished, `` - {elapsed:.0f}s`` and the time per counted unit in s, ms or us per step. Keras says
  "step" even when it counts samples, so ``246us/step`` is 246 microseconds per *sample* in the tutorial.
* Then `` - name: value`` for every name ever passed, in first-seen order.

How values are averaged
-----------------------
An update to ``current`` stands for the ``current - previous_current`` units processed since the previous
update, so each value is weighted by that count::

    shown(name) = sum_i value_i * (current_i - current_{i-1}) / max(1, sum_i (current_i - current_{i-1}))

With batches of 32, 32 and a last partial batch of 16 samples this is the sample-weighted epoch mean, which is
what Keras reports. Names in ``stateful_metrics`` are not averaged: the last value given is shown (with the
same numeric formatting). A value prints as ``%.4f``, or ``%.4e`` when ``|value| <= 1e-3``.

Where it goes
-------------
On a terminal (``stream.isatty()``) or inside Jupyter (``'ipykernel' in sys.modules``) the display is
*dynamic*: each update moves back over the previous line (``\\b`` times its length, then ``\\r``) and rewrites
it, padding with spaces when the new line is shorter; at most one update is shown every ``interval`` seconds,
and the last one (``current >= target``) always shows and ends the line with a newline. Anywhere else (a file,
a pipe, a CI log) nothing can be rewritten, so only the finished line is written, once per pass, exactly as it
reads on a terminal at the end, with no empty line or trailing spaces around it (without a target, where there
is no end, each shown update gets a line of its own). ``verbose=2`` prints nothing while running and one line at
the end, `` - {elapsed}s - loss: ... - acc: ...``; ``verbose=0`` prints nothing.

Who prints what (Keras 2.2.4's ``fit``, which ``tinynet.models`` follows)
-------------------------------------------------------------------------
* ``fit`` prints ``Train on 60000 samples, validate on 10000 samples`` once, only when ``verbose`` is
  non-zero and there is validation data (:func:`validation_banner`).
* Keras's ``ProgbarLogger`` callback prints ``Epoch 3/10`` at the start of every epoch for ``verbose`` 1 and
  2 (:func:`epoch_header`), then makes a fresh ``Progbar(target=num_samples, verbose=verbose)``.
* After each batch it calls ``progbar.update(samples_seen, [('loss', batch_loss), ('acc', batch_acc)])``,
  *except after the last batch*, which it leaves to the end of the epoch.
* At the end of the epoch it calls ``progbar.update(num_samples, values)`` once, where ``values`` is the last
  batch's list followed by the epoch logs in ``params['metrics']`` order: ``loss``, ``acc`` (already epoch
  means, from ``BaseLogger``), then ``val_loss``, ``val_acc``. So ``loss`` arrives twice, both weighted by the
  last batch's size ``b``; the running sum already holds ``N * mean - b * last``, and the shown figure is
  ``(N * mean - b * last + b * last + b * mean) / (N + b)``, exactly the epoch mean. A caller prints the same
  line by passing the last batch's values followed by the ``val_*`` values, which show exactly as given
  because they are new names.
* This module only formats and writes: it computes no metric and prints no header on its own.

Deliberate deviations from Keras 2.2.4 (none changes what a terminal shows)
---------------------------------------------------------------------------
* ``stream`` (default: ``sys.stdout`` as it is at construction) and ``clock`` (default ``time.time``) are
  injectable; Keras always wrote to ``sys.stdout`` and read ``time.time()``. The terminal check asks
  ``stream``, not ``sys.stdout``.
* ``update(..., force=True)`` skips the throttle, as Keras 2.1 allowed; 2.2.4 dropped the argument.
* The first update always shows. Keras started its "last shown" time at 0, so ``time.time() - 0`` was never
  under the interval; here "never shown" is explicit, so a fake clock starting at 0 behaves the same.
* Each update is one ``write`` call instead of three or four; the characters are the same.
* Bad arguments raise ``ValueError``/``TypeError`` (Keras failed later, e.g. ``log10(0)`` for ``target=0``).
* What a log file holds: Keras 2.2.4 (and every later Keras) writes each shown update of a non-dynamic display
  on a new line (``"\\n" + line``, padded like a terminal line), at most one per ``interval``: 3,814 lines
  (336 KB) for one tutorial run in a CI log, nearly all of them ETAs nobody reads afterwards. tinynet writes
  only each pass's finished line there, the line a terminal is left showing; ``force=True`` still writes a
  running line on demand.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any, TextIO

import numpy as np

__all__ = [
    "Progbar",
    "epoch_header",
    "validation_banner",
    "summary_line",
    "format_metric",
    "format_eta",
    "format_step_time",
]

# Keras switches from %.4f to %.4e at this magnitude so that tiny losses do not print as 0.0000.
_SCIENTIFIC_AT_OR_BELOW = 1e-3


def format_metric(value: float) -> str:
    """Format one shown value as the ``verbose=1`` line does.

    ``%.4f`` when ``|value| > 1e-3``, else ``%.4e``: ``0.3529``, ``-0.5000``, ``1.0000e-04``, ``0.0000e+00``.
    """
    if abs(value) > _SCIENTIFIC_AT_OR_BELOW:
        return f"{value:.4f}"
    return f"{value:.4e}"


def _format_metric_semi_verbose(value: float) -> str:
    """Format one shown value as the ``verbose=2`` line does.

    Keras 2.2.4's ``verbose=2`` branch tests ``avg > 1e-3`` without ``abs``, so a negative value prints in
    ``%.4e`` there (``-5.0000e-01``) while ``verbose=1`` shows ``-0.5000``. Reproduced on purpose.
    """
    if value > _SCIENTIFIC_AT_OR_BELOW:
        return f"{value:.4f}"
    return f"{value:.4e}"


def format_eta(seconds: float) -> str:
    """Format the estimated time left: ``H:MM:SS`` above 3600 s, ``M:SS`` above 60 s, else ``Ns``.

    Each field is truncated toward zero, as Keras's ``%d`` of a float is: 3599.9 s is ``59:59``, exactly
    60 s is ``60s``, 60.5 s is ``1:00`` and 3661 s is ``1:01:01``.
    """
    if seconds > 3600:
        return f"{int(seconds // 3600)}:{int((seconds % 3600) // 60):02d}:{int(seconds % 60):02d}"
    if seconds > 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"


def format_step_time(seconds_per_step: float) -> str:
    """Format the time per counted unit: whole seconds, milliseconds or microseconds, then ``/step``.

    Seconds when at least 1 s, milliseconds when at least 1 ms, else microseconds, each rounded with
    ``%.0f``: ``2s/step``, ``50ms/step``, ``246us/step``.
    """
    if seconds_per_step >= 1:
        return f"{seconds_per_step:.0f}s/step"
    if seconds_per_step >= 1e-3:
        return f"{seconds_per_step * 1e3:.0f}ms/step"
    return f"{seconds_per_step * 1e6:.0f}us/step"


def epoch_header(epoch_index: int, epochs: int) -> str:
    """The line printed before an epoch's bar: ``Epoch {epoch_index + 1}/{epochs}``, ``epoch_index`` 0-based.

    Printed by the caller (``fit``'s :class:`tinynet.callbacks.ProgbarLogger`) for ``verbose`` 1 and 2, never by
    :class:`Progbar`. With ``initial_epoch=1, epochs=10`` the first header is ``Epoch 2/10``.
    """
    _require_int("epoch_index", epoch_index, minimum=0)
    _require_int("epochs", epochs, minimum=1)
    return f"Epoch {epoch_index + 1}/{epochs}"


def validation_banner(num_train_samples: int, num_validation_samples: int) -> str:
    """The line ``fit`` prints once, before the first epoch, when ``verbose`` is non-zero and it validates.

    ``Train on 60000 samples, validate on 10000 samples``. Keras 2.2.4 prints no such line without
    validation data.
    """
    _require_int("num_train_samples", num_train_samples, minimum=0)
    _require_int("num_validation_samples", num_validation_samples, minimum=0)
    return f"Train on {num_train_samples} samples, validate on {num_validation_samples} samples"


def summary_line(elapsed_seconds: float, values: Mapping[str, float] | Iterable[tuple[str, float]]) -> str:
    """The single line, without its newline, that ``verbose=2`` prints at the end of an epoch.

    `` - 15s - loss: 0.3529 - acc: 0.8903 - val_loss: 0.2036 - val_acc: 0.9416``: the elapsed seconds
    rounded with ``%.0f`` (no per-step time; Keras 2.2.4 shows that only with ``verbose=1``), then each value
    as given. :class:`Progbar` with ``verbose=2`` writes exactly this with its own averages, so a caller that
    already holds the epoch means can print the identical line without a bar.
    """
    pairs = values.items() if isinstance(values, Mapping) else values
    text = f" - {elapsed_seconds:.0f}s"
    for name, value in pairs:
        text += f" - {name}: {_format_metric_semi_verbose(float(np.mean(value)))}"
    return text


def _require_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _require_seconds(name: str, value: object) -> float:
    # ``value: object``: a caller may pass anything, and numbers.Real (which NumPy's floats join) is no static type.
    if isinstance(value, bool) or not isinstance(value, Real) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _stream_is_dynamic(stream: TextIO) -> bool:
    """True when the line can be rewritten in place: a terminal, or any stream inside a Jupyter kernel.

    Keras looks for ``'ipykernel'`` because Jupyter's output area honours ``\\r`` although its streams are
    not terminals.
    """
    isatty = getattr(stream, "isatty", None)
    try:
        is_terminal = bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed file answers isatty() with ValueError; it is certainly not a terminal
        is_terminal = False
    return is_terminal or "ipykernel" in sys.modules


class Progbar:
    """Keras 2.2.4's progress bar: a count, a 30-character bar, the ETA or time taken, and averaged values.

    Args:
        target: the number of units (samples or batches) in one pass, or ``None`` when unknown; the line then
            reads ``{current:7d}/Unknown`` with the elapsed time, and is never throttled or ended.
        width: characters between the brackets.
        verbose: 0 silent, 1 the live bar, 2 a single line when ``current`` reaches ``target``.
        interval: least number of seconds between two shown updates before the end, in both display modes.
        stateful_metrics: names whose latest value is shown as given instead of being averaged.
        stream: where to write; defaults to ``sys.stdout`` as it is now (so pytest's capture sees it).
        clock: returns seconds as a float; the start time is read once, here. Inject a fake one in tests.

    The module docstring gives the exact layout and says who prints the ``Epoch e/E`` headers.
    """

    def __init__(
        self,
        target: int | None,
        width: int = 30,
        verbose: int = 1,
        interval: float = 0.05,
        stateful_metrics: Iterable[str] | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if target is not None:
            # Keras sizes the count as floor(log10(target)) + 1 digits, which has no answer for 0.
            target = _require_int("target", target, minimum=1)
        self.target = target
        self.width = _require_int("width", width, minimum=1)
        if isinstance(verbose, bool) or verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        self.verbose = int(verbose)
        self.interval = _require_seconds("interval", interval)
        if isinstance(stateful_metrics, str):
            raise TypeError(
                "stateful_metrics must be an iterable of metric names, "
                f"got the single string {stateful_metrics!r}"
            )
        self.stateful_metrics = frozenset(stateful_metrics or ())
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {type(clock).__name__}")
        self.stream = sys.stdout if stream is None else stream
        self._clock = clock
        self._dynamic_display = _stream_is_dynamic(self.stream)

        # name -> [weighted sum of values, sum of weights], in first-seen order (Keras used an OrderedDict).
        # A stateful metric is stored as [value, 1] so that the same averaging shows it unchanged.
        self._values: dict[str, list] = {}
        self._seen_so_far = 0
        self._start = float(clock())
        self._last_shown: float | None = None
        self._previous_line_width = 0

    @property
    def seen_so_far(self) -> int:
        """The ``current`` of the latest update, which :meth:`add` counts from."""
        return self._seen_so_far

    def update(
        self, current: int, values: Sequence[tuple[str, float]] | None = None, force: bool = False
    ) -> None:
        """Record progress up to ``current`` units and redraw when due.

        Args:
            current: units processed so far in this pass (not since the previous call).
            values: ``(name, value)`` pairs measured over the units since the previous update; each is
                weighted by ``current - previous current`` in the running mean, unless ``name`` is stateful.
            force: show this update even if fewer than ``interval`` seconds passed since the last one shown.
        """
        current = _require_int("current", current, minimum=0)
        units_since_previous = current - self._seen_so_far
        for pair in values or ():
            name, value = _unpack_pair(pair)
            if name in self.stateful_metrics:
                self._values[name] = [value, 1]
            elif name in self._values:
                self._values[name][0] += value * units_since_previous
                self._values[name][1] += units_since_previous
            else:
                self._values[name] = [value * units_since_previous, units_since_previous]
        self._seen_so_far = current

        now = float(self._clock())
        finished = self.target is not None and current >= self.target
        if self.verbose == 1:
            if not self._dynamic_display and self.target is not None and not finished and not force:
                # A log file cannot rewrite a line, so a running line would stay in it for good: wait for the
                # finished one (the values above still count toward its averages).
                return
            too_soon = self._last_shown is not None and now - self._last_shown < self.interval
            if too_soon and not force and self.target is not None and not finished:
                # Keras returns before remembering the time: the interval runs from the last *shown* update,
                # while the values above still count toward the averages.
                return
            self._write_bar_line(current, now, finished)
        elif self.verbose == 2 and (self.target is None or finished):
            self._write(summary_line(now - self._start, self._averages()) + "\n")
        self._last_shown = now

    def add(self, n: int, values: Sequence[tuple[str, float]] | None = None) -> None:
        """Advance by ``n`` units: ``update(seen_so_far + n, values)``."""
        n = _require_int("n", n, minimum=0)
        self.update(self._seen_so_far + n, values)

    def _write_bar_line(self, current: int, now: float, finished: bool) -> None:
        previous_width = self._previous_line_width
        # Dynamic: backspaces over the old line, then a carriage return (Keras sends both; \b also helps
        # consoles that ignore \r). Otherwise the line stands on its own: a running line (forced, or without a
        # target) ends with a newline so the next one starts fresh; no empty line is left under the header.
        prefix = "\b" * previous_width + "\r" if self._dynamic_display else ""

        bar = self._count_and_bar(current)
        elapsed = now - self._start
        seconds_per_unit = elapsed / current if current else 0.0
        if self.target is not None and not finished:
            info = " - ETA: " + format_eta(seconds_per_unit * (self.target - current))
        else:
            info = f" - {elapsed:.0f}s {format_step_time(seconds_per_unit)}"
        for name, average in self._averages():
            info += f" - {name}: {format_metric(average)}"

        line_width = len(bar) + len(info)
        self._previous_line_width = line_width
        # Spaces cover the tail of a longer previous line on a terminal (Keras also pads in a log file, where the
        # spaces only trail the line).
        padding = " " * max(0, previous_width - line_width) if self._dynamic_display else ""
        ending = "\n" if finished or not self._dynamic_display else ""
        self._write(prefix + bar + info + padding + ending)

    def _count_and_bar(self, current: int) -> str:
        if self.target is None:
            return f"{current:7d}/Unknown"
        digits = len(str(self.target))  # floor(log10(target)) + 1, without floating point
        filled = int(self.width * (float(current) / self.target))
        bar = f"{current:{digits}d}/{self.target} ["
        if filled > 0:
            bar += "=" * (filled - 1) + (">" if current < self.target else "=")
        bar += "." * (self.width - filled) + "]"
        return bar

    def _averages(self) -> list[tuple[str, float]]:
        # np.mean lets a value be a NumPy array (e.g. a shape-(1,) metric), as Keras allowed.
        return [
            (name, float(np.mean(weighted_sum / max(1, weight))))
            for name, (weighted_sum, weight) in self._values.items()
        ]

    def _write(self, text: str) -> None:
        self.stream.write(text)
        flush = getattr(self.stream, "flush", None)
        if callable(flush):
            flush()


def _unpack_pair(pair: Any) -> tuple[str, float | np.ndarray]:
    # ``pair`` is whatever the caller put in ``values``: any two-item iterable is accepted, the rest refused here.
    try:
        name, value = pair
    except (TypeError, ValueError):
        raise TypeError(f"values must hold (name, value) pairs, got {pair!r}") from None
    if not isinstance(name, str):
        raise TypeError(f"a value's name must be a str, got {type(name).__name__} {name!r}")
    return name, value
