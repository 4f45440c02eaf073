"""The ``tinynet`` command: train the tutorial CNN, fetch datasets, run the benchmarks.

::

    tinynet train                          # the Keras MNIST tutorial, its settings, plots in runs/mnist
    tinynet train --dataset fashion_mnist --epochs 5 --learning-rate 0.01 --momentum 0.9
    tinynet train --optimizer adam --lr-schedule exponential:decay_steps=1000,decay_rate=0.9
    tinynet train --checkpoint runs/model.tnz      # save the whole model after every epoch
    tinynet train --resume runs/model.tnz --checkpoint runs/model.tnz   # continue where it stopped
    tinynet train --inspect --limit 3200   # also record inside each layer: inspect.csv and three PNGs
    tinynet data fetch mnist               # fill the dataset cache and say where it is
    tinynet explain                        # real training steps, tensor by tensor, in one offline HTML page
    tinynet bench --quick                  # the benchmark suite (see benchmarks/)

A problem with what the command was given (a missing or unreadable ``--data``, a bad ``--resume`` file, an
``--output`` that cannot be created) is reported in one line, ``tinynet train: error: ...``, with exit status 1;
``--debug`` shows the traceback instead. Bad flags are argparse's: usage, one line, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

import tinynet
from tinynet.cli_options import (
    LR_SCHEDULE_HELP,
    OPTIMIZERS,
    TUTORIAL,
    lr_schedule,
    non_negative_float,
    non_negative_int,
    optimizer_from_args,
    positive_int,
    rate,
)

# The help's own words: the module docstring above is reStructuredText for the documentation, not for a terminal.
_DESCRIPTION = "tinynet: train the Keras MNIST tutorial's CNN, fetch its datasets, run the benchmarks."
_EXAMPLES = "examples:\n" + "\n".join(line for line in __doc__.splitlines() if line.startswith("    tinynet "))

class CommandError(Exception):
    """Something the command was given cannot be used (a file, a folder); the message says which and why."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where there is none (``None``, or ``False`` for a switch) or the help
    already says it; keeps the examples' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinynet", description=_DESCRIPTION, epilog=_EXAMPLES,
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"tinynet {tinynet.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train the tutorial CNN and write its report and plots",
                                description="Train the Keras MNIST tutorial's CNN and write its report and plots.",
                                formatter_class=_HelpFormatter)
    train.add_argument("--dataset", choices=["mnist", "fashion_mnist"], default="mnist", help="which dataset")
    train.add_argument("--data", type=Path, default=None, metavar="PATH",
                       help="use dataset files you already have (a Keras .npz or a folder of IDX files)")
    train.add_argument("--epochs", type=positive_int, default=TUTORIAL["epochs"],
                       help="the last epoch's number (Keras's 'epochs')")
    train.add_argument("--initial-epoch", type=non_negative_int, default=TUTORIAL["initial_epoch"],
                       help="epochs already done; the tutorial starts at 1, so it runs epochs 2..10")
    train.add_argument("--batch-size", type=positive_int, default=TUTORIAL["batch_size"],
                       help="samples per gradient step")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                       help="the optimizer, with Keras 2.2.4's equations and hyperparameters (sgd: the "
                            "tutorial's settings)")
    train.add_argument("--learning-rate", "--lr", type=non_negative_float, default=None,
                       help=f"learning rate (default: {TUTORIAL['learning_rate']} for sgd, as the tutorial; Keras "
                            "2.2.4's for the others: rmsprop 0.001, adagrad 0.01, adadelta 1.0, adam 0.001, adamax "
                            "0.002, nadam 0.002, adamw 0.001)")
    train.add_argument("--lr-schedule", type=lr_schedule, default=None, metavar="NAME:key=value,...",
                       help=LR_SCHEDULE_HELP)
    train.add_argument("--momentum", type=non_negative_float, default=TUTORIAL["momentum"],
                       help="SGD's momentum (sgd only)")
    train.add_argument("--decay", type=non_negative_float, default=None,
                       help=f"Keras 2's learning-rate decay: step t uses lr / (1 + decay * t) (default: "
                            f"{TUTORIAL['decay']:g} for sgd, as the tutorial; 0 for the others; nadam has none)")
    train.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True,
                       help="Nesterov momentum (sgd only; the tutorial sets it; with momentum 0 it changes nothing)")
    train.add_argument("--dropout", type=rate, default=TUTORIAL["dropout"], help="dropout rate after each block")
    train.add_argument("--seed", type=non_negative_int, default=1, help="seed for weights, shuffles, dropout")
    train.add_argument("--limit", type=positive_int, default=None, metavar="N",
                       help="train on the first N training images only (quick runs)")
    train.add_argument("--output", type=Path, default=None, metavar="FOLDER",
                       help="output folder (default: runs/<dataset>)")
    train.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1,
                       help="0 silent, 1 a progress bar (one line per epoch when not a terminal), 2 one line per "
                            "epoch")
    train.add_argument("--checkpoint", type=Path, default=None, metavar="PATH",
                       help="save the whole model (weights, optimizer and random state, epochs done) to PATH after "
                            "every epoch, atomically: the previous checkpoint survives an interrupted save")
    train.add_argument("--resume", type=Path, default=None, metavar="PATH",
                       help="continue training the model saved at PATH (by --checkpoint or model.save) from the "
                            "epoch it reached, exactly as if it had not stopped; the file's optimizer, dropout and "
                            "random state replace --initial-epoch, --seed, --dropout and the optimizer flags "
                            "(--optimizer, --learning-rate, --lr-schedule, --momentum, --decay, --nesterov)")
    train.add_argument("--save-keras", type=Path, default=None, metavar="PATH",
                       help="at the end of training, save the model for Keras 3 (PATH ending in .keras or .h5; "
                            "keras.saving.load_model reads it); needs pip install 'tinynet[keras]'")
    train.add_argument("--export-onnx", type=Path, default=None, metavar="PATH",
                       help="at the end of training, export the model as an ONNX graph (NHWC input, dynamic "
                            "batch) for ONNX Runtime; needs pip install 'tinynet[onnx]'")

    train.add_argument("--inspect", action="store_true",
                       help="record each layer's gradient norms, update ratios, activation statistics and dead "
                            "ReLU units during training (tinynet.learn.TrainingRecorder); write inspect.csv, "
                            "gradient_norms.png, update_ratios.png and activations.png, and print the summary "
                            "with FLOPs and activation memory")
    train.add_argument("--inspect-every", type=positive_int, default=10, metavar="STEPS",
                       help="with --inspect, record one training step in every STEPS")
    train.add_argument("--debug", action="store_true",
                       help="on a bad --data, --resume or --output, show the full traceback instead of one line")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel training over MPI: run as mpiexec -n N tinynet train --distributed "
                            "(--batch-size is the global batch; rank 0 prints and writes; docs/distributed.md)")

    data = commands.add_parser("data", help="manage the dataset cache")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("fetch", help="download or copy a dataset into the cache")
    fetch.add_argument("name", nargs="?", choices=["mnist", "fashion_mnist"], default="mnist")

    from tinynet.learn.explain.command import add_parser as add_explain_parser

    add_explain_parser(commands, _HelpFormatter)

    commands.add_parser("bench", help="run the benchmark suite (tinynet bench --help lists its options)",
                        add_help=False)
    return parser


def _bench(argv: list[str]) -> int:
    """Run the benchmark suite, which lives in tinynet's source tree (``benchmarks/``), not in the installed package:
    found beside the tinynet being run (an editable install or a checkout) or in the working directory."""
    import importlib.util

    if importlib.util.find_spec("benchmarks") is None:
        candidates = [Path(__file__).resolve().parent.parent, Path.cwd()]
        root = next((folder for folder in candidates if (folder / "benchmarks" / "cli.py").is_file()), None)
        if root is None:
            print("tinynet bench: error: the benchmark suite is part of tinynet's source tree, not of the installed "
                  "package; run it from a checkout of tinynet (python -m benchmarks, or tinynet bench there)",
                  file=sys.stderr)
            return 1
        sys.path.insert(0, str(root))
    from benchmarks.cli import main as bench_main

    return bench_main(argv, prog="tinynet bench")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "data":
        return _fetch(args.name)
    if args.command == "explain":
        from tinynet.learn.explain.command import run as explain

        return explain(args)
    if args.checkpoint is not None and args.checkpoint.is_dir():
        build_parser().error(f"--checkpoint: {args.checkpoint} is a folder; expected a file path")
    if args.checkpoint is not None and any(parent.exists() and not parent.is_dir()
                                           for parent in args.checkpoint.parents):
        build_parser().error(f"--checkpoint: {args.checkpoint} lies inside something that is not a folder")
    if args.save_keras is not None and args.save_keras.suffix.lower() not in (".keras", ".h5"):
        build_parser().error(f"--save-keras: {args.save_keras} must end in .keras or .h5 (Keras 3's formats)")
    from tinynet.interop import dependencies

    for flag, path, require in (("--save-keras", args.save_keras, dependencies.h5py),
                                ("--export-onnx", args.export_onnx, dependencies.onnx)):
        if path is not None:
            try:  # checked before training, not after an hour of it
                require()
            except ImportError as error:
                build_parser().error(f"{flag}: {error}")
    if args.resume is None and args.initial_epoch >= args.epochs:
        build_parser().error(f"--initial-epoch ({args.initial_epoch}) must be smaller than --epochs ({args.epochs})")
    if args.optimizer != "sgd" and args.momentum != 0:
        build_parser().error(f"--momentum applies to --optimizer sgd only, not {args.optimizer}")
    if args.lr_schedule is not None and args.decay is not None:
        build_parser().error("--decay and --lr-schedule cannot be combined (both decay the learning rate)")
    if args.optimizer == "nadam" and args.decay:
        build_parser().error("--decay: nadam has no decay in Keras 2.2.4 (use --lr-schedule)")
    try:
        return train(args)
    except CommandError as error:
        print(f"tinynet train: error: {error}", file=sys.stderr)
        return 1


@contextlib.contextmanager
def _problems_with(flag: str, path: Path | None, debug: bool) -> Iterator[None]:
    """Turn a ``ValueError``/``OSError`` about ``flag``'s file into a one-line :class:`CommandError`.

    These are the user's files, so a traceback would only bury the one sentence that matters (which file, what is
    wrong with it); ``--debug`` lets the original exception through for a bug report.
    """
    try:
        yield
    except (ValueError, OSError) as error:
        if debug:
            raise
        raise CommandError(f"{flag}: {_one_line(error, path)}") from error


def _one_line(error: BaseException, path: Path | None) -> str:
    """The error's message on one line, naming ``path`` if it does not already."""
    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        message = f"{error.filename}: {error.strerror}"  # "[Errno 13] Permission denied: 'x'" reads worse
    message = message.removeprefix("load_model: ")
    if path is not None and str(path) not in message:
        message = f"{path}: {message}"
    return message


def _fetch(name: str) -> int:
    from tinynet import datasets

    try:
        folder = datasets.fetch(name)
    except datasets.DatasetUnavailableError as error:
        print(f"tinynet data fetch: {error}", file=sys.stderr)
        return 1
    print(f"{name}: cached in {folder}")
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            print(f"  {path.name}  {path.stat().st_size:,} bytes")
    return 0


def _load(dataset: str, path: Path | None):
    from tinynet import datasets

    return datasets.DATASETS[dataset].load_data(path)


def train(args: argparse.Namespace) -> int:
    """Train, evaluate and report, following the tutorial step by step (with ``--distributed``, as one of the
    processes mpiexec started: only rank 0 prints and writes files)."""
    if not args.distributed:
        return _train(args, None)
    from tinynet import distributed

    world = distributed.init()
    if world.is_chief:
        return _train(args, world)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        return _train(args, world)


def _train(args: argparse.Namespace, world) -> int:
    from tinynet import applications, plotting, report
    from tinynet.callbacks import Callback, History, ModelCheckpoint
    from tinynet.datasets import DatasetUnavailableError
    from tinynet.models import NumericalFaultError, saving
    from tinynet.utils import set_random_seed, to_categorical

    output = args.output or Path("runs") / args.dataset
    class_names = report.FASHION_MNIST_CLASSES if args.dataset == "fashion_mnist" else None

    # Everything that can be wrong with the user's files is found before anything is written: the resume file
    # first (it is small; the dataset may take a while), then the data, then the output folder.
    model = None if args.resume is None else _resumed_model(args)
    try:
        # Without --data the files come from tinynet's checked cache, so a problem there is the dataset's.
        with _problems_with("--data" if args.data is not None else f"--dataset {args.dataset}", args.data,
                            args.debug):
            (x_train, y_train), (x_test, y_test) = _load(args.dataset, args.data)
    except DatasetUnavailableError as error:
        print(f"tinynet train: error: {error}", file=sys.stderr)  # several lines on purpose: each source and why
        return 1
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    classes = int(max(y_train.max(), y_test.max())) + 1
    if model is not None:
        _check_resumed_model_fits(model, args.resume, x_train.shape[1:] + (1,), classes)
    with _problems_with("--output", output, args.debug):
        output.mkdir(parents=True, exist_ok=True)
        if not os.access(output, os.W_OK | os.X_OK):
            raise PermissionError(f"{output}: the folder is not writable")

    print(f"Training samples: {len(x_train)}, test samples: {len(x_test)}")
    print(f"Training images {x_train.shape}, labels {y_train.shape}; test images {x_test.shape}")
    if world is None or world.is_chief:
        plotting.plot_samples(x_train, y_train, output / "samples.png", class_names=class_names)

    # Preprocessing as in the tutorial: one-hot labels, a channel axis, pixels scaled to [0, 1] (in float32).
    y_train_onehot = to_categorical(y_train, num_classes=classes)
    y_test_onehot = to_categorical(y_test, num_classes=classes)
    x_train = x_train[..., np.newaxis].astype(np.float32) / np.float32(255)
    x_test = x_test[..., np.newaxis].astype(np.float32) / np.float32(255)

    if model is not None:
        print(f"Resuming from {args.resume}: {model.epochs_done} epochs done, continuing at epoch "
              f"{model.epochs_done + 1}/{args.epochs}")
        initial_epoch = model.epochs_done
    else:
        set_random_seed(args.seed)
        model = applications.mnist_cnn(input_shape=x_train.shape[1:], classes=classes, dropout=args.dropout)
        model.compile(optimizer=optimizer_from_args(args), loss="categorical_crossentropy", metrics=["accuracy"])
        initial_epoch = args.initial_epoch
    if world is not None:
        from tinynet.distributed import DistributedOptimizer

        model.optimizer = DistributedOptimizer(model.optimizer, world)
    if args.verbose:
        model.summary(batch_size=args.batch_size if args.inspect else None)

    checkpoints: list[Callback] = (
        [] if args.checkpoint is None else [ModelCheckpoint(args.checkpoint, save_best_only=False)])
    recorder = None
    if args.inspect:
        from tinynet.learn.recorder import TrainingRecorder

        recorder = TrainingRecorder(every=args.inspect_every)
        checkpoints.append(recorder)
    started = time.perf_counter()
    try:
        history = model.fit(x_train, y_train_onehot, batch_size=args.batch_size, epochs=args.epochs,
                            verbose=args.verbose, validation_data=(x_test, y_test_onehot), shuffle=True,
                            initial_epoch=initial_epoch, callbacks=checkpoints)
    except NumericalFaultError as error:
        print(f"tinynet train: {error}", file=sys.stderr)
        if args.checkpoint is not None and args.checkpoint.exists():
            print(f"tinynet train: the checkpoint of the last good epoch is intact: {args.checkpoint}",
                  file=sys.stderr)
        return 1
    training_seconds = time.perf_counter() - started
    if world is not None and not world.is_chief:
        return 0  # the weights are rank 0's to the bit: it evaluates, reports and writes alone

    probabilities = model.predict(x_test, batch_size=args.batch_size, verbose=args.verbose)
    predicted = probabilities.argmax(axis=1)
    print("Ground truths of the first 10 test images:", np.array(y_test[:10]))
    print("Predictions for the first 10 test images: ", predicted[:10])

    confusion = report.confusion_matrix(y_test, predicted, num_classes=classes, labels=class_names)
    print(report.format_report(confusion))
    print(f"Training took {training_seconds:.1f} s "
          f"({training_seconds / max(len(history.epoch), 1):.1f} s per epoch)")

    # A resumed run reports every epoch: those in the resumed file, then this run's.
    every_epoch = History()
    every_epoch.epoch, every_epoch.history = saving.merged_history(model)
    _write_history_csv(every_epoch, output / "history.csv")
    model.save_weights(output / "weights.npz")
    plotting.plot_loss(every_epoch.history, output / "loss.png", epochs=every_epoch.epoch)
    plotting.plot_accuracy(every_epoch.history, output / "accuracy.png", epochs=every_epoch.epoch)
    plotting.plot_confusion_matrix(confusion, output / "confusion_matrix.png")
    plotting.plot_images_with_predictions(x_test[..., 0], y_test, predicted, output / "predictions.png",
                                          class_names=class_names)
    # The first ten test images are usually all right; this one shows what the network gets wrong.
    plotting.plot_images_with_predictions(x_test[..., 0], y_test, predicted, output / "misclassified.png",
                                          class_names=class_names, only_errors=True)
    print(f"Wrote history.csv, weights.npz, samples.png, loss.png, accuracy.png, confusion_matrix.png, "
          f"predictions.png and misclassified.png to {output}")
    if args.save_keras is not None:
        model.save(args.save_keras)
        print(f"Saved the model for Keras to {args.save_keras}")
    if args.export_onnx is not None:
        model.export(args.export_onnx, format="onnx")
        print(f"Exported the model to ONNX at {args.export_onnx}")
    if recorder is not None:
        from tinynet.learn.pictures import save_inspection

        written = save_inspection(recorder, output)
        print(f"Wrote {', '.join(path.name for path in written)} to {output} (inside each layer, every "
              f"{args.inspect_every} steps)")
    return 0


def _resumed_model(args: argparse.Namespace):
    """The model saved at ``--resume``, checked on its own (before any data is read).

    Raises:
        CommandError: the file is missing or not a model file, or holds a model that cannot continue to --epochs.
    """
    from tinynet.models import load_model

    with _problems_with("--resume", args.resume, args.debug):
        model = load_model(args.resume)
    problem = None
    if model.optimizer is None or model.loss is None:
        problem = "the saved model was never compiled, so there is no training to continue"
    elif not model.built:
        problem = "the saved model was never built, so it has no weights to continue from"
    elif model.epochs_done >= args.epochs:
        problem = f"the saved model has already done {model.epochs_done} epochs; raise --epochs above that"
    if problem:
        raise CommandError(f"--resume {args.resume}: {problem}")
    return model


def _check_resumed_model_fits(model, path: Path, image_shape: tuple[int, ...], classes: int) -> None:
    """Raise :class:`CommandError` unless the resumed model takes the data's images and has one output per class."""
    if model.input_shape[1:] != tuple(image_shape):
        raise CommandError(f"--resume {path}: the saved model takes inputs of shape {model.input_shape}, the data "
                           f"has images of shape {tuple(image_shape)}")
    if model.output_shape[1:] != (classes,):
        raise CommandError(f"--resume {path}: the saved model has {model.output_shape[1:]} outputs, the data has "
                           f"{classes} classes")


def _write_history_csv(history, path: Path) -> None:
    """One row per epoch with every logged figure; ``epoch`` is numbered from 1, as ``fit`` prints it (``Epoch
    2/10`` is row 2) and as the plots' axes show it. ``CSVLogger`` keeps Keras's 0-based ``epoch`` instead; the
    README explains both."""
    from tinynet.fileio import atomic_write

    keys = list(history.history)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for row, epoch in enumerate(history.epoch):
        values = (history.history[key][row] for key in keys)
        writer.writerow([epoch + 1, *("" if value is None else f"{value:.6f}" for value in values)])
    with atomic_write(path) as file:
        file.write(text.getvalue().encode())
