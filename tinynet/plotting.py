"""The tutorial's pictures, drawn straight to PNG files: samples, loss and accuracy curves, confusion matrix.

Every function takes plain arrays or dicts (nothing from the model classes), draws on a fresh
:class:`matplotlib.figure.Figure` and writes one PNG. pyplot is never imported: there is no global figure
state, no backend to choose and no window can pop up, so the functions run the same on a laptop, a server or
in CI.

Each file is written atomically: the PNG goes to a temporary file in the destination folder and is then
renamed over ``path`` with :func:`os.replace`. A crash halfway leaves the old picture (or nothing), never half
a PNG.

Differences from the tutorial's own plots, on purpose:

* the loss curve's y axis says ``loss`` (the tutorial labels it "precentage"), the accuracy curve's says
  ``accuracy``;
* epochs on the x axis are numbered from 1, as Keras prints them (``Epoch 2/10``), not list positions from 0;
* the confusion matrix is drawn with matplotlib alone (no seaborn), and always shows every class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tinynet.fileio import atomic_write
from tinynet.report import as_class_indices, confusion_counts

__all__ = [
    "plot_samples",
    "plot_loss",
    "plot_accuracy",
    "plot_confusion_matrix",
    "plot_images_with_predictions",
]

_WRONG_COLOR = "#c62828"  # red for a wrong prediction
_RIGHT_COLOR = "#1b5e20"  # dark green for a right one
_TRAIN_COLOR = "#1f77b4"
_TEST_COLOR = "#ff7f0e"


# ------------------------------ saving


def _save_png(figure: Figure, path) -> Path:
    """Write ``figure`` to ``path`` as PNG via a temporary file in the same folder and an atomic rename."""
    destination = Path(path)
    if destination.suffix and destination.suffix.lower() != ".png":
        raise ValueError(f"path must name a .png file (the pictures are PNG), got {str(destination)!r}")
    if destination.is_dir():
        raise ValueError(f"path must name a file, got the folder {str(destination)!r}")
    # fileio.atomic_write: a temporary file in the same folder, then an atomic rename over the destination.
    with atomic_write(destination) as stream:
        # bbox_inches="tight" is a safety net over the constrained layout: a long rotated tick label
        # must never push an axis title out of the picture.
        figure.savefig(stream, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
    return destination


# ------------------------------ image grids


def _as_image_batch(images) -> np.ndarray:
    """Images as ``(n, height, width)`` grayscale or ``(n, height, width, 3)`` colour, checked."""
    batch = np.asarray(images)
    if not (np.issubdtype(batch.dtype, np.number) or np.issubdtype(batch.dtype, np.bool_)):
        raise TypeError(f"images must hold pixel numbers, got an array of dtype {batch.dtype}")
    if batch.ndim == 4 and batch.shape[-1] == 1:
        batch = batch[..., 0]  # channels_last with one channel, as after np.expand_dims(x, axis=3)
    if not (batch.ndim == 3 or (batch.ndim == 4 and batch.shape[-1] == 3)):
        raise ValueError(
            "images must have shape (n, height, width), (n, height, width, 1) or (n, height, width, 3); "
            f"got {np.shape(images)}"
        )
    if batch.shape[0] == 0:
        raise ValueError("images is empty: there is nothing to draw")
    return batch


def _class_name(index: int, class_names: Sequence[str] | None) -> str:
    if class_names is None:
        return str(index)
    if index >= len(class_names):
        raise ValueError(f"label {index} has no entry in class_names, which has {len(class_names)} names")
    return str(class_names[index])


def _check_grid(rows, cols) -> None:
    for name, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _image_grid(batch: np.ndarray, rows: int, cols: int, cell_height: float) -> tuple[Figure, list]:
    """A figure of ``rows x cols`` image cells, the first ``len(batch)`` filled, the rest hidden.

    Rows that would stay wholly empty are dropped, so three images do not float above a blank page.
    """
    rows = min(rows, -(-batch.shape[0] // cols))
    figure = Figure(figsize=(1.9 * cols, cell_height * rows), layout="constrained")
    axes_grid = figure.subplots(rows, cols, squeeze=False)
    # One grey scale for the whole grid, so a faint digit looks faint instead of stretched to black and white.
    if batch.ndim == 3:
        low, high = float(np.min(batch)), float(np.max(batch))
        if np.issubdtype(batch.dtype, np.integer) and low >= 0 and high <= 255:
            low, high = 0.0, 255.0
        elif low >= 0 and high <= 1:
            low, high = 0.0, 1.0
    axes = list(axes_grid.ravel())
    for position, axis in enumerate(axes):
        axis.set_xticks([])
        axis.set_yticks([])
        if position >= batch.shape[0]:
            axis.set_axis_off()
            continue
        if batch.ndim == 3:
            axis.imshow(batch[position], cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        else:
            axis.imshow(batch[position], interpolation="nearest")
    return figure, axes


def plot_samples(images, labels, path, rows: int = 2, cols: int = 5, class_names=None) -> Path:
    """Draw the first ``rows * cols`` images in grey with each one's label under it, and save a PNG.

    The tutorial's 2 x 5 figure of training digits. ``images`` is ``(n, h, w)`` or ``(n, h, w, 1)``
    (``(n, h, w, 3)`` is drawn in colour); ``labels`` are integer labels ``(n,)`` or one-hot rows ``(n, k)``.
    ``class_names`` (e.g. ``FASHION_MNIST_CLASSES``) replaces the numbers under the images. With fewer than
    ``rows * cols`` images, the remaining cells stay empty. Returns the path written.
    """
    _check_grid(rows, cols)
    batch = _as_image_batch(images)
    label_indices = as_class_indices(labels, "labels")
    if label_indices.shape[0] != batch.shape[0]:
        raise ValueError(f"labels has {label_indices.shape[0]} entries but images has {batch.shape[0]}")
    shown = min(rows * cols, batch.shape[0])
    figure, axes = _image_grid(batch[:shown], rows, cols, cell_height=2.1)
    for axis, label in zip(axes[:shown], label_indices[:shown], strict=True):
        axis.set_xlabel(_class_name(int(label), class_names), fontsize=11)
    return _save_png(figure, path)


def plot_images_with_predictions(
    images,
    y_true,
    y_pred,
    path,
    rows: int = 2,
    cols: int = 5,
    class_names=None,
    only_errors: bool = False,
) -> Path:
    """Draw images with their actual and predicted class; wrong predictions in red with a red frame.

    ``y_true`` and ``y_pred`` are integer labels or one-hot / probability rows (``model.predict(x)`` works as
    it is). Shows the first ``rows * cols`` images, or with ``only_errors=True`` the first ones the model got
    wrong, which is where a learner sees what confuses it (a 4 that looks like a 9). The title counts the
    errors among all images given and says how many of those shown are wrong, so a run with 569 errors whose
    first ten images happen to be right does not seem to promise red ones. Returns the path written.
    """
    _check_grid(rows, cols)
    batch = _as_image_batch(images)
    true_indices = as_class_indices(y_true, "y_true")
    predicted_indices = as_class_indices(y_pred, "y_pred")
    for name, indices in (("y_true", true_indices), ("y_pred", predicted_indices)):
        if indices.shape[0] != batch.shape[0]:
            raise ValueError(f"{name} has {indices.shape[0]} entries but images has {batch.shape[0]}")
    wrong = true_indices != predicted_indices
    if only_errors:
        chosen = np.flatnonzero(wrong)[: rows * cols]
    else:
        chosen = np.arange(min(rows * cols, batch.shape[0]))
    if chosen.size == 0:
        # Every prediction was right: say so in a small picture rather than fail or write a blank one.
        figure = Figure(figsize=(5, 1.5))
        figure.text(
            0.5,
            0.5,
            f"No misclassified images: all {wrong.size} predictions right",
            ha="center",
            va="center",
            fontsize=12,
            color=_RIGHT_COLOR,
        )
        return _save_png(figure, path)

    figure, axes = _image_grid(batch[chosen], rows, cols, cell_height=2.5)
    for axis, sample in zip(axes, chosen, strict=False):
        is_wrong = bool(wrong[sample])
        color = _WRONG_COLOR if is_wrong else _RIGHT_COLOR
        axis.set_xlabel(
            f"true: {_class_name(int(true_indices[sample]), class_names)}\n"
            f"pred: {_class_name(int(predicted_indices[sample]), class_names)}",
            color=color,
            fontsize=10,
            fontweight="bold" if is_wrong else "normal",
        )
        for spine in axis.spines.values():
            spine.set_edgecolor(color if is_wrong else "#999999")
            spine.set_linewidth(3 if is_wrong else 0.8)
    errors = f"{int(wrong.sum())} of {wrong.size} predictions wrong"
    if only_errors:
        title = f"The first {chosen.size} misclassified images ({errors})"
    else:
        wrong_shown = int(wrong[chosen].sum())
        shown = "none of the" if wrong_shown == 0 else f"{wrong_shown} of the"
        title = f"{errors}; {shown} {chosen.size} shown" + (" (red)" if wrong_shown else "")
    figure.suptitle(title, fontsize=12)
    return _save_png(figure, path)


# ------------------------------ history curves


def _history_dict(history) -> tuple[Mapping, Sequence | None]:
    """The ``history`` mapping and, when given a Keras-style History object, its ``epoch`` list."""
    if isinstance(history, Mapping):
        return history, None
    if isinstance(getattr(history, "history", None), Mapping):
        return history.history, getattr(history, "epoch", None)
    raise TypeError(
        "history must be a dict like History.history (e.g. {'loss': [...], 'val_loss': [...]}) or a History "
        f"object; got {type(history).__name__}"
    )


def _series(history: Mapping, key: str) -> np.ndarray:
    values = np.asarray(history[key], dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"history[{key!r}] must be a non-empty list of per-epoch numbers, got {history[key]!r}"
        )
    return values


def _plot_curves(history, path, epochs, train_keys, quantity: str, title: str) -> Path:
    """Shared body of :func:`plot_loss` and :func:`plot_accuracy`."""
    mapping, object_epochs = _history_dict(history)
    train_key = next((key for key in train_keys if key in mapping), None)
    if train_key is None:
        wanted = " or ".join(repr(key) for key in train_keys)
        raise ValueError(f"history has no {wanted} entry to plot; its keys are {sorted(mapping)}")
    validation_key = "val_" + train_key
    train = _series(mapping, train_key)
    validation = _series(mapping, validation_key) if validation_key in mapping else None
    if validation is not None and validation.size != train.size:
        raise ValueError(
            f"history[{validation_key!r}] has {validation.size} values but history[{train_key!r}] has "
            f"{train.size}: both must have one value per epoch"
        )

    if epochs is None:
        epochs = object_epochs
    if epochs is None:
        epoch_numbers = np.arange(1, train.size + 1)
    else:
        epoch_indices = np.asarray(epochs)
        if epoch_indices.ndim != 1 or epoch_indices.size != train.size:
            raise ValueError(
                f"epochs must list one 0-based epoch index per value ({train.size}), got {list(epochs)!r}"
            )
        if not np.issubdtype(epoch_indices.dtype, np.integer) or np.any(epoch_indices < 0):
            raise ValueError(f"epochs must hold 0-based epoch indices (integers >= 0), got {list(epochs)!r}")
        # History.epoch is 0-based; Keras prints epoch e as "Epoch e+1/E", and so does the axis.
        epoch_numbers = epoch_indices + 1

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axis = figure.subplots()
    axis.plot(epoch_numbers, train, marker="o", color=_TRAIN_COLOR, label="train")
    if validation is not None:
        axis.plot(epoch_numbers, validation, marker="o", color=_TEST_COLOR, label="test")
    axis.set_title(title)
    axis.set_xlabel("epoch")
    axis.set_ylabel(quantity)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(True, alpha=0.3)
    axis.legend(loc="upper right" if quantity == "loss" else "lower right")
    return _save_png(figure, path)


def plot_loss(history, path, epochs=None) -> Path:
    """Plot training and validation loss per epoch from a Keras-style ``History.history`` dict; save a PNG.

    ``history`` needs ``'loss'``; ``'val_loss'`` is drawn as ``test`` when present (the tutorial validates
    on the test set). ``epochs`` lists the 0-based epoch indices of the values (``History.epoch``, e.g.
    ``[1, ..., 9]`` after ``fit(epochs=10, initial_epoch=1)``); the axis shows them 1-based, as Keras prints
    ``Epoch 2/10``. Without it the values are epochs 1, 2, ... A History object may be passed instead of its
    dict, and then its ``epoch`` is used. Returns the path written.
    """
    return _plot_curves(history, path, epochs, ("loss",), "loss", "Loss per epoch")


def plot_accuracy(history, path, epochs=None) -> Path:
    """Plot training and validation accuracy per epoch from a Keras-style ``History.history`` dict, as PNG.

    Reads ``'acc'``/``'val_acc'`` (Keras 2.2, the tutorial) or ``'accuracy'``/``'val_accuracy'`` (Keras 2.3).
    ``epochs`` works as in :func:`plot_loss`. Returns the path written.
    """
    return _plot_curves(history, path, epochs, ("acc", "accuracy"), "accuracy", "Accuracy per epoch")


# ------------------------------ confusion matrix


def plot_confusion_matrix(confusion, path, title: str = "Confusion matrix", normalize: bool = False) -> Path:
    """Draw a confusion matrix as an annotated heatmap: actual class down, predicted class across; save a PNG.

    ``confusion`` is a DataFrame from :func:`tinynet.report.confusion_matrix` (its labels name the axes'
    ticks) or a square array of counts. Each cell shows its count; with ``normalize=True`` each row is divided
    by its total, so a cell reads "fraction of actual class ``a`` predicted as ``p``" and the diagonal is the
    per-class recall (an empty row stays 0). The text turns white on dark cells so every number stays legible.
    Returns the path written.
    """
    integer_counts, labels = confusion_counts(confusion)
    class_labels = [str(label) for label in labels]
    counts = integer_counts.astype(np.float64)

    if normalize:
        row_totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, row_totals, out=np.zeros_like(counts), where=row_totals != 0)
        color_limit, colorbar_label = 1.0, "fraction of the actual class (square-root colour scale)"
    else:
        values = counts
        color_limit = max(float(values.max()), 1.0)
        colorbar_label = "number of samples (square-root colour scale)"
    # The diagonal dwarfs the errors (~950 against ~10), so on a linear scale every mistake is the same white.
    # A square-root scale keeps zero white and the diagonal dark while tinting the common confusions; the
    # colorbar keeps the true numbers, and the printed count in each cell is exact anyway.
    color_scale = PowerNorm(gamma=0.5, vmin=0.0, vmax=color_limit)
    color_map = colormaps["Blues"]

    size = counts.shape[0]
    # About 0.75 inch per class keeps four-digit counts readable at 10 classes; tiny matrices get a floor.
    side = max(5.0, 0.75 * size + 2.5)
    figure = Figure(figsize=(side + 1.2, side), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(values, cmap=color_map, norm=color_scale, interpolation="nearest")
    colorbar = figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    colorbar.set_label(colorbar_label)

    axis.set_xticks(range(size), labels=class_labels)
    axis.set_yticks(range(size), labels=class_labels)
    if max((len(label) for label in class_labels), default=0) > 2:
        axis.tick_params(axis="x", labelrotation=45)
        for tick_label in axis.get_xticklabels():
            tick_label.set_horizontalalignment("right")
            tick_label.set_rotation_mode("anchor")
    axis.set_xlabel("Predicted", fontsize=12)
    axis.set_ylabel("Actual", fontsize=12)
    axis.set_title(title, fontsize=14)
    # Thin white lines between cells make a row easy to follow across ten columns.
    axis.set_xticks(np.arange(size + 1) - 0.5, minor=True)
    axis.set_yticks(np.arange(size + 1) - 0.5, minor=True)
    axis.grid(which="minor", color="white", linewidth=1)
    axis.tick_params(which="minor", length=0)

    font_size = 10 if size <= 12 else max(5, 120 // size)
    for row in range(size):
        for column in range(size):
            value, count = values[row, column], counts[row, column]
            if count == 0:
                # Empty cells in grey, so the eye goes to the mistakes that did happen.
                text, text_color = "0", "#9e9e9e"
            else:
                if normalize:
                    text = f"{value:.2f}" if value >= 0.005 else "<.01"
                else:
                    text = f"{int(round(count))}"
                red, green, blue, _ = color_map(color_scale(value))
                # Perceived brightness of the cell (ITU-R BT.601 weights) picks black or white text.
                text_color = "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.55 else "black"
            axis.text(column, row, text, ha="center", va="center", fontsize=font_size, color=text_color)
    return _save_png(figure, path)
