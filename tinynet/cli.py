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

# The help's own words: the module docstring above is reStructuredText for the documentation, not for a terminal.
_DESCRIPTION = "tinynet: train the Keras MNIST tutorial's CNN, fetch its datasets, run the benchmarks."
_EXAMPLES = "examples:\n" + "\n".join(line for line in __doc__.splitlines() if line.startswith("    tinynet "))

# The tutorial's settings: SGD lr 0.001 with decay 1e-6 and Nesterov (momentum 0), batch 32, epochs numbered 2..10.
TUTORIAL = {"epochs": 10, "initial_epoch": 1, "batch_size": 32, "learning_rate": 0.001, "momentum": 0.0,
            "decay": 1e-6, "dropout": 0.25}


def _integer_at_least(minimum: int, meaning: str):
    """An argparse type: an integer >= ``minimum``; ``meaning`` ("positive integer") names it in errors."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {meaning}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {meaning}, got {value}")
        return value

    return parse


_positive_int = _integer_at_least(1, "positive integer")
_non_negative_int = _integer_at_least(0, "non-negative integer")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _rate(text: str) -> float:
    value = _non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text}")
    return value


OPTIMIZERS = ("sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamax", "nadam", "adamw")

# --lr-schedule NAME:key=value,...: the schedule classes by their short names, and how each key's text is read.
_SCHEDULES = {"exponential": "ExponentialDecay", "inverse_time": "InverseTimeDecay",
              "piecewise": "PiecewiseConstantDecay", "cosine": "CosineDecay"}
_LR_SCHEDULE_HELP = (
    "a learning-rate schedule evaluated at every step (tf.keras's formulas), written NAME:key=value,... as in "
    "exponential:decay_steps=S,decay_rate=R (lr * R ** (step / S)); "
    "inverse_time:decay_steps=S,decay_rate=R (lr / (1 + R * step / S)); both take staircase=true too; "
    "cosine:decay_steps=S (optional: alpha=A, warmup_target=T, warmup_steps=W); "
    "piecewise:boundaries=B1/B2,values=V0/V1/V2 (V0 up to step B1, ...). The schedule starts from "
    "--learning-rate unless initial_learning_rate= is given; it replaces --decay")


def _schedule_value(key: str, text: str) -> float | bool | list[float]:
    if key in ("boundaries", "values"):
        return [float(part) for part in text.split("/")]
    if key == "staircase":
        if text.lower() not in ("true", "false"):
            raise ValueError(f"staircase must be true or false, got {text!r}")
        return text.lower() == "true"
    return float(text)


def _lr_schedule(text: str) -> tuple[str, dict]:
    """``--lr-schedule``: ``(class name, arguments)``, checked by building the schedule once."""
    from tinynet.optimizers import schedules

    name, _, arguments = text.partition(":")
    class_name = _SCHEDULES.get(name.strip().lower())
    if class_name is None:
        raise argparse.ArgumentTypeError(f"unknown schedule {name!r}; expected one of {', '.join(_SCHEDULES)} "
                                         "(NAME:key=value,...)")
    config: dict = {}
    try:
        for item in filter(None, (part.strip() for part in arguments.split(","))):
            key, equals, value = item.partition("=")
            if not equals:
                raise ValueError(f"expected key=value, got {item!r}")
            config[key.strip()] = _schedule_value(key.strip(), value.strip())
        trial = dict(config)
        if class_name != "PiecewiseConstantDecay":
            trial.setdefault("initial_learning_rate", 1.0)
        schedules.deserialize({"class_name": class_name, "config": trial})
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
    return class_name, config


def _optimizer(args: argparse.Namespace):
    """The optimizer the flags describe: Keras 2.2.4's defaults, except SGD's, which are the tutorial's."""
    from tinynet.optimizers import get, schedules

    optimizer = get(args.optimizer)
    if args.learning_rate is not None:
        optimizer.learning_rate = args.learning_rate
    elif args.optimizer == "sgd":
        optimizer.learning_rate = TUTORIAL["learning_rate"]
    if args.optimizer == "sgd":
        optimizer.momentum, optimizer.nesterov = args.momentum, args.nesterov
    if args.lr_schedule is not None:
        class_name, config = args.lr_schedule
        if class_name != "PiecewiseConstantDecay":
            config = {"initial_learning_rate": optimizer.learning_rate, **config}
        optimizer.learning_rate = schedules.deserialize({"class_name": class_name, "config": config})
    elif args.decay is not None:
        optimizer.decay = args.decay
    elif args.optimizer == "sgd":
        optimizer.decay = TUTORIAL["decay"]
    return optimizer


class CommandError(Exception):
    """Something the command was given cannot be used (a file, a folder); the message says which and why."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where there is none (``None``, or ``False`` for a switch) or the help
    already says it; keeps the examples' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
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
    train.add_argument("--epochs", type=_positive_int, default=TUTORIAL["epochs"],
                       help="the last epoch's number (Keras's 'epochs')")
    train.add_argument("--initial-epoch", type=_non_negative_int, default=TUTORIAL["initial_epoch"],
                       help="epochs already done; the tutorial starts at 1, so it runs epochs 2..10")
    train.add_argument("--batch-size", type=_positive_int, default=TUTORIAL["batch_size"],
                       help="samples per gradient step")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                       help="the optimizer, with Keras 2.2.4's equations and hyperparameters (sgd: the "
                            "tutorial's settings)")
    train.add_argument("--learning-rate", "--lr", type=_non_negative_float, default=None,
                       help=f"learning rate (default: {TUTORIAL['learning_rate']} for sgd, as the tutorial; Keras "
                            "2.2.4's for the others: rmsprop 0.001, adagrad 0.01, adadelta 1.0, adam 0.001, adamax "
                            "0.002, nadam 0.002, adamw 0.001)")
    train.add_argument("--lr-schedule", type=_lr_schedule, default=None, metavar="NAME:key=value,...",
                       help=_LR_SCHEDULE_HELP)
    train.add_argument("--momentum", type=_non_negative_float, default=TUTORIAL["momentum"],
                       help="SGD's momentum (sgd only)")
    train.add_argument("--decay", type=_non_negative_float, default=None,
                       help=f"Keras 2's learning-rate decay: step t uses lr / (1 + decay * t) (default: "
                            f"{TUTORIAL['decay']:g} for sgd, as the tutorial; 0 for the others; nadam has none)")
    train.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True,
                       help="Nesterov momentum (sgd only; the tutorial sets it; with momentum 0 it changes nothing)")
    train.add_argument("--dropout", type=_rate, default=TUTORIAL["dropout"], help="dropout rate after each block")
    train.add_argument("--seed", type=_non_negative_int, default=1, help="seed for weights, shuffles, dropout")
    train.add_argument("--limit", type=_positive_int, default=None, metavar="N",
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

    train.add_argument("--inspect", action="store_true",
                       help="record each layer's gradient norms, update ratios, activation statistics and dead "
                            "ReLU units during training (tinynet.inspect.TrainingRecorder); write inspect.csv, "
                            "gradient_norms.png, update_ratios.png and activations.png, and print the summary "
                            "with FLOPs and activation memory")
    train.add_argument("--inspect-every", type=_positive_int, default=10, metavar="STEPS",
                       help="with --inspect, record one training step in every STEPS")
    train.add_argument("--debug", action="store_true",
                       help="on a bad --data, --resume or --output, show the full traceback instead of one line")

    data = commands.add_parser("data", help="manage the dataset cache")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("fetch", help="download or copy a dataset into the cache")
    fetch.add_argument("name", nargs="?", choices=["mnist", "fashion_mnist"], default="mnist")

    from tinynet.learn.explain.command import add_parser as add_explain_parser

    add_explain_parser(commands, _HelpFormatter)

    commands.add_parser("bench", help="run the benchmark suite (tinynet bench --help lists its options)",
                        add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        from benchmarks.cli import main as bench_main

        return bench_main(argv[1:], prog="tinynet bench")
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
    """Train, evaluate and report, following the tutorial step by step."""
    from tinynet import applications, plotting, report, saving
    from tinynet.callbacks import History, ModelCheckpoint
    from tinynet.datasets import DatasetUnavailableError
    from tinynet.models import NumericalFaultError
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
        model.compile(optimizer=_optimizer(args), loss="categorical_crossentropy", metrics=["accuracy"])
        initial_epoch = args.initial_epoch
    if args.verbose:
        model.summary(batch_size=args.batch_size if args.inspect else None)

    checkpoints = [] if args.checkpoint is None else [ModelCheckpoint(args.checkpoint, save_best_only=False)]
    recorder = None
    if args.inspect:
        from tinynet.inspect import TrainingRecorder

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
    if recorder is not None:
        from tinynet.inspect import save_inspection

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
