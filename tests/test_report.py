"""Tests for tinynet.report: the confusion matrix and the scores read from it, checked by hand."""

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.report import (
    FASHION_MNIST_CLASSES,
    as_class_indices,
    classification_report,
    confusion_matrix,
    format_report,
)

# Four classes chosen so every corner case shows up once:
#   class 2 has two samples but is never predicted   -> precision 0/0 = 0.0
#   class 3 has no samples but is predicted once     -> recall 0/0 = 0.0
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 3, 0, 1])
EXPECTED_COUNTS = np.array(
    [
        [2, 1, 0, 0],
        [0, 1, 0, 1],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
    ]
)


def _f(fraction: Fraction) -> float:
    return float(fraction)


# Worked out by hand with TP = [2, 1, 0, 0], column sums [3, 3, 0, 1], row sums [3, 2, 2, 0].
EXPECTED_PRECISION = [Fraction(2, 3), Fraction(1, 3), Fraction(0), Fraction(0, 1)]
EXPECTED_RECALL = [Fraction(2, 3), Fraction(1, 2), Fraction(0, 2), Fraction(0)]
EXPECTED_F1 = [Fraction(4, 6), Fraction(2, 5), Fraction(0, 2), Fraction(0, 1)]  # 2TP / (2TP + FP + FN)
EXPECTED_SUPPORT = [3, 2, 2, 0]


def test_confusion_matrix_counts_match_hand_count():
    confusion = confusion_matrix(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(confusion.to_numpy(), EXPECTED_COUNTS)
    assert confusion.to_numpy().dtype == np.int64


def test_confusion_matrix_has_crosstab_layout_and_names():
    confusion = confusion_matrix(Y_TRUE, Y_PRED)
    assert confusion.index.name == "Actual"
    assert confusion.columns.name == "Predicted"
    assert list(confusion.index) == [0, 1, 2, 3]
    assert list(confusion.columns) == [0, 1, 2, 3]


def test_confusion_matrix_keeps_classes_that_crosstab_drops():
    crosstab = pd.crosstab(
        pd.Series(Y_TRUE, name="Actual"), pd.Series(Y_PRED, name="Predicted"), rownames=["Actual"]
    )
    assert 2 not in crosstab.columns  # never predicted: the reason confusion_matrix exists
    confusion = confusion_matrix(Y_TRUE, Y_PRED)
    assert 2 in confusion.columns and 3 in confusion.index
    assert confusion[2].sum() == 0 and confusion.loc[3].sum() == 0


def test_confusion_matrix_prints_exactly_like_crosstab_when_all_classes_occur():
    y_true = np.array([0, 1, 2, 2, 1, 0, 2])
    y_pred = np.array([0, 2, 2, 1, 1, 0, 2])
    crosstab = pd.crosstab(
        pd.Series(y_true, name="Actual"),
        pd.Series(y_pred, name="Predicted"),
        rownames=["Actual"],
        colnames=["Predicted"],
    )
    confusion = confusion_matrix(y_true, y_pred)
    pd.testing.assert_frame_equal(confusion, crosstab, check_dtype=False, check_index_type=False)
    assert confusion.to_string() == crosstab.to_string()


def test_num_classes_adds_classes_absent_from_both_arrays():
    confusion = confusion_matrix([0, 1], [1, 1], num_classes=5)
    assert confusion.shape == (5, 5)
    assert confusion.to_numpy().sum() == 2


def test_one_hot_and_probabilities_are_turned_into_classes_with_argmax():
    one_hot_true = np.eye(4)[Y_TRUE]
    probabilities = np.full((len(Y_PRED), 4), 0.1)
    probabilities[np.arange(len(Y_PRED)), Y_PRED] = 0.7
    confusion = confusion_matrix(one_hot_true, probabilities)
    np.testing.assert_array_equal(confusion.to_numpy(), EXPECTED_COUNTS)


def test_argmax_ties_go_to_the_first_class_as_in_keras():
    np.testing.assert_array_equal(as_class_indices(np.array([[0.5, 0.5], [0.2, 0.8]])), [0, 1])


def test_integral_float_labels_and_series_are_accepted():
    confusion = confusion_matrix(pd.Series(Y_TRUE.astype(float)), list(Y_PRED))
    np.testing.assert_array_equal(confusion.to_numpy(), EXPECTED_COUNTS)


def test_class_names_label_rows_and_columns():
    confusion = confusion_matrix([0, 9, 9], [0, 9, 8], labels=FASHION_MNIST_CLASSES)
    assert list(confusion.index) == list(FASHION_MNIST_CLASSES)
    assert list(confusion.columns) == list(FASHION_MNIST_CLASSES)
    assert confusion.loc["Ankle boot", "Bag"] == 1
    assert confusion.loc["T-shirt/top", "T-shirt/top"] == 1


def test_fashion_mnist_class_names_in_dataset_order():
    assert len(FASHION_MNIST_CLASSES) == 10
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top"
    assert FASHION_MNIST_CLASSES[6] == "Shirt"
    assert FASHION_MNIST_CLASSES[9] == "Ankle boot"


@pytest.mark.parametrize(
    ("y_true", "y_pred", "kwargs", "message"),
    [
        ([0, 1, 2], [0, 1], {}, "same samples"),
        (np.zeros((2, 2, 2)), [0, 1], {}, "rank 3"),
        (np.zeros((3, 1)), [0, 1, 0], {}, "one column per class"),
        ([0, -1], [0, 0], {}, ">= 0"),
        ([0, 1.5], [0, 0], {}, "non-integral"),
        ([0, 4], [0, 0], {"num_classes": 3}, "outside the 3 classes"),
        ([0, 1], [0, 1], {"num_classes": 3, "labels": ["a", "b"]}, "labels has 2 names"),
        (np.eye(3), [0, 1, 2], {"num_classes": 4}, "3 columns"),
        ([], [], {}, "pass num_classes"),
        ([0, 1], [0, 1], {"num_classes": 0}, "positive integer"),
        ([0, 1], [0, 1], {"labels": ["a", "a"]}, "distinct"),
        (np.array([[np.nan, 1.0]]), [0], {}, "NaN"),
    ],
)
def test_confusion_matrix_rejects_bad_input_with_clear_message(y_true, y_pred, kwargs, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(y_true, y_pred, **kwargs)


def test_confusion_matrix_rejects_non_numeric_labels():
    with pytest.raises(TypeError, match="y_true must hold numbers"):
        confusion_matrix(["cat", "dog"], [0, 1])


def test_empty_arrays_give_zero_table_when_num_classes_is_known():
    confusion = confusion_matrix([], [], num_classes=3)
    assert confusion.to_numpy().sum() == 0 and confusion.shape == (3, 3)


def test_classification_report_per_class_numbers_match_hand_computation():
    report = classification_report(confusion_matrix(Y_TRUE, Y_PRED))
    per_class = report.loc[[0, 1, 2, 3]]
    np.testing.assert_allclose(per_class["precision"], [_f(v) for v in EXPECTED_PRECISION])
    np.testing.assert_allclose(per_class["recall"], [_f(v) for v in EXPECTED_RECALL])
    np.testing.assert_allclose(per_class["f1-score"], [_f(v) for v in EXPECTED_F1])
    assert list(per_class["support"]) == EXPECTED_SUPPORT
    assert report["support"].dtype == np.int64


def test_zero_over_zero_gives_zero_not_nan():
    report = classification_report(confusion_matrix(Y_TRUE, Y_PRED))
    assert report.loc[2, "precision"] == 0.0  # never predicted
    assert report.loc[3, "recall"] == 0.0  # no samples
    assert not report.isna().any().any()


def test_classification_report_summary_rows_match_hand_computation():
    report = classification_report(confusion_matrix(Y_TRUE, Y_PRED))
    assert list(report.index[-3:]) == ["accuracy", "macro avg", "weighted avg"]
    assert list(report.columns) == ["precision", "recall", "f1-score", "support"]
    np.testing.assert_allclose(report.loc["accuracy", ["precision", "recall", "f1-score"]], [3 / 7] * 3)
    np.testing.assert_allclose(
        report.loc["macro avg", ["precision", "recall", "f1-score"]], [1 / 4, 7 / 24, 4 / 15]
    )
    np.testing.assert_allclose(
        report.loc["weighted avg", ["precision", "recall", "f1-score"]], [8 / 21, 3 / 7, 2 / 5]
    )
    assert list(report.loc[["accuracy", "macro avg", "weighted avg"], "support"]) == [7, 7, 7]


def test_classification_report_accepts_plain_count_arrays():
    from_array = classification_report(EXPECTED_COUNTS)
    from_frame = classification_report(confusion_matrix(Y_TRUE, Y_PRED))
    np.testing.assert_allclose(from_array.to_numpy(dtype=float), from_frame.to_numpy(dtype=float))


def test_tutorial_confusion_matrix_gives_the_tutorial_accuracy():
    # The tutorial's final table; its last epoch reports val_acc 0.9416 on the same 10,000 test images.
    counts = np.array(
        [
            [968, 0, 1, 0, 0, 1, 6, 1, 3, 0],
            [0, 1113, 3, 2, 0, 0, 4, 0, 13, 0],
            [13, 0, 941, 12, 15, 0, 10, 16, 24, 1],
            [1, 1, 13, 951, 1, 10, 1, 5, 21, 6],
            [1, 2, 3, 0, 930, 0, 13, 1, 4, 28],
            [10, 1, 1, 24, 3, 813, 18, 1, 15, 6],
            [7, 3, 2, 1, 5, 10, 928, 0, 2, 0],
            [3, 8, 30, 3, 4, 1, 0, 938, 5, 36],
            [6, 2, 2, 15, 6, 7, 6, 9, 902, 19],
            [12, 7, 5, 10, 14, 3, 0, 12, 14, 932],
        ]
    )
    report = classification_report(counts)
    assert report.loc["accuracy", "f1-score"] == pytest.approx(0.9416)
    assert report.loc[0, "precision"] == pytest.approx(968 / 1021)
    assert report.loc[5, "recall"] == pytest.approx(813 / 892)
    assert report.loc["weighted avg", "support"] == 10000


@pytest.mark.parametrize(
    ("table", "error", "message"),
    [
        (np.ones((2, 3), dtype=int), ValueError, "square"),
        (np.zeros((0, 0), dtype=int), ValueError, "non-empty"),
        (np.array([[1, -1], [0, 2]]), ValueError, "non-negative integer"),
        (np.array([[1.5, 0], [0, 2]]), ValueError, "non-negative integer"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "counts"),
    ],
)
def test_classification_report_rejects_bad_tables(table, error, message):
    with pytest.raises(error, match=message):
        classification_report(table)


def test_classification_report_rejects_crosstab_with_a_dropped_class():
    crosstab = pd.crosstab(pd.Series(Y_TRUE, name="Actual"), pd.Series(Y_PRED, name="Predicted"))
    with pytest.raises(ValueError, match="confusion_matrix"):
        classification_report(crosstab)


def test_format_report_shows_table_then_scores_then_accuracy():
    confusion = confusion_matrix(Y_TRUE, Y_PRED)
    text = format_report(confusion)
    table_at = text.index(confusion.to_string())
    scores_at = text.index("precision")
    accuracy_at = text.index("Overall accuracy: 0.4286 (3/7 correct)")
    assert table_at < scores_at < accuracy_at
    assert "0.6667" in text and "0.2500" in text  # 4 decimals: class 0 precision, macro precision
    assert "macro avg" in text and "weighted avg" in text
    score_lines = text[scores_at:accuracy_at].splitlines()
    assert not any(line.startswith("accuracy") for line in score_lines)


def test_format_report_digits_and_class_names():
    confusion = confusion_matrix([0, 1, 1], [0, 1, 0], labels=["cat", "dog"])
    text = format_report(confusion, digits=2)
    assert "Overall accuracy: 0.67 (2/3 correct)" in text
    assert "cat" in text and "dog" in text
    assert "0.6667" not in text
    with pytest.raises(ValueError, match="digits"):
        format_report(confusion, digits=-1)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=6).flatmap(
        lambda classes: st.tuples(
            st.just(classes),
            st.lists(
                st.tuples(
                    st.integers(min_value=0, max_value=classes - 1),
                    st.integers(min_value=0, max_value=classes - 1),
                ),
                min_size=1,
                max_size=40,
            ),
        )
    )
)
def test_report_invariants_hold_for_any_labels(case):
    classes, pairs = case
    y_true = np.array([actual for actual, _ in pairs])
    y_pred = np.array([predicted for _, predicted in pairs])
    confusion = confusion_matrix(y_true, y_pred, num_classes=classes)
    counts = confusion.to_numpy()
    assert counts.sum() == len(pairs)
    np.testing.assert_array_equal(counts.sum(axis=1), np.bincount(y_true, minlength=classes))
    np.testing.assert_array_equal(counts.sum(axis=0), np.bincount(y_pred, minlength=classes))
    report = classification_report(confusion)
    accuracy = np.mean(y_true == y_pred)
    assert report.loc["accuracy", "precision"] == pytest.approx(accuracy)
    # Weighting recall by support gives back accuracy: sum_c n_c * TP_c / n_c / n = trace / n.
    assert report.loc["weighted avg", "recall"] == pytest.approx(accuracy)
    scores = report[["precision", "recall", "f1-score"]].to_numpy()
    assert np.all((scores >= 0) & (scores <= 1))
