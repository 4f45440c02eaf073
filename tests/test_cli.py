"""The tinynet command on a tiny dataset written as IDX files (no network, a few seconds)."""

from __future__ import annotations

import csv

import matplotlib.image
import numpy as np
import pytest

from tinynet import cli, datasets


def test_train_writes_report_plots_history_and_weights(tmp_path, capsys, tiny_idx_dataset):
    data = tiny_idx_dataset()
    output = tmp_path / "run"
    code = cli.main(["train", "--data", str(data), "--epochs", "3", "--initial-epoch", "1", "--batch-size", "16",
                     "--learning-rate", "0.05", "--momentum", "0.9", "--output", str(output), "--seed", "4"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Train on 96 samples, validate on 40 samples" in printed
    assert "Epoch 2/3" in printed and "Epoch 3/3" in printed and "Epoch 1/3" not in printed
    assert "Total params: 563,114" in printed
    assert "Ground truths of the first 10 test images: [0 1 2 3 4 5 6 7 8 9]" in printed
    assert "Confusion matrix" in printed and "Overall accuracy:" in printed and "macro avg" in printed

    with open(output / "history.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["2", "3"]
    assert {"loss", "acc", "accuracy", "val_loss", "val_acc", "val_accuracy"} <= set(rows[0])
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])

    for name in ("samples", "loss", "accuracy", "confusion_matrix", "predictions"):
        picture = matplotlib.image.imread(output / f"{name}.png")
        assert picture.shape[0] > 100 and picture.shape[1] > 100, name
    with np.load(output / "weights.npz") as weights:
        assert weights[weights.files[0]].shape == (3, 3, 1, 64)  # the first conv kernel, Keras layout
        assert sum(weights[key].size for key in weights.files) == 563_114
    assert not [path for path in output.iterdir() if path.name.startswith(".")], "temporary files left behind"


def test_train_is_repeatable_with_a_seed(tmp_path, capsys, tiny_idx_dataset):
    data = tiny_idx_dataset()
    histories = []
    for run in ("a", "b"):
        output = tmp_path / run
        assert cli.main(["train", "--data", str(data), "--epochs", "2", "--output", str(output), "--verbose", "0",
                         "--seed", "7", "--limit", "48"]) == 0
        histories.append((output / "history.csv").read_text())
    assert histories[0] == histories[1]


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "positive integer"),
    (["--batch-size", "-3"], "positive integer"),
    (["--learning-rate", "nan"], "finite number"),
    (["--dropout", "1.5"], "rate in [0, 1)"),
    (["--dataset", "cifar"], "invalid choice"),
    (["--epochs", "2", "--initial-epoch", "2"], "must be smaller than --epochs"),
])
def test_bad_flags_are_refused_with_a_clear_message(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_data_fetch_reports_the_folder_or_the_failure(tmp_path, monkeypatch, capsys):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"x" * 10)
    monkeypatch.setattr(datasets, "fetch", lambda name: tmp_path)
    assert cli.main(["data", "fetch", "mnist"]) == 0
    assert str(tmp_path) in capsys.readouterr().out

    def unavailable(name):
        raise datasets.DatasetUnavailableError("mnist", [("a source", "it failed")], "put the files there")

    monkeypatch.setattr(datasets, "fetch", unavailable)
    assert cli.main(["data", "fetch", "mnist"]) == 1
    assert "it failed" in capsys.readouterr().err
