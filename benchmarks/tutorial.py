"""The tutorial's MNIST CNN built with tinynet's public API, and synthetic data shaped like MNIST.

The network (Keras MNIST tutorial)::

    Conv2D 64 3x3 on 28x28x1 -> MaxPool 2 -> ReLU -> Dropout .25
    Conv2D 32 3x3            -> MaxPool 2 -> ReLU -> Dropout .25
    Flatten -> Dense 512 -> ReLU -> Dropout .25 -> Dense 256 -> ReLU -> Dense 10 softmax

trained with categorical cross-entropy and SGD with Nesterov momentum. The tutorial sets ``momentum=0.0``; the
benchmarks use ``momentum=0.9`` (:data:`BENCHMARK_MOMENTUM`) in both tinynet and PyTorch, because PyTorch's
Nesterov SGD refuses a zero momentum and a comparison must run the same update in both engines. The cost of the
update is the same for any non-zero momentum.

Timings do not depend on the pixel values, so uniform noise in ``[0, 1)`` stands in for the images (the
tutorial divides MNIST's bytes by 255, giving the same range).
"""

from __future__ import annotations

import numpy as np

IMAGE_SHAPE = (28, 28, 1)
CLASSES = 10
LEARNING_RATE = 0.001  # the tutorial's
LEARNING_RATE_DECAY = 1e-6  # the tutorial's
BENCHMARK_MOMENTUM = 0.9  # the tutorial's is 0.0; see the module docstring


def build_tutorial_model(momentum: float = BENCHMARK_MOMENTUM, seed: int = 0):
    """The tutorial CNN as a compiled tinynet ``Sequential`` (weights seeded, so every run starts the same).

    Resets tinynet's layer-name counters first, so the layers are always named ``conv2d_1`` ... ``dense_3``.
    """
    from tinynet.backend import clear_session
    from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from tinynet.models import Sequential
    from tinynet.optimizers import SGD
    from tinynet.utils import set_random_seed

    clear_session()  # layer names conv2d_1, max_pooling2d_1... every time, so tables compare across runs
    set_random_seed(seed)
    model = Sequential([
        Conv2D(64, kernel_size=(3, 3), strides=(1, 1), padding="valid", input_shape=IMAGE_SHAPE),
        MaxPooling2D(pool_size=(2, 2)),
        Activation("relu"),
        Dropout(rate=0.25),
        Conv2D(32, kernel_size=(3, 3), strides=(1, 1), padding="valid"),
        MaxPooling2D(pool_size=(2, 2)),
        Activation("relu"),
        Dropout(rate=0.25),
        Flatten(),
        Dense(512),
        Activation("relu"),
        Dropout(rate=0.25),
        Dense(256),
        Activation("relu"),
        Dense(CLASSES, activation="softmax"),
    ])
    optimizer = SGD(learning_rate=LEARNING_RATE, momentum=momentum, decay=LEARNING_RATE_DECAY, nesterov=True)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def synthetic_images(count: int, seed: int = 0) -> np.ndarray:
    """``count`` float32 images ``(count, 28, 28, 1)`` with values in ``[0, 1)``."""
    return np.random.default_rng(seed).random((count, *IMAGE_SHAPE), dtype=np.float32)


def synthetic_labels(count: int, seed: int = 0) -> np.ndarray:
    """``count`` integer class labels in ``[0, 10)``."""
    return np.random.default_rng(seed + 1).integers(0, CLASSES, size=count)


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Float32 one-hot rows, as the tutorial's ``to_categorical`` gives."""
    return np.eye(CLASSES, dtype=np.float32)[labels]


def synthetic_batch(batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images and one-hot targets for one batch."""
    return synthetic_images(batch, seed), one_hot(synthetic_labels(batch, seed))
