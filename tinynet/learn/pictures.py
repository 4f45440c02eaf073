"""Pictures of a recorded run: :func:`plot_gradient_norms`, :func:`plot_update_ratios`, :func:`plot_activations`,
and :func:`save_inspection`, which writes the table and the three pictures (``tinynet train --inspect`` calls it).
Matplotlib and pandas are imported when a picture is drawn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tinynet.fileio import atomic_write
from tinynet.learn.recorder import COLUMNS, TrainingRecorder

# Colour per layer (in model order), line style per parameter: a kernel solid, its bias dashed.
_PARAMETER_STYLES = {"kernel": "-", "bias": "--", "gamma": "-.", "beta": ":"}


def _layer_order(frame) -> list[str]:
    return list(dict.fromkeys(frame["layer"]))  # first appearance = model order


def _series(frame, prefix: str) -> list[tuple[str, str, Any]]:
    """``(layer, parameter, table of step -> value)`` for every quantity ``prefix/<parameter>``."""
    chosen = frame[frame["quantity"].str.startswith(prefix + "/")]
    series = []
    for layer in _layer_order(chosen):
        rows = chosen[chosen["layer"] == layer]
        for quantity in dict.fromkeys(rows["quantity"]):
            values = rows[rows["quantity"] == quantity].sort_values("step")
            series.append((layer, quantity.split("/", 1)[1], values))
    return series


def _check_frame(frame, function: str):
    import pandas as pd

    if isinstance(frame, TrainingRecorder):
        frame = frame.to_dataframe()
    if not isinstance(frame, pd.DataFrame) or not set(COLUMNS) <= set(frame.columns):
        raise TypeError(f"{function}: expected a TrainingRecorder or its to_dataframe() table "
                        f"(columns {', '.join(COLUMNS)}), got {type(frame).__name__}")
    if frame.empty:
        raise ValueError(f"{function}: the table is empty; record at least one training step first")
    return frame


def _new_axes(title: str, ylabel: str, height: float = 4.8):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, height), layout="constrained")
    axes = figure.subplots()
    axes.set_title(title)
    axes.set_xlabel("training step (batch)")
    axes.set_ylabel(ylabel)
    axes.grid(True, which="major", alpha=0.3)
    return figure, axes


def _mark_epochs(axes, frame) -> None:
    """A faint vertical line where each epoch after the first begins, labelled with Keras's epoch number."""
    starts = frame.groupby("epoch")["step"].min().sort_index()
    for epoch, step in list(starts.items())[1:]:
        axes.axvline(step, color="0.6", linewidth=0.8, linestyle=":", zorder=0)
        axes.annotate(f"epoch {epoch + 1}", (step, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                      textcoords="offset points", fontsize="x-small", color="0.4")


def _plot_per_parameter(frame, prefix: str, path, title: str, ylabel: str, reference: float | None = None,
                        reference_label: str = "") -> Path:
    from matplotlib import colormaps

    series = _series(frame, prefix)
    if not series:
        raise ValueError(f"no '{prefix}/...' quantities in the table to plot")
    figure, axes = _new_axes(title, ylabel)
    layers = list(dict.fromkeys(layer for layer, _, _ in series))
    palette = colormaps["tab10" if len(layers) <= 10 else "tab20"]
    for layer, parameter, values in series:
        positive = values[values["value"] > 0]  # a log axis cannot show 0 or NaN (an all-zero bias at step 0)
        if positive.empty:
            continue
        axes.plot(positive["step"], positive["value"], color=palette(layers.index(layer) % palette.N),
                  linestyle=_PARAMETER_STYLES.get(parameter, "-"), linewidth=1.4, label=f"{layer}.{parameter}",
                  marker="o" if len(positive) == 1 else None)
    axes.set_yscale("log")
    if reference is not None:
        axes.axhline(reference, color="0.3", linewidth=1, linestyle=(0, (4, 3)), label=reference_label)
    _mark_epochs(axes, frame)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False,
                title="layer.parameter")
    return _save(figure, path)


def plot_gradient_norms(frame, path: str | os.PathLike) -> Path:
    """Gradient norm ``||dL/dW||`` of every parameter over training (log scale), one colour per layer."""
    frame = _check_frame(frame, "plot_gradient_norms")
    return _plot_per_parameter(frame, "grad_norm", path, "Gradient norm per parameter", "||dL/dW||  (log scale)")


def plot_update_ratios(frame, path: str | os.PathLike) -> Path:
    """Update ratio ``||delta W|| / ||W||`` per step for every parameter (log scale), with the 1e-3 guide line."""
    frame = _check_frame(frame, "plot_update_ratios")
    return _plot_per_parameter(frame, "update_ratio", path, "Size of each update relative to the weights",
                               "||delta W|| / ||W||  (log scale)", reference=1e-3,
                               reference_label="1e-3 (rule of thumb)")


def plot_activations(frame, path: str | os.PathLike) -> Path:
    """Two panels over training: each layer's output standard deviation (log scale), and the fraction of dead
    units of each ReLU."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    frame = _check_frame(frame, "plot_activations")
    figure = Figure(figsize=(10, 7.5), layout="constrained")
    std_axes, dead_axes = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    layers = [layer for layer in _layer_order(frame) if layer != "model"]
    palette = colormaps["tab10" if len(layers) <= 10 else "tab20"]
    for axes, quantity in ((std_axes, "activation_std"), (dead_axes, "dead_fraction")):
        for layer in layers:
            values = frame[(frame["layer"] == layer) & (frame["quantity"] == quantity)].sort_values("step")
            if quantity == "activation_std":
                values = values[values["value"] > 0]
            if not values.empty:
                axes.plot(values["step"], values["value"], color=palette(layers.index(layer) % palette.N),
                          linewidth=1.4, label=layer, marker="o" if len(values) == 1 else None)
        axes.grid(True, alpha=0.3)
        _mark_epochs(axes, frame)
    std_axes.set_yscale("log")
    std_axes.set_title("Layer outputs during training")
    std_axes.set_ylabel("std of the output  (log scale)")
    std_axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False, title="layer")
    dead_axes.set_ylabel("dead ReLU units (fraction)")
    dead_axes.set_xlabel("training step (batch)")
    dead = frame.loc[frame["quantity"] == "dead_fraction", "value"]
    # Zoom on the values (dead fractions are usually small) but never past 1, and keep 0 in sight.
    top = min(1.02, max(0.1, 1.25 * float(dead.max()))) if not dead.empty else 1.02
    dead_axes.set_ylim(-0.01 * top, top)
    if dead_axes.get_legend_handles_labels()[0]:
        dead_axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False,
                         title="ReLU layer")
    else:
        dead_axes.text(0.5, 0.5, "no ReLU layers", transform=dead_axes.transAxes, ha="center", color="0.4")
    return _save(figure, path)


def _save(figure, path: str | os.PathLike) -> Path:
    """Write the figure as PNG atomically: the old picture or the whole new one, never half."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must name a .png file, got {str(path)!r}")
    with atomic_write(path) as file:
        # bbox_inches="tight" keeps the legend placed outside the axes inside the picture.
        figure.savefig(file, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
    return path


def save_inspection(recorder: TrainingRecorder | Any, folder: str | os.PathLike) -> list[Path]:
    """Write ``inspect.csv`` (the long table) and ``gradient_norms.png``, ``update_ratios.png`` and
    ``activations.png`` into ``folder``; return their paths."""
    frame = _check_frame(recorder, "save_inspection")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "inspect.csv"
    with atomic_write(table) as file:
        file.write(frame.to_csv(index=False, float_format="%.6g").encode())
    return [table, plot_gradient_norms(frame, folder / "gradient_norms.png"),
            plot_update_ratios(frame, folder / "update_ratios.png"),
            plot_activations(frame, folder / "activations.png")]
