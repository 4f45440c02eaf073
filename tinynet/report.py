"""How good is a classifier? The confusion matrix and the numbers read from it.

The tutorial ends by printing ``pandas.crosstab(y_test, y_pred)``. This module builds the same table, with two
fixes a learner would otherwise trip over:

* ``crosstab`` drops a class that was never predicted (and one that never occurs), so the table silently stops
  being square. :func:`confusion_matrix` always has one row and one column for every class.
* The tutorial says precision and F1 "can be obtained by the help of confusion matrix" but never does it.
  :func:`classification_report` does it by hand, with NumPy, so every number can be traced back to the table.

Conventions (the same as scikit-learn's ``confusion_matrix``): row ``i`` is the actual class, column ``j``
the predicted class, so ``C[i, j]`` counts samples of class ``i`` predicted as ``j``; the diagonal is what was
right.

Nothing here imports the rest of tinynet: the functions take plain arrays, so they work on any model's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Fashion-MNIST class names, indexed by label 0..9 (the order of the dataset's documentation)."""

MNIST_CLASSES: tuple[str, ...] = tuple(str(digit) for digit in range(10))
"""MNIST class names: the digits themselves."""

#: Names of the summary rows that :func:`classification_report` appends after the per-class rows.
ACCURACY_ROW = "accuracy"
MACRO_AVERAGE_ROW = "macro avg"
WEIGHTED_AVERAGE_ROW = "weighted avg"
REPORT_COLUMNS = ("precision", "recall", "f1-score", "support")


def as_class_indices(values, argument_name: str = "y") -> np.ndarray:
    """Return integer class indices, shape ``(n,)``, from labels or per-class scores.

    Accepts what a Keras workflow hands around:

    * integer labels, shape ``(n,)`` (``y_test``), also as floats with integral values or a pandas Series;
    * one-hot targets or predicted probabilities, shape ``(n, k)`` with ``k >= 2`` (``to_categorical(y)``,
      ``model.predict(x)``): the class is the argmax of each row, ties going to the first index as in Keras.

    Raises ``ValueError`` for any other rank, for a single-column 2-D array (ambiguous: labels or one
    probability?), for negative or non-integral labels and for NaN scores.
    """
    array = np.asarray(values)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
    ):
        raise TypeError(f"{argument_name} must hold numbers, got an array of dtype {array.dtype}")
    if array.ndim == 1:
        if np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_):
            indices = array.astype(np.int64)
        else:
            if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                raise ValueError(
                    f"{argument_name} has rank 1, so it must hold integer class labels; "
                    f"got non-integral values such as {array[array != np.round(array)][:3].tolist()}"
                )
            indices = array.astype(np.int64)
        if indices.size and indices.min() < 0:
            raise ValueError(
                f"{argument_name} must hold class labels >= 0, got the label {int(indices.min())}"
            )
        return indices
    if array.ndim == 2:
        if array.shape[1] < 2:
            raise ValueError(
                f"{argument_name} has shape {array.shape}; a 2-D array must have one column per class "
                "(at least 2). Pass integer labels as a 1-D array (e.g. y.ravel())"
            )
        if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
            raise ValueError(f"{argument_name} contains NaN scores, so no class can be chosen")
        return np.argmax(array, axis=1).astype(np.int64)
    raise ValueError(
        f"{argument_name} must be integer labels of shape (n,) or one-hot / probability rows of shape "
        f"(n, classes); got an array of shape {array.shape} (rank {array.ndim})"
    )


def _class_count(values) -> int | None:
    """Number of classes implied by a 2-D score array, ``None`` for 1-D labels."""
    array = np.asarray(values)
    return int(array.shape[1]) if array.ndim == 2 else None


def confusion_matrix(
    y_true,
    y_pred,
    num_classes: int | None = None,
    labels: Sequence | None = None,
) -> pd.DataFrame:
    """Count how often each actual class was predicted as each class.

    Parameters
    ----------
    y_true, y_pred:
        Integer labels ``(n,)`` or one-hot / probability rows ``(n, k)`` (argmax is taken); see
        :func:`as_class_indices`. Both must describe the same ``n`` samples.
    num_classes:
        How many classes there are. Defaults to ``len(labels)``, else the column count of a 2-D input,
        else ``max(label) + 1``. Give it when a class may be missing from both arrays.
    labels:
        Optional names for classes ``0..num_classes-1`` (e.g. :data:`FASHION_MNIST_CLASSES`), used as the
        row and column labels instead of the integers.

    Returns
    -------
    pandas.DataFrame
        ``C`` of shape ``(num_classes, num_classes)``, dtype int64, with ``C.loc[a, p]`` = number of samples
        whose actual class is ``a`` and predicted class is ``p``. The index is named ``'Actual'`` and the
        columns ``'Predicted'``, so it prints exactly like the tutorial's ``pd.crosstab``; unlike crosstab,
        every class has a row and a column even if it never occurs or is never predicted.
    """
    true_indices = as_class_indices(y_true, "y_true")
    predicted_indices = as_class_indices(y_pred, "y_pred")
    if true_indices.shape[0] != predicted_indices.shape[0]:
        raise ValueError(
            f"y_true and y_pred must describe the same samples; got {true_indices.shape[0]} true labels "
            f"and {predicted_indices.shape[0]} predictions"
        )

    implied_counts = {
        name: count
        for name, count in (("y_true", _class_count(y_true)), ("y_pred", _class_count(y_pred)))
        if count is not None
    }
    if labels is not None:
        if isinstance(labels, str) or not isinstance(labels, Sequence | np.ndarray | pd.Index):
            raise TypeError(f"labels must be a sequence of class names, got {type(labels).__name__}")
        labels = list(labels)
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must be distinct, got {labels}")
        if num_classes is not None and len(labels) != num_classes:
            raise ValueError(f"labels has {len(labels)} names but num_classes is {num_classes}")
        num_classes = len(labels)
    if num_classes is None:
        if implied_counts:
            num_classes = max(implied_counts.values())
        else:
            largest = max(
                (int(indices.max()) for indices in (true_indices, predicted_indices) if indices.size),
                default=None,
            )
            if largest is None:
                raise ValueError("cannot infer the number of classes from empty arrays; pass num_classes")
            num_classes = largest + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    num_classes = int(num_classes)
    for name, count in implied_counts.items():
        if count != num_classes:
            raise ValueError(f"{name} has {count} columns (classes) but num_classes is {num_classes}")
    for name, indices in (("y_true", true_indices), ("y_pred", predicted_indices)):
        if indices.size and indices.max() >= num_classes:
            raise ValueError(
                f"{name} holds the label {int(indices.max())}, outside the {num_classes} classes "
                f"0..{num_classes - 1}"
            )

    # One bincount over the flattened cell index actual * k + predicted fills the whole table at once.
    counts = np.bincount(
        true_indices * num_classes + predicted_indices, minlength=num_classes * num_classes
    ).reshape(num_classes, num_classes)
    names = labels if labels is not None else list(range(num_classes))
    return pd.DataFrame(
        counts.astype(np.int64),
        index=pd.Index(names, name="Actual"),
        columns=pd.Index(names, name="Predicted"),
    )


def confusion_counts(confusion) -> tuple[np.ndarray, list]:
    """The square int64 count array of a confusion matrix and its class labels, after checking both.

    Accepts a DataFrame (its index gives the labels, and its columns must list the same classes in the same
    order) or a square array-like (labels ``0..k-1``). Raises ``ValueError`` for a table that is not square,
    is empty, or holds negative, fractional or non-finite counts; ``TypeError`` for non-numeric cells.
    """
    if isinstance(confusion, pd.DataFrame):
        if list(confusion.index) != list(confusion.columns):
            raise ValueError(
                "confusion must have the same classes, in the same order, as rows and columns; got rows "
                f"{list(confusion.index)} and columns {list(confusion.columns)} "
                "(pandas.crosstab drops classes that are never predicted: build it with confusion_matrix())"
            )
        class_labels = list(confusion.index)
        values = confusion.to_numpy()
    else:
        values = np.asarray(confusion)
        class_labels = list(range(values.shape[0])) if values.ndim == 2 else []
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] == 0:
        raise ValueError(f"confusion must be a non-empty square table, got shape {values.shape}")
    if not np.issubdtype(values.dtype, np.number):
        raise TypeError(f"confusion must hold counts, got dtype {values.dtype}")
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values != np.round(values)):
        raise ValueError("confusion must hold non-negative integer counts")
    return values.astype(np.int64), class_labels


def _safe_divide(numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> np.ndarray:
    """``numerator / denominator`` elementwise, with 0.0 wherever the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    result = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return result


def classification_report(confusion) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support, then accuracy, macro and weighted averages.

    For class ``c`` of a confusion matrix ``C`` (rows actual, columns predicted):

    * ``TP = C[c, c]``, ``FP = sum_i C[i, c] - TP`` (predicted ``c``, was not),
      ``FN = sum_j C[c, j] - TP`` (was ``c``, predicted otherwise);
    * ``precision = TP / (TP + FP)``: of the samples called ``c``, the fraction that were ``c``;
    * ``recall = TP / (TP + FN)``: of the samples of class ``c``, the fraction found;
    * ``f1 = 2 TP / (2 TP + FP + FN)``, the harmonic mean of precision and recall;
    * ``support = TP + FN``, the number of samples of class ``c``.

    **0/0 gives 0.0**: a class never predicted has precision 0.0, a class with no samples has recall 0.0
    (scikit-learn's ``zero_division=0``). Such a class still counts in the macro average, which therefore
    drops; it weighs nothing in the weighted average because its support is 0.

    Summary rows, appended after the classes:

    * ``accuracy``: ``trace(C) / sum(C)``. With one label per sample, every wrong prediction is one false
      positive and one false negative, so micro-averaged precision, recall and F1 all equal accuracy; the row
      shows that value in all three columns (scikit-learn leaves two of them blank).
    * ``macro avg``: the plain mean over classes; ``weighted avg``: the mean weighted by support.

    The ``support`` of each summary row is the total number of samples. Accepts a DataFrame from
    :func:`confusion_matrix` (its class labels become the index) or a square array of counts.
    """
    counts, class_labels = confusion_counts(confusion)
    true_positives = np.diag(counts).astype(np.float64)
    predicted_totals = counts.sum(axis=0)  # column sums: how often each class was predicted
    actual_totals = counts.sum(axis=1)  # row sums: how many samples each class has
    false_positives = predicted_totals - true_positives
    false_negatives = actual_totals - true_positives

    precision = _safe_divide(true_positives, predicted_totals)
    recall = _safe_divide(true_positives, actual_totals)
    f1 = _safe_divide(2 * true_positives, 2 * true_positives + false_positives + false_negatives)
    support = actual_totals

    total = int(counts.sum())
    accuracy = float(_safe_divide(true_positives.sum(), total))
    per_class = np.column_stack([precision, recall, f1])
    macro = per_class.mean(axis=0)
    # With no samples at all there is nothing to weight by; 0/0 gives 0.0 as everywhere else.
    weighted = _safe_divide(support @ per_class, total)

    scores = np.vstack([per_class, [accuracy] * 3, macro, weighted])
    report = pd.DataFrame(
        scores,
        index=pd.Index([*class_labels, ACCURACY_ROW, MACRO_AVERAGE_ROW, WEIGHTED_AVERAGE_ROW]),
        columns=list(REPORT_COLUMNS[:3]),
    )
    report["support"] = np.concatenate([support, [total] * 3]).astype(np.int64)
    return report


def format_report(confusion, digits: int = 4) -> str:
    """The text ``tinynet train`` prints after training: table, per-class scores, then overall accuracy.

    Three blocks separated by blank lines:

    1. the confusion matrix exactly as pandas prints it (``DataFrame.to_string``, never wrapped to the
       terminal width, so ten columns stay on one line);
    2. :func:`classification_report` with ``digits`` decimals (the accuracy row is left out here);
    3. ``Overall accuracy: 0.9416 (9416/10000 correct)``.
    """
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be a non-negative integer, got {digits!r}")
    counts, class_labels = confusion_counts(confusion)
    if not isinstance(confusion, pd.DataFrame):
        confusion = pd.DataFrame(
            counts,
            index=pd.Index(class_labels, name="Actual"),
            columns=pd.Index(class_labels, name="Predicted"),
        )
    report = classification_report(confusion)
    scores = report.drop(index=ACCURACY_ROW)
    correct, total = int(np.trace(counts)), int(counts.sum())
    accuracy = report.loc[ACCURACY_ROW, "precision"]
    return "\n".join(
        [
            "Confusion matrix (rows: actual class, columns: predicted class)",
            confusion.to_string(),
            "",
            scores.to_string(float_format=lambda value: f"{value:.{digits}f}"),
            "",
            f"Overall accuracy: {accuracy:.{digits}f} ({correct}/{total} correct)",
        ]
    )
