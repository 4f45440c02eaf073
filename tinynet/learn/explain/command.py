"""``tinynet explain``: a few real training steps of the tutorial CNN, written as one page that opens offline.

::

    tinynet explain                          # MNIST from tinynet's cache (fetched the first time), 3 steps
    tinynet explain --data ~/mnist.npz --steps 5 --output runs/explain.html
    tinynet explain --synthetic              # no dataset at all: digit-sized images of bars
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from tinynet.cli_options import OPTIMIZERS, positive_int


def add_parser(commands: argparse._SubParsersAction, formatter_class: type[argparse.HelpFormatter]) \
        -> argparse.ArgumentParser:
    """The ``explain`` subcommand and its flags."""
    explain = commands.add_parser(
        "explain", help="write one HTML page showing real training steps tensor by tensor (opens offline)",
        description="Train the tutorial CNN for a few real steps and write one self-contained HTML page that\n"
                    "shows every layer's tensors and gradients, each gradient checked, im2col and col2im on the\n"
                    "step's numbers, the fused (p - y) / N and the optimizer's update with Keras 2's equations.",
        formatter_class=formatter_class)
    explain.add_argument("--data", type=Path, default=None, metavar="PATH",
                         help="MNIST files you already have (a Keras .npz or a folder of IDX files; default: "
                              "tinynet's dataset cache, filled from the web the first time)")
    explain.add_argument("--synthetic", action="store_true",
                         help="use synthetic digit-sized images (a bar whose height is the class) instead of MNIST")
    explain.add_argument("--steps", type=positive_int, default=3, help="training steps to record")
    explain.add_argument("--batch-size", type=positive_int, default=32, help="samples per step")
    explain.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                         help="the optimizer with Keras 2.2.4's defaults (sgd: the tutorial's lr 0.001, decay 1e-6, "
                              "Nesterov)")
    explain.add_argument("--seed", type=int, default=1, help="seed for the weights and dropout")
    explain.add_argument("--output", type=Path, default=Path("explain.html"), metavar="FILE",
                         help="the page to write (.html)")
    explain.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return explain


def synthetic_images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` 28x28 images scaled to [0, 1] and their labels: a bright bar whose height gives the class, on
    faint noise (enough to see gradients flow without any dataset)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    images = rng.uniform(0, 0.15, (count, 28, 28)).astype(np.float32)
    for index, label in enumerate(labels):
        images[index, 3 + 2 * label:5 + 2 * label, 4:24] = 1.0
    return images, labels


def _error(message: str) -> int:
    print(f"tinynet explain: error: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    from tinynet import applications
    from tinynet.optimizers import SGD, get
    from tinynet.utils import set_random_seed, to_categorical

    from . import explain

    if args.output.suffix.lower() not in (".html", ".htm"):
        return _error(f"--output: expected a file name ending in .html, got {args.output}")
    count = args.steps * args.batch_size
    if args.synthetic:
        images, labels = synthetic_images(count, args.seed)
        source = f"{count} synthetic bar images (--synthetic)"
    else:
        from tinynet.datasets import DatasetUnavailableError, mnist

        try:
            (train_images, train_labels), _ = mnist.load_data(args.data)
        except DatasetUnavailableError as error:
            if args.debug:
                raise
            return _error(f"{str(error).splitlines()[0].rstrip(':')}; pass --data PATH (a Keras .npz or a folder "
                          "of IDX files) or --synthetic")
        except (ValueError, OSError) as error:
            if args.debug:
                raise
            return _error(f"--data: {' '.join(str(error).split())}")
        images, labels = train_images[:count].astype(np.float32) / np.float32(255), train_labels[:count]
        source = f"the first {len(images)} MNIST training images" + (f" from {args.data}" if args.data else "")
    x = images[..., np.newaxis]
    y = to_categorical(labels, num_classes=10)

    set_random_seed(args.seed)
    model = applications.mnist_cnn(input_shape=x.shape[1:], classes=10)
    optimizer = get(args.optimizer)
    if args.optimizer == "sgd":
        optimizer = SGD(learning_rate=0.001, decay=1e-6, nesterov=True)  # the tutorial's
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        path = explain(model, x, y, args.output, steps=args.steps, batch_size=args.batch_size,
                       title="Backpropagation in the tutorial CNN, tensor by tensor", source=source)
    except OSError as error:
        if args.debug:
            raise
        return _error(f"--output: {error.filename or args.output}: {error.strerror or error}")
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    print(f"Wrote {path} ({size / 1e6:.1f} MB, {args.steps} steps of {args.batch_size} images from {source}) in "
          f"{seconds:.1f} s. Open it in a browser: {path.resolve().as_uri()}")
    return 0
