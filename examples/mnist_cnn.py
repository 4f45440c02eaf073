"""The Keras MNIST tutorial, step by step, on tinynet.

Run it with ``python examples/mnist_cnn.py`` (about a minute per epoch on two cores; ``--limit 5000`` for a quick
look). Every step below is what the tutorial does, with ``keras`` swapped for ``tinynet`` in the imports; the
pictures are written to PNG files (``--output``) instead of popping up windows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tinynet import plotting, report
from tinynet.datasets import DatasetUnavailableError, mnist
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tinynet.models import Sequential
from tinynet.optimizers import SGD
from tinynet.utils import set_random_seed, to_categorical

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--epochs", type=int, default=10, help="last epoch number; training starts after epoch 1")
parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
parser.add_argument("--data", type=Path, default=None, metavar="PATH",
                    help="a Keras .npz or a folder of the four IDX files you already have "
                         "(default: tinynet's dataset cache, filled from the web the first time)")
parser.add_argument("--output", type=Path, default=Path("runs/example_mnist"))
args = parser.parse_args()

# 1. The data: 60,000 training and 10,000 test images of handwritten digits, 28x28 grey levels 0..255.
try:
    (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data)
except DatasetUnavailableError as error:  # offline, or no source had the files: say so in one line, not a traceback
    sys.exit(f"{parser.prog}: error: {str(error).splitlines()[0].rstrip(':')}; `tinynet data fetch mnist` "
             f"says why each source failed, or pass --data PATH")
except (ValueError, OSError) as error:  # --data names something that is not a dataset
    sys.exit(f"{parser.prog}: error: --data: {error}")
args.output.mkdir(parents=True, exist_ok=True)
if args.limit:
    x_train, y_train = x_train[:args.limit], y_train[:args.limit]
print("training images:", x_train.shape, "labels:", y_train.shape)
print("test images:    ", x_test.shape, "labels:", y_test.shape)

# 2. Look at a few of them with their labels.
plotting.plot_samples(x_train, y_train, args.output / "samples.png")

# 3. Prepare them for the network: labels as one-hot rows (3 -> [0,0,0,1,0,0,0,0,0,0]); images get a channel axis
#    (28, 28) -> (28, 28, 1) because Conv2D expects channels-last input; pixels are scaled to [0, 1].
classes = 10
y_train_onehot = to_categorical(y_train, num_classes=classes)
y_test_onehot = to_categorical(y_test, num_classes=classes)
x_train = np.expand_dims(x_train, axis=3).astype(np.float32) / 255
x_test = np.expand_dims(x_test, axis=3).astype(np.float32) / 255

# 4. The hyperparameters: plain SGD with a small learning rate that decays as 1 / (1 + 1e-6 * step).
learning_rate, learning_rate_decay, batch_size = 0.001, 1e-6, 32

# 5. The network: two convolution blocks (convolve, keep the strongest response of each 2x2 patch, rectify,
#    randomly silence a quarter of the units while training), then three fully connected layers.
set_random_seed(1)
model = Sequential()
model.add(Conv2D(64, kernel_size=(3, 3), strides=(1, 1), padding="valid", data_format="channels_last",
                 input_shape=(28, 28, 1)))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Activation("relu"))
model.add(Dropout(rate=0.25))
model.add(Conv2D(32, kernel_size=(3, 3), strides=(1, 1), padding="valid"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Activation("relu"))
model.add(Dropout(rate=0.25))
model.add(Flatten())
model.add(Dense(512))
model.add(Activation("relu"))
model.add(Dropout(rate=0.25))
model.add(Dense(256))
model.add(Activation("relu"))
model.add(Dense(classes, activation="softmax"))

# Nesterov with momentum 0 is plain SGD; the flag is kept because the tutorial sets it.
optimizer = SGD(lr=learning_rate, momentum=0.0, decay=learning_rate_decay, nesterov=True)
model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
model.summary()

# 6. Train. initial_epoch=1 makes Keras number the epochs 2..10, so this runs nine of them.
history = model.fit(x=x_train, y=y_train_onehot, batch_size=batch_size, epochs=args.epochs, verbose=1,
                    validation_data=(x_test, y_test_onehot), shuffle=True, initial_epoch=1)

# 7. Predict the test set and compare the first ten with the truth.
probabilities = model.predict(x_test, verbose=1)
predicted = np.argmax(probabilities, axis=1)
print("first 10 ground truths:", y_test[:10])
print("first 10 predictions:  ", predicted[:10])

# 8. The learning curves: if test loss rose while training loss fell, the network would be overfitting.
plotting.plot_loss(history.history, args.output / "loss.png", epochs=history.epoch)
plotting.plot_accuracy(history.history, args.output / "accuracy.png", epochs=history.epoch)

# 9. Which digits get confused with which: the tutorial's crosstab, then precision, recall and F1 per class.
crosstab = pd.crosstab(pd.Series(y_test, name="Actual"), pd.Series(predicted, name="Predicted"))
print(crosstab)
confusion = report.confusion_matrix(y_test, predicted, num_classes=classes)
print(report.format_report(confusion))
plotting.plot_confusion_matrix(confusion, args.output / "confusion_matrix.png")
print("pictures written to", args.output)
