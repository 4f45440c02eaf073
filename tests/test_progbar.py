"""Tests for tinynet.progbar: exact Keras 2.2.4 output for known update sequences, under a fake clock.

Every expected string below was worked out by hand from the Keras rules (bar of int(30 * current / target)
cells, ETA = elapsed / current * remaining, %.0f seconds, s/ms/us per step, sample-weighted means), not by
running the code under test.
"""

from __future__ import annotations

import io
import re
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.progbar import (
    Progbar,
    epoch_header,
    format_eta,
    format_metric,
    format_step_time,
    summary_line,
    validation_banner,
)


class FakeClock:
    """A clock the test moves by hand; Progbar reads it once at construction and once per update."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TerminalStream(io.StringIO):
    """A StringIO that says it is a terminal, to exercise the dynamic (rewrite-in-place) display."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _not_in_jupyter(monkeypatch):
    # Inside a Jupyter kernel every stream counts as dynamic; the test process must not look like one.
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)


def render_terminal(text: str) -> list[str]:
    """What a terminal would show for ``text``: \\r returns to column 0, \\b moves one column left."""
    lines = [[]]
    column = 0
    for char in text:
        line = lines[-1]
        if char == "\n":
            lines.append([])
            column = 0
        elif char == "\r":
            column = 0
        elif char == "\b":
            column = max(0, column - 1)
        else:
            if column < len(line):
                line[column] = char
            else:
                line.append(char)
            column += 1
    return ["".join(line) for line in lines]


def lines_shown(text: str) -> list[str]:
    """Each line a terminal display wrote, in order: the text after every run of backspaces and a carriage return."""
    return re.split("\b*\r", text)[1:]


def _batches_of_32_32_16(stream) -> None:
    clock = FakeClock(0.0)
    bar = Progbar(80, stream=stream, clock=clock)
    clock.now = 1.0
    bar.update(32, [("loss", 0.5), ("acc", 0.75)])
    clock.now = 2.0
    bar.update(64, [("loss", 0.3), ("acc", 0.85)])
    clock.now = 4.0
    bar.update(80, [("loss", 0.2), ("acc", 1.0)])


def test_batches_of_32_32_16_show_eta_then_sample_weighted_means():
    stream = TerminalStream()
    _batches_of_32_32_16(stream)
    assert lines_shown(stream.getvalue()) == [
        # 32/80 fills int(12.0) cells; ETA = 1 s / 32 * 48 = 1.5 s, printed truncated.
        "32/80 [===========>..................] - ETA: 1s - loss: 0.5000 - acc: 0.7500",
        # 64/80 fills 24 cells; ETA = 2 / 64 * 16 = 0.5 s; loss (0.5*32 + 0.3*32) / 64 = 0.4.
        "64/80 [=======================>......] - ETA: 0s - loss: 0.4000 - acc: 0.8000",
        # loss (16 + 9.6 + 0.2*16) / 80 = 0.36, acc (24 + 27.2 + 16) / 80 = 0.84; 4 s / 80 = 50 ms per sample.
        "80/80 [==============================] - 4s 50ms/step - loss: 0.3600 - acc: 0.8400\n",
    ]


# ---- the non-terminal (log file) display -----------------------------------------------------------------


def test_a_log_file_gets_only_the_finished_line_the_terminal_ends_with():
    # A CI log cannot rewrite a line: each running line would stay in it (3,814 lines for one tutorial run).
    log, terminal = io.StringIO(), TerminalStream()
    _batches_of_32_32_16(log)
    _batches_of_32_32_16(terminal)
    assert log.getvalue() == "80/80 [==============================] - 4s 50ms/step - loss: 0.3600 - acc: 0.8400\n"
    assert log.getvalue() == lines_shown(terminal.getvalue())[-1]


def test_a_log_file_gets_one_line_per_pass_however_many_updates():
    clock, stream = FakeClock(0.0), io.StringIO()
    for epoch in range(3):
        bar = Progbar(60000, stream=stream, clock=clock)
        for seen in range(32, 60000, 32):
            clock.now += 0.1  # every update is due by the clock
            bar.update(seen, [("loss", 1.0 / (epoch + 1))])
        bar.update(60000, [("loss", 1.0 / (epoch + 1))])
    lines = stream.getvalue().split("\n")
    assert len(lines) == 4 and lines[-1] == ""
    assert all(line.startswith("60000/60000 [==============================] - ") for line in lines[:3])
    assert [line.rsplit("loss: ", 1)[1] for line in lines[:3]] == ["1.0000", "0.5000", "0.3333"]


def test_a_closed_or_tty_less_stream_is_not_dynamic():
    class NoIsatty:
        def __init__(self):
            self.written = []

        def write(self, text):
            self.written.append(text)

    stream = NoIsatty()
    bar = Progbar(10, stream=stream, clock=FakeClock(0.0))
    bar.update(5)
    assert stream.written == []
    bar.update(10)
    assert stream.written == ["10/10 [==============================] - 0s 0us/step\n"]


def test_the_tutorial_epoch_end_line_with_seconds_microseconds_and_validation_values():
    clock, stream = FakeClock(100.0), io.StringIO()
    bar = Progbar(60000, stream=stream, clock=clock)

    clock.now = 107.38
    bar.add(30000, [("loss", 0.3529), ("acc", 0.8903)])
    clock.now = 114.76  # 14.76 s in all: "15s", and 14.76 / 60000 = 246 us per sample
    bar.add(30000, [("loss", 0.3529), ("acc", 0.8903), ("val_loss", 0.2036), ("val_acc", 0.9416)])

    assert stream.getvalue() == (
        "60000/60000 [==============================] - 15s 246us/step"
        " - loss: 0.3529 - acc: 0.8903 - val_loss: 0.2036 - val_acc: 0.9416\n"
    )


def test_eta_in_hours_and_minutes_and_a_shorter_line_padded_with_spaces():
    clock, stream = FakeClock(0.0), TerminalStream()
    bar = Progbar(10000, stream=stream, clock=clock)

    clock.now = 1.0
    bar.update(1)  # ETA 1 s * 9999 = 2:46:39
    clock.now = 2.0
    bar.update(200)  # ETA 2 / 200 * 9800 = 98 s = 1:38, three characters shorter

    assert lines_shown(stream.getvalue()) == [
        "    1/10000 [..............................] - ETA: 2:46:39",
        "  200/10000 [..............................] - ETA: 1:38   ",
    ]


def test_small_values_switch_to_scientific_notation_on_the_line():
    clock, stream = FakeClock(0.0), io.StringIO()
    bar = Progbar(10, stream=stream, clock=clock)
    clock.now = 1.0
    bar.update(10, [("loss", 5e-5), ("edge", 1e-3), ("acc", 0.0015)])
    assert stream.getvalue() == (
        "10/10 [==============================] - 1s 100ms/step"
        " - loss: 5.0000e-05 - edge: 1.0000e-03 - acc: 0.0015\n"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.3529, "0.3529"),
        (-0.5, "-0.5000"),
        (0.0011, "0.0011"),
        (1e-3, "1.0000e-03"),  # the boundary itself is scientific: Keras tests |value| > 1e-3
        (1e-4, "1.0000e-04"),
        (-1e-4, "-1.0000e-04"),
        (0.0, "0.0000e+00"),
        (12.3456789, "12.3457"),
    ],
)
def test_format_metric(value, expected):
    assert format_metric(value) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0, "0s"),
        (59.9, "59s"),
        (60.0, "60s"),  # not above a minute yet
        (60.5, "1:00"),
        (99.0, "1:39"),
        (3599.9, "59:59"),
        (3600.0, "60:00"),  # not above an hour yet
        (3661.0, "1:01:01"),
        (9999.0, "2:46:39"),
        (90061.0, "25:01:01"),
    ],
)
def test_format_eta(seconds, expected):
    assert format_eta(seconds) == expected


@pytest.mark.parametrize(
    ("seconds_per_step", "expected"),
    [
        (2.4, "2s/step"),
        (1.0, "1s/step"),
        (0.05, "50ms/step"),
        (1e-3, "1ms/step"),
        (0.000246, "246us/step"),
        (0.0009996, "1000us/step"),  # under 1 ms, so microseconds, rounded up to 1000
        (0.0, "0us/step"),
    ],
)
def test_format_step_time(seconds_per_step, expected):
    assert format_step_time(seconds_per_step) == expected


def test_updates_closer_than_the_interval_are_not_shown_but_still_counted():
    clock, stream = FakeClock(0.0), TerminalStream()
    bar = Progbar(100, stream=stream, clock=clock)
    for now, current, loss in [
        (0.01, 10, 1.0),  # first update: always shown
        (0.05, 20, 1.0),  # 0.04 s after the last shown one: hidden
        (0.07, 30, 1.0),  # 0.06 s after the last *shown* (only 0.02 after the hidden one): shown
        (0.10, 40, 1.0),  # 0.03 s: hidden
        (0.11, 100, 0.0),  # the end always shows, however soon
    ]:
        clock.now = now
        bar.update(current, [("loss", loss)])

    lines = lines_shown(stream.getvalue())
    assert [line.split("/")[0].strip() for line in lines] == ["10", "30", "100"]
    assert lines[-1].endswith("\n")  # the final line ended with a newline
    # The hidden updates still count: (10 + 10 + 10 + 10) * 1.0 + 60 * 0.0 over 100 samples.
    assert lines[-1].endswith(" - loss: 0.4000\n")


def test_force_shows_an_update_inside_the_interval():
    clock, stream = FakeClock(0.0), TerminalStream()
    bar = Progbar(100, stream=stream, clock=clock)
    clock.now = 1.0
    bar.update(10)
    clock.now = 1.01
    bar.update(20)
    bar.update(30, force=True)
    assert [line[:8] for line in lines_shown(stream.getvalue())] == [" 10/100 ", " 30/100 "]


def test_force_writes_a_running_line_to_a_log_file_on_a_line_of_its_own():
    clock, stream = FakeClock(0.0), io.StringIO()
    bar = Progbar(100, stream=stream, clock=clock)
    clock.now = 1.0
    bar.update(10)
    bar.update(30, force=True)
    assert stream.getvalue() == " 30/100 [========>.....................] - ETA: 2s\n"
    clock.now = 2.0
    bar.update(100)
    assert stream.getvalue().split("\n")[1:] == ["100/100 [==============================] - 2s 20ms/step", ""]


def test_a_zero_interval_shows_every_update():
    clock, stream = FakeClock(0.0), TerminalStream()
    bar = Progbar(5, interval=0.0, stream=stream, clock=clock)
    for current in range(1, 6):
        bar.update(current)
    assert len(lines_shown(stream.getvalue())) == 5


# ---- the terminal (dynamic) display -------------------------------------------------------------------


def test_terminal_rewrites_the_line_in_place_and_pads_a_shorter_one():
    clock, stream = FakeClock(0.0), TerminalStream()
    bar = Progbar(200, stream=stream, clock=clock)

    clock.now = 1.0
    bar.update(2)
    first = "  2/200 [..............................] - ETA: 1:39"  # 52 characters
    assert stream.getvalue() == "\r" + first

    clock.now = 2.0
    bar.update(100)
    second = "100/200 [==============>...............] - ETA: 2s"  # 50 characters, so 2 spaces of padding
    assert stream.getvalue() == "\r" + first + "\b" * 52 + "\r" + second + "  "
    assert render_terminal(stream.getvalue()) == [second + "  "]

    clock.now = 4.0
    bar.update(200)
    final = "200/200 [==============================] - 4s 20ms/step"
    assert stream.getvalue().endswith("\b" * 50 + "\r" + final + "\n")
    assert render_terminal(stream.getvalue()) == [final, ""]


def test_terminal_mode_is_also_throttled():
    clock, stream = FakeClock(0.0), TerminalStream()
    bar = Progbar(100, stream=stream, clock=clock)
    clock.now = 1.0
    bar.update(10)
    clock.now = 1.01
    bar.update(20)
    assert stream.getvalue().count("\r") == 1


def test_inside_jupyter_a_plain_stream_is_dynamic(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    clock, stream = FakeClock(0.0), io.StringIO()
    bar = Progbar(10, stream=stream, clock=clock)
    clock.now = 1.0
    bar.update(10)
    assert stream.getvalue() == "\r10/10 [==============================] - 1s 100ms/step\n"


def test_stream_defaults_to_stdout_at_construction(capsys):
    bar = Progbar(4, verbose=2, clock=FakeClock(0.0))
    bar.update(4, [("loss", 0.25)])
    assert capsys.readouterr().out == " - 0s - loss: 0.2500\n"


# ---- verbose=2 and verbose=0 --------------------------------------------------------------------------


def test_verbose_2_prints_only_the_final_line_without_time_per_step():
    clock, stream = FakeClock(0.0), io.StringIO()
    bar = Progbar(80, verbose=2, stream=stream, clock=clock)
    for now, current, loss, acc in [(1.0, 32, 0.5, 0.75), (2.0, 64, 0.3, 0.85)]:
        clock.now = now
        bar.update(current, [("loss", loss), ("acc", acc)])
        assert stream.getvalue() == ""
    clock.now = 4.0
    bar.update(80, [("loss", 0.2), ("acc", 1.0), ("val_loss", 0.25), ("val_acc", 0.9)])
    assert stream.getvalue() == " - 4s - loss: 0.3600 - acc: 0.8400 - val_loss: 0.2500 - val_acc: 0.9000\n"


def test_verbose_2_keeps_the_keras_sign_quirk_but_verbose_1_does_not():
    for verbose, expected in [
        (2, " - 1s - score: -5.0000e-01\n"),
        (1, "1/1 [==============================] - 1s 1s/step - score: -0.5000\n"),
    ]:
        clock, stream = FakeClock(0.0), io.StringIO()
        bar = Progbar(1, verbose=verbose, stream=stream, clock=clock)
        clock.now = 1.0
        bar.update(1, [("score", -0.5)])
        assert stream.getvalue() == expected


def test_summary_line_matches_what_verbose_2_prints():
    logs = {"loss": 0.3529, "acc": 0.8903, "val_loss": 0.2036, "val_acc": 0.9416}
    assert (
        summary_line(14.76, logs)
        == " - 15s - loss: 0.3529 - acc: 0.8903 - val_loss: 0.2036 - val_acc: 0.9416"
    )

    clock, stream = FakeClock(0.0), io.StringIO()
    bar = Progbar(60000, verbose=2, stream=stream, clock=clock)
    clock.now = 14.76
    bar.update(60000, list(logs.items()))
    assert stream.getvalue() == summary_line(14.76, list(logs.items())) + "\n"


def test_verbose_0_prints_nothing():
    clock, stream = FakeClock(0.0), io.StringIO()
    bar = Progbar(10, verbose=0, stream=stream, clock=clock)
    for current in (5, 10):
        clock.now += 1.0
        bar.update(current, [("loss", 1.0)])
    assert stream.getvalue() == ""


# ---- unknown length, stateful metrics, add --------------------------------------------------------------


def test_unknown_target_counts_up_with_elapsed_time_and_is_never_throttled_or_ended():
    clock, stream = FakeClock(0.0), io.StringIO()
    bar = Progbar(None, stream=stream, clock=clock)
    clock.now = 1.0
    bar.update(32, [("loss", 0.5)])  # 1 s / 32 = 31.25 ms
    clock.now = 1.01  # well inside the interval
    bar.update(64, [("loss", 0.3)])  # 1.01 s / 64 = 15.8 ms
    # With no end to wait for, a log file gets each shown update, a line each.
    assert stream.getvalue() == (
        "     32/Unknown - 1s 31ms/step - loss: 0.5000\n     64/Unknown - 1s 16ms/step - loss: 0.4000\n"
    )


def test_unknown_target_with_verbose_2_prints_a_line_per_update():
    clock, stream = FakeClock(0.0), io.StringIO()
    bar = Progbar(None, verbose=2, stream=stream, clock=clock)
    clock.now = 1.0
    bar.update(32, [("loss", 0.5)])
    clock.now = 2.0
    bar.update(64, [("loss", 0.3)])
    assert stream.getvalue() == " - 1s - loss: 0.5000\n - 2s - loss: 0.4000\n"


def test_stateful_metrics_show_the_latest_value_as_given():
    clock, stream = FakeClock(0.0), io.StringIO()
    bar = Progbar(64, stateful_metrics=["lr"], stream=stream, clock=clock)
    clock.now = 1.0
    bar.update(32, [("loss", 0.5), ("lr", 0.01)])
    clock.now = 2.0
    bar.update(64, [("loss", 0.3), ("lr", 0.005)])
    assert stream.getvalue().endswith(" - 2s 31ms/step - loss: 0.4000 - lr: 0.0050\n")


def test_add_is_update_from_the_count_so_far():
    outputs = []
    for use_add in (True, False):
        clock, stream = FakeClock(0.0), io.StringIO()
        bar = Progbar(80, stream=stream, clock=clock)
        for step, (size, loss) in enumerate([(32, 0.5), (32, 0.3), (16, 0.2)], start=1):
            clock.now = float(step)
            if use_add:
                bar.add(size, [("loss", loss)])
            else:
                bar.update(bar.seen_so_far + size, [("loss", loss)])
        outputs.append(stream.getvalue())
    assert outputs[0] == outputs[1]
    assert outputs[0].endswith(" - loss: 0.3600\n")


def test_array_values_are_averaged_like_scalars():
    clock, stream = FakeClock(0.0), io.StringIO()
    bar = Progbar(2, stream=stream, clock=clock)
    clock.now = 1.0
    bar.update(2, [("acc", np.array([0.25, 0.75]))])
    assert stream.getvalue().endswith(" - acc: 0.5000\n")


# ---- helpers the caller prints -------------------------------------------------------------------------


def test_epoch_header_and_validation_banner():
    assert epoch_header(0, 10) == "Epoch 1/10"
    assert epoch_header(2, 10) == "Epoch 3/10"
    assert validation_banner(60000, 10000) == "Train on 60000 samples, validate on 10000 samples"


# ---- argument checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"target": 0}, ValueError, "target must be >= 1"),
        ({"target": 1.5}, TypeError, "target must be an int"),
        ({"target": 10, "verbose": 3}, ValueError, "verbose must be 0, 1 or 2"),
        ({"target": 10, "width": 0}, ValueError, "width must be >= 1"),
        ({"target": 10, "interval": -1}, ValueError, "interval must be"),
        ({"target": 10, "stateful_metrics": "acc"}, TypeError, "single string"),
        ({"target": 10, "clock": 3.0}, TypeError, "clock must be a callable"),
    ],
)
def test_bad_constructor_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        Progbar(stream=io.StringIO(), **kwargs)


def test_bad_update_arguments_are_named():
    bar = Progbar(10, stream=io.StringIO(), clock=FakeClock())
    with pytest.raises(ValueError, match="current must be >= 0"):
        bar.update(-1)
    with pytest.raises(TypeError, match=r"\(name, value\) pairs"):
        bar.update(1, [("loss",)])
    with pytest.raises(TypeError, match="name must be a str"):
        bar.update(1, [(3, 0.5)])
    with pytest.raises(ValueError, match="n must be >= 0"):
        bar.add(-2)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        epoch_header(0, 0)


# ---- properties ----------------------------------------------------------------------------------------


@settings(deadline=None, max_examples=200)
@given(
    target=st.integers(1, 10**7),
    fraction=st.floats(0.0, 1.0),
    width=st.integers(1, 60),
)
def test_the_bar_is_always_width_cells_with_the_right_fill(target, fraction, width):
    current = int(round(fraction * target))
    stream = TerminalStream()
    bar = Progbar(target, width=width, stream=stream, clock=FakeClock())
    bar.update(current)
    line = lines_shown(stream.getvalue())[0]
    count, rest = line.split(" [", 1)
    cells = rest.split("]", 1)[0]

    assert count == str(current).rjust(len(str(target))) + "/" + str(target)
    assert len(cells) == width
    # Keras fills int(width * (current / target)) cells in floating point, which can be one below the exact
    # quotient (23 * (13 / 23) is 12.999...); the reproduction keeps that.
    filled = int(width * (float(current) / target))
    assert (width * current) // target - 1 <= filled <= (width * current) // target
    assert cells.rstrip(".") == cells[:filled]
    assert cells.count(">") == (1 if 0 < filled and current < target else 0)
    assert cells.count("=") == (filled if current == target else max(filled - 1, 0))


@settings(deadline=None, max_examples=100)
@given(
    batches=st.lists(
        st.tuples(st.integers(1, 256), st.floats(-10.0, 10.0, allow_nan=False)), min_size=1, max_size=30
    )
)
def test_the_final_value_is_the_sample_weighted_mean(batches):
    target = sum(size for size, _ in batches)
    clock, stream = FakeClock(0.0), io.StringIO()
    bar = Progbar(target, stream=stream, clock=clock)
    for size, loss in batches:
        clock.now += 0.01
        bar.add(size, [("loss", loss)])
    shown = float(stream.getvalue().rstrip("\n").rsplit("loss: ", 1)[1])
    expected = np.average([loss for _, loss in batches], weights=[size for size, _ in batches])
    # %.4f rounds to 5e-5; %.4e of a value at most 1e-3 is far finer.
    assert abs(shown - expected) <= 5e-5 + 1e-9
