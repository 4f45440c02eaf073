"""Tests for tinynet.plotting: each picture is a valid PNG, written atomically, with the right content."""

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

import tinynet.plotting as plotting
from tinynet.plotting import (
    plot_accuracy,
    plot_confusion_matrix,
    plot_images_with_predictions,
    plot_loss,
    plot_samples,
)
from tinynet.report import FASHION_MNIST_CLASSES, confusion_matrix

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The tutorial's own per-epoch numbers: fit(epochs=10, initial_epoch=1) ran epochs 2..10.
TUTORIAL_HISTORY = {
    "loss": [2.2471, 1.5214, 0.8373, 0.6544, 0.5557, 0.4845, 0.4320, 0.3865, 0.3529],
    "acc": [0.2229, 0.5330, 0.7201, 0.7852, 0.8212, 0.8467, 0.8651, 0.8777, 0.8903],
    "val_loss": [2.0851, 0.7091, 0.4701, 0.3801, 0.3248, 0.2823, 0.2511, 0.2240, 0.2036],
    "val_acc": [0.5802, 0.7990, 0.8677, 0.8904, 0.9078, 0.9185, 0.9288, 0.9350, 0.9416],
}
TUTORIAL_EPOCHS = list(range(1, 10))  # History.epoch: 0-based indices


def _images(count=12, size=28, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, size, size), dtype=np.uint8)


def _assert_valid_png(path, min_side=100):
    assert path.exists() and path.stat().st_size > 0
    with open(path, "rb") as stream:
        assert stream.read(8) == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    assert min(pixels.shape[:2]) >= min_side
    # A blank picture would be one colour everywhere.
    assert np.ptp(pixels[..., :3]) > 0


def _only_file_is(folder, name):
    assert sorted(p.name for p in folder.iterdir()) == [name]


@pytest.fixture
def captured_figures(monkeypatch):
    """Record each figure handed to the saver, then save it as usual."""
    figures = []
    original_save = plotting._save_png

    def capture(figure, path):
        figures.append(figure)
        return original_save(figure, path)

    monkeypatch.setattr(plotting, "_save_png", capture)
    return figures


# ------------------------------ every function writes one valid PNG and nothing else


def test_plot_samples_writes_png(tmp_path):
    written = plot_samples(_images(), np.arange(12) % 10, tmp_path / "samples.png")
    assert written == tmp_path / "samples.png"
    _assert_valid_png(written)
    _only_file_is(tmp_path, "samples.png")


def test_plot_loss_writes_png(tmp_path):
    written = plot_loss(TUTORIAL_HISTORY, tmp_path / "loss.png", epochs=TUTORIAL_EPOCHS)
    _assert_valid_png(written)
    _only_file_is(tmp_path, "loss.png")


def test_plot_accuracy_writes_png(tmp_path):
    written = plot_accuracy(TUTORIAL_HISTORY, tmp_path / "accuracy.png", epochs=TUTORIAL_EPOCHS)
    _assert_valid_png(written)
    _only_file_is(tmp_path, "accuracy.png")


def test_plot_confusion_matrix_writes_png(tmp_path):
    confusion = confusion_matrix(np.arange(100) % 10, (np.arange(100) * 7) % 10)
    written = plot_confusion_matrix(confusion, str(tmp_path / "confusion.png"))
    _assert_valid_png(written, min_side=500)
    _only_file_is(tmp_path, "confusion.png")


def test_plot_images_with_predictions_writes_png(tmp_path):
    labels = np.arange(12) % 10
    written = plot_images_with_predictions(_images(), labels, np.roll(labels, 1), tmp_path / "pred.png")
    _assert_valid_png(written)
    _only_file_is(tmp_path, "pred.png")


def test_missing_folders_are_created(tmp_path):
    written = plot_loss({"loss": [1.0, 0.5]}, tmp_path / "a" / "b" / "loss.png")
    _assert_valid_png(written)


# ------------------------------ atomic writing


def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "loss.png"
    target.write_bytes(b"old picture")

    def half_written_then_crash(self, stream, **kwargs):
        stream.write(PNG_SIGNATURE + b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_written_then_crash)
    with pytest.raises(RuntimeError, match="disk full"):
        plot_loss(TUTORIAL_HISTORY, target)
    assert target.read_bytes() == b"old picture"
    _only_file_is(tmp_path, "loss.png")


def test_overwrites_an_existing_picture(tmp_path):
    target = tmp_path / "loss.png"
    target.write_bytes(b"old picture")
    plot_loss(TUTORIAL_HISTORY, target)
    _assert_valid_png(target)
    _only_file_is(tmp_path, "loss.png")


def test_path_must_be_a_png_file(tmp_path):
    with pytest.raises(ValueError, match=r"\.png"):
        plot_loss(TUTORIAL_HISTORY, tmp_path / "loss.jpg")
    with pytest.raises(ValueError, match="folder"):
        plot_loss(TUTORIAL_HISTORY, tmp_path)
    assert list(tmp_path.iterdir()) == []


# ------------------------------ what the pictures show


def test_loss_curve_uses_keras_epoch_numbers_and_correct_labels(tmp_path, captured_figures):
    plot_loss(TUTORIAL_HISTORY, tmp_path / "loss.png", epochs=TUTORIAL_EPOCHS)
    (axis,) = captured_figures[0].axes
    train_line, test_line = axis.get_lines()
    # History.epoch [1..9] is shown as "Epoch 2/10" .. "Epoch 10/10".
    np.testing.assert_array_equal(train_line.get_xdata(), np.arange(2, 11))
    np.testing.assert_allclose(train_line.get_ydata(), TUTORIAL_HISTORY["loss"])
    np.testing.assert_allclose(test_line.get_ydata(), TUTORIAL_HISTORY["val_loss"])
    assert axis.get_ylabel() == "loss"
    assert axis.get_xlabel() == "epoch"
    assert "loss" in axis.get_title().lower()
    assert [text.get_text() for text in axis.get_legend().get_texts()] == ["train", "test"]


def test_epochs_default_to_one_based_positions(tmp_path, captured_figures):
    plot_loss({"loss": [3.0, 2.0, 1.0]}, tmp_path / "loss.png")
    (axis,) = captured_figures[0].axes
    (train_line,) = axis.get_lines()  # no val_loss: the train curve alone
    np.testing.assert_array_equal(train_line.get_xdata(), [1, 2, 3])


@pytest.mark.parametrize(("train_key", "validation_key"), [("acc", "val_acc"), ("accuracy", "val_accuracy")])
def test_accuracy_reads_keras_22_and_23_keys(tmp_path, captured_figures, train_key, validation_key):
    history = {"loss": [1.0, 0.5], train_key: [0.5, 0.8], validation_key: [0.6, 0.9]}
    plot_accuracy(history, tmp_path / "accuracy.png")
    (axis,) = captured_figures[0].axes
    train_line, test_line = axis.get_lines()
    np.testing.assert_allclose(train_line.get_ydata(), [0.5, 0.8])
    np.testing.assert_allclose(test_line.get_ydata(), [0.6, 0.9])
    assert axis.get_ylabel() == "accuracy"


def test_history_object_supplies_its_epoch_list(tmp_path, captured_figures):
    class History:
        history = TUTORIAL_HISTORY
        epoch = TUTORIAL_EPOCHS

    plot_accuracy(History(), tmp_path / "accuracy.png")
    (axis,) = captured_figures[0].axes
    np.testing.assert_array_equal(axis.get_lines()[0].get_xdata(), np.arange(2, 11))


def test_samples_show_labels_or_class_names_under_images(tmp_path, captured_figures):
    labels = np.array([9, 0, 3, 1, 2, 5, 4, 8, 7, 6, 1, 1])
    plot_samples(_images(), labels, tmp_path / "digits.png")
    plot_samples(
        _images()[..., None], np.eye(10)[labels], tmp_path / "fashion.png", class_names=FASHION_MNIST_CLASSES
    )
    digit_axes, fashion_axes = captured_figures[0].axes, captured_figures[1].axes
    assert len(digit_axes) == 10  # the default 2 x 5 grid takes the first ten
    assert [axis.get_xlabel() for axis in digit_axes] == [str(label) for label in labels[:10]]
    assert [axis.get_xlabel() for axis in fashion_axes] == [FASHION_MNIST_CLASSES[i] for i in labels[:10]]
    assert digit_axes[0].get_images()[0].get_cmap().name == "gray"


def test_samples_with_fewer_images_than_cells_drop_empty_rows(tmp_path, captured_figures):
    plot_samples(_images(3), [1, 2, 3], tmp_path / "three.png", rows=2, cols=5)
    visible = [axis for axis in captured_figures[0].axes if axis.axison]
    assert len(visible) == 3
    assert len(captured_figures[0].axes) == 5  # one row kept, not two


def test_wrong_predictions_are_marked_red(tmp_path, captured_figures):
    y_true = np.array([0, 1, 2, 3, 4])
    y_pred = np.array([0, 7, 2, 3, 9])
    plot_images_with_predictions(_images(5), y_true, y_pred, tmp_path / "pred.png", rows=1, cols=5)
    axes = captured_figures[0].axes
    red = matplotlib.colors.to_rgba(plotting._WRONG_COLOR)
    label_is_red = [matplotlib.colors.to_rgba(axis.xaxis.label.get_color()) == red for axis in axes]
    assert label_is_red == [False, True, False, False, True]
    assert "true: 1\npred: 7" == axes[1].get_xlabel()
    assert "2 of 5" in captured_figures[0].get_suptitle()


def test_the_title_says_how_many_of_the_images_shown_are_wrong(tmp_path, captured_figures):
    # 569 of 10000 wrong, but the first ten are right: the title must not suggest red ones among them.
    y_true = np.arange(10000) % 10
    y_pred = y_true.copy()
    y_pred[10:579] = (y_true[10:579] + 1) % 10
    images = np.zeros((10000, 4, 4), dtype=np.uint8)
    plot_images_with_predictions(images, y_true, y_pred, tmp_path / "right.png")
    assert captured_figures[0].get_suptitle() == "569 of 10000 predictions wrong; none of the 10 shown"

    y_pred[[2, 7]] = 0
    plot_images_with_predictions(images, y_true, y_pred, tmp_path / "two.png")
    assert captured_figures[1].get_suptitle() == "571 of 10000 predictions wrong; 2 of the 10 shown (red)"

    plot_images_with_predictions(images, y_true, y_pred, tmp_path / "errors.png", only_errors=True)
    assert captured_figures[2].get_suptitle() == "The first 10 misclassified images (571 of 10000 predictions wrong)"


def test_only_errors_picks_the_misclassified_images(tmp_path, captured_figures):
    y_true = np.arange(12) % 10
    y_pred = y_true.copy()
    y_pred[[3, 8]] = 0
    plot_images_with_predictions(_images(), y_true, y_pred, tmp_path / "errors.png", only_errors=True)
    shown = [axis.get_xlabel() for axis in captured_figures[0].axes if axis.axison]
    assert shown == ["true: 3\npred: 0", "true: 8\npred: 0"]


def test_only_errors_without_errors_still_writes_a_picture(tmp_path):
    labels = np.arange(5)
    written = plot_images_with_predictions(
        _images(5), labels, labels, tmp_path / "none.png", only_errors=True
    )
    _assert_valid_png(written, min_side=20)


def test_confusion_heatmap_annotates_every_cell_with_readable_colours(tmp_path, captured_figures):
    y_true = np.repeat(np.arange(10), 20)
    y_pred = y_true.copy()
    y_pred[::10] = (y_pred[::10] + 1) % 10  # a few mistakes off the diagonal
    confusion = confusion_matrix(y_true, y_pred, labels=FASHION_MNIST_CLASSES)
    plot_confusion_matrix(confusion, tmp_path / "confusion.png")
    axis = captured_figures[0].axes[0]  # the heatmap; the second axes is the colorbar
    cell_texts = {
        (int(round(text.get_position()[1])), int(round(text.get_position()[0]))): text for text in axis.texts
    }
    assert len(cell_texts) == 100
    counts = confusion.to_numpy()
    for (row, column), text in cell_texts.items():
        assert text.get_text() == str(counts[row, column])
    # Dark diagonal cells get white text, pale off-diagonal cells black, empty cells grey.
    assert cell_texts[(0, 0)].get_color() == "white"
    assert cell_texts[(0, 1)].get_color() == "black"
    assert cell_texts[(0, 5)].get_color() not in ("white", "black")
    assert axis.get_xlabel() == "Predicted" and axis.get_ylabel() == "Actual"
    assert [label.get_text() for label in axis.get_xticklabels()] == list(FASHION_MNIST_CLASSES)
    assert [label.get_text() for label in axis.get_yticklabels()] == list(FASHION_MNIST_CLASSES)
    assert len(captured_figures[0].axes) == 2  # heatmap and colorbar


def test_normalized_confusion_shows_row_fractions(tmp_path, captured_figures):
    counts = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 2]])
    plot_confusion_matrix(counts, tmp_path / "normalized.png", normalize=True, title="Recall view")
    axis = captured_figures[0].axes[0]
    texts = [text.get_text() for text in axis.texts]
    assert texts == ["0.75", "0.25", "0", "0", "0", "0", "0.50", "0", "0.50"]
    assert axis.get_title() == "Recall view"


# ------------------------------ clear errors on bad input


@pytest.mark.parametrize(
    ("history", "kwargs", "message"),
    [
        ({"val_loss": [1.0]}, {}, "no 'loss' entry"),
        ({"loss": [1.0, 0.5], "val_loss": [1.0]}, {}, "one value per epoch"),
        ({"loss": []}, {}, "non-empty"),
        ({"loss": [1.0, 0.5]}, {"epochs": [0, 1, 2]}, "one 0-based epoch index per value"),
        ({"loss": [1.0, 0.5]}, {"epochs": [-1, 0]}, "0-based epoch indices"),
    ],
)
def test_plot_loss_rejects_bad_history(tmp_path, history, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_loss(history, tmp_path / "loss.png", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_plot_accuracy_names_the_keys_it_looked_for(tmp_path):
    with pytest.raises(ValueError, match="'acc' or 'accuracy'.*keys are \\['loss'\\]"):
        plot_accuracy({"loss": [1.0]}, tmp_path / "accuracy.png")


def test_history_must_be_a_dict_or_history_object(tmp_path):
    with pytest.raises(TypeError, match="History"):
        plot_loss([1.0, 0.5], tmp_path / "loss.png")


@pytest.mark.parametrize(
    ("images", "labels", "kwargs", "error", "message"),
    [
        (np.zeros((4, 28)), [0, 1, 2, 3], {}, ValueError, "images must have shape"),
        (np.zeros((4, 28, 28, 2)), [0, 1, 2, 3], {}, ValueError, "images must have shape"),
        (np.zeros((0, 28, 28)), [], {}, ValueError, "empty"),
        (np.zeros((4, 28, 28)), [0, 1, 2], {}, ValueError, "labels has 3 entries but images has 4"),
        (np.zeros((4, 28, 28)), [0, 1, 2, 3], {"rows": 0}, ValueError, "rows must be a positive integer"),
        (np.zeros((2, 28, 28)), [0, 12], {"class_names": FASHION_MNIST_CLASSES}, ValueError, "label 12"),
        (np.array([["a"]]), [0], {}, TypeError, "pixel numbers"),
    ],
)
def test_plot_samples_rejects_bad_input(tmp_path, images, labels, kwargs, error, message):
    with pytest.raises(error, match=message):
        plot_samples(images, labels, tmp_path / "samples.png", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_plot_images_with_predictions_rejects_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match="y_pred has 2 entries but images has 3"):
        plot_images_with_predictions(_images(3), [0, 1, 2], [0, 1], tmp_path / "pred.png")


@pytest.mark.parametrize(
    ("confusion", "message"),
    [
        (np.ones((2, 3), dtype=int), "square"),
        (np.array([[1, -2], [0, 1]]), "non-negative"),
    ],
)
def test_plot_confusion_matrix_rejects_bad_tables(tmp_path, confusion, message):
    with pytest.raises(ValueError, match=message):
        plot_confusion_matrix(confusion, tmp_path / "confusion.png")
    assert list(tmp_path.iterdir()) == []


def test_plot_confusion_matrix_rejects_crosstab_with_dropped_class(tmp_path):
    import pandas as pd

    crosstab = pd.crosstab(pd.Series([0, 1, 2], name="Actual"), pd.Series([0, 0, 2], name="Predicted"))
    with pytest.raises(ValueError, match="crosstab drops classes"):
        plot_confusion_matrix(crosstab, tmp_path / "confusion.png")
