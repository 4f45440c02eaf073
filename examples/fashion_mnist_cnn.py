"""The tutorial's CNN on Fashion-MNIST: ten kinds of clothing instead of ten digits, same shapes, harder task.

Run it with ``python examples/fashion_mnist_cnn.py`` (``--limit 5000`` for a quick look). Fashion-MNIST comes from
the web mirrors or from Debian's package ``dataset-fashion-mnist``. It uses the stronger recipe (momentum 0.9,
learning rate 0.01), since the tutorial's plain SGD learns this dataset slowly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tinynet import applications, plotting, report
from tinynet.datasets import DatasetUnavailableError, fashion_mnist
from tinynet.optimizers import SGD
from tinynet.utils import set_random_seed, to_categorical

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
parser.add_argument("--data", type=Path, default=None, metavar="PATH",
                    help="a Keras .npz or a folder of the four IDX files you already have "
                         "(default: tinynet's dataset cache, filled from the web the first time)")
parser.add_argument("--output", type=Path, default=Path("runs/example_fashion_mnist"))
args = parser.parse_args()

try:
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(args.data)
except DatasetUnavailableError as error:  # offline, or no source had the files: say so in one line, not a traceback
    sys.exit(f"{parser.prog}: error: {str(error).splitlines()[0].rstrip(':')}; `tinynet data fetch fashion_mnist` "
             f"says why each source failed, or pass --data PATH")
except (ValueError, OSError) as error:  # --data names something that is not a dataset
    sys.exit(f"{parser.prog}: error: --data: {error}")
if args.limit:
    x_train, y_train = x_train[:args.limit], y_train[:args.limit]
names = report.FASHION_MNIST_CLASSES
plotting.plot_samples(x_train, y_train, args.output / "samples.png", class_names=names)

x_train = x_train[..., np.newaxis].astype(np.float32) / 255
x_test = x_test[..., np.newaxis].astype(np.float32) / 255

set_random_seed(1)
model = applications.mnist_cnn()  # the same network as the MNIST tutorial
model.compile(optimizer=SGD(learning_rate=0.01, momentum=0.9, decay=1e-6, nesterov=True),
              loss="categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, to_categorical(y_train, 10), batch_size=32, epochs=args.epochs,
                    validation_data=(x_test, to_categorical(y_test, 10)), initial_epoch=1)

predicted = model.predict(x_test).argmax(axis=1)
confusion = report.confusion_matrix(y_test, predicted, num_classes=10, labels=names)
print(report.format_report(confusion))
plotting.plot_loss(history.history, args.output / "loss.png", epochs=history.epoch)
plotting.plot_accuracy(history.history, args.output / "accuracy.png", epochs=history.epoch)
plotting.plot_confusion_matrix(confusion, args.output / "confusion_matrix.png")
plotting.plot_images_with_predictions(x_test[..., 0], y_test, predicted, args.output / "predictions.png",
                                      class_names=names)
print("pictures written to", args.output)
