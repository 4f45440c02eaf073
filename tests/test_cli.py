"""The tinynet command on a tiny dataset written as IDX files (no network, a few seconds)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import tinynet
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
    # Captured output is not a terminal: each epoch leaves one bar line, its finished one, and no running ETAs.
    assert "ETA" not in printed
    assert [line[:6] for line in printed.splitlines() if "/96 [" in line] == ["96/96 ", "96/96 "]
    assert "\n\n96/96" not in printed  # no empty line between an epoch's header and its bar

    with open(output / "history.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["2", "3"]  # numbered as printed ("Epoch 2/3"), unlike CSVLogger
    assert {"loss", "acc", "val_loss", "val_acc"} <= set(rows[0])
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])

    for name in ("samples", "loss", "accuracy", "confusion_matrix", "predictions", "misclassified"):
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


# ------------------------------------------------------------------------------- what a user meets on bad input
def _bad_data(tmp_path, kind):
    """A --data PATH that cannot be used: each kind a user has actually passed."""
    path = tmp_path / {"missing": "nowhere", "random-npz": "random.npz", "fake-zip": "fake.zip",
                       "empty-folder": "empty", "text-file": "notes.txt"}[kind]
    if kind == "random-npz":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "fake-zip":
        path.write_bytes(b"PK\x03\x04" + b"not really a zip" * 8)
    elif kind == "empty-folder":
        path.mkdir()
    elif kind == "text-file":
        path.write_text("x_train,y_train\n1,2\n")
    return path


@pytest.mark.parametrize("kind", ["missing", "random-npz", "fake-zip", "empty-folder", "text-file"])
def test_bad_data_is_one_line_and_exit_1_with_nothing_written(tmp_path, capsys, kind):
    path = _bad_data(tmp_path, kind)
    output = tmp_path / "run"
    assert cli.main(["train", "--data", str(path), "--output", str(output)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith("tinynet train: error: --data: ") and str(path) in captured.err
    assert captured.out == ""
    assert not output.exists()


def test_debug_shows_the_traceback_behind_the_line(tmp_path):
    path = _bad_data(tmp_path, "text-file")
    with pytest.raises(ValueError, match="not an npz archive"):
        cli.main(["train", "--data", str(path), "--output", str(tmp_path / "run"), "--debug"])


def test_the_installed_command_prints_one_line_not_a_traceback(tmp_path):
    # The whole process, as a shell sees it: stderr is one line and the exit status is 1.
    finished = subprocess.run([sys.executable, "-m", "tinynet", "train", "--data", str(tmp_path / "nowhere"),
                               "--output", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 1
    assert finished.stderr.splitlines() == [
        f"tinynet train: error: --data: path {str(tmp_path / 'nowhere')!r} is neither a file nor a folder"]


@pytest.mark.parametrize("kind, problem", [
    ("missing", "no such file"),
    ("garbage", "is not a tinynet model file"),
    ("folder", "is a folder"),
])
def test_bad_resume_file_is_refused_before_the_dataset_is_loaded(tmp_path, capsys, monkeypatch, tiny_idx_dataset,
                                                                 kind, problem):
    data = tiny_idx_dataset()
    resume = tmp_path / "model.tnz"
    if kind == "garbage":
        resume.write_bytes(np.random.default_rng(1).bytes(2048))
    elif kind == "folder":
        resume.mkdir()
    loads = []
    monkeypatch.setattr(cli, "_load", lambda *args: loads.append(args))
    output = tmp_path / "run"
    assert cli.main(["train", "--data", str(data), "--resume", str(resume), "--output", str(output)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith("tinynet train: error: --resume: ")
    assert str(resume) in captured.err and problem in captured.err
    assert loads == [], "the dataset was loaded before the resume file was checked"
    assert not output.exists()


def test_an_output_that_cannot_be_a_folder_is_one_line(tmp_path, capsys, tiny_idx_dataset):
    data = tiny_idx_dataset()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cli.main(["train", "--data", str(data), "--output", str(blocker / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinynet train: error: --output: ") and err.count("\n") == 1


# ----------------------------------------------------------------------------------------------- help, version
def test_version_names_the_program_and_its_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"tinynet {tinynet.__version__}\n"


def test_help_is_plain_text_with_each_default_said_once(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = capsys.readouterr().out
    assert "``" not in top and "::" not in top
    assert top.startswith("usage: tinynet ") and "tinynet train --resume" in top  # the examples keep their lines
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    train_help = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in train_help and "(default: False)" not in train_help
    assert "output folder (default: runs/<dataset>)" in train_help
    assert train_help.count("runs/<dataset>") == 1
    assert "samples per gradient step (default: 32)" in train_help


def test_bench_help_calls_itself_tinynet_bench(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: tinynet bench ")


# ------------------------------------------------------------------------------------------------- the examples
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run_example(name: str, *flags: str, cache: Path) -> subprocess.CompletedProcess:
    """Run an example with an empty cache of its own and no source of data: no web, and no npm on PATH."""
    no_programs = cache.parent / "no-programs-here"
    no_programs.mkdir(exist_ok=True)
    environment = dict(os.environ, TINYNET_OFFLINE="1", TINYNET_DATA_DIR=str(cache), PATH=str(no_programs),
                       PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, str(EXAMPLES / name), *flags], capture_output=True, text=True,
                          env=environment, timeout=600)


@pytest.mark.parametrize("name, dataset", [("fashion_mnist_cnn.py", "fashion_mnist"), ("mnist_cnn.py", "mnist")])
def test_examples_offline_without_data_say_so_in_one_line(tmp_path, name, dataset):
    finished = _run_example(name, "--output", str(tmp_path / "run"), cache=tmp_path / "empty-cache")
    assert finished.returncode == 1
    (line,) = finished.stderr.splitlines()
    assert line == (f"{name}: error: could not get the {dataset} dataset; every source failed; "
                    f"`tinynet data fetch {dataset}` says why each source failed, or pass --data PATH")
    assert not (tmp_path / "run").exists()


def test_fashion_example_trains_on_data_given_with_data(tmp_path, tiny_idx_dataset):
    finished = _run_example("fashion_mnist_cnn.py", "--data", str(tiny_idx_dataset()), "--epochs", "2",
                            "--output", str(tmp_path / "run"), cache=tmp_path / "empty-cache")
    assert finished.returncode == 0, finished.stderr
    assert "Epoch 2/2" in finished.stdout and (tmp_path / "run" / "predictions.png").is_file()
    bad = _run_example("fashion_mnist_cnn.py", "--data", str(tmp_path / "nowhere"), cache=tmp_path / "empty-cache")
    assert bad.returncode == 1 and bad.stderr.startswith("fashion_mnist_cnn.py: error: --data: ")
    assert len(bad.stderr.splitlines()) == 1


def test_bench_outside_a_source_tree_says_where_the_suite_lives(tmp_path, monkeypatch, capsys):
    import importlib.util

    from tinynet import cli

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "benchmarks" else real_find_spec(name, *args))
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "tinynet" / "cli.py"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", "--help"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "source tree" in error and "python -m benchmarks" in error


def test_benchmark_results_go_under_the_working_directory():
    from benchmarks.cli import DEFAULT_OUTPUT_DIR

    assert not DEFAULT_OUTPUT_DIR.is_absolute()  # resolved against the working directory at run time
