"""Ready-made models. ``mnist_cnn`` is the network of the Keras MNIST tutorial that tinynet reproduces."""

from __future__ import annotations

from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tinynet.models import Sequential


def mnist_cnn(input_shape: tuple[int, int, int] = (28, 28, 1), classes: int = 10,
              dropout: float = 0.25) -> Sequential:
    """The tutorial's CNN (uncompiled): two blocks of Conv2D -> MaxPooling2D -> ReLU -> Dropout (64 then 32
    filters of 3x3), then Dense 512 -> ReLU -> Dropout, Dense 256 -> ReLU and a softmax over ``classes``.

    For 28x28x1 inputs it has 563,114 parameters (conv 640 and 18,464; dense 410,112, 131,328 and 2,570).
    Pooling comes *before* the ReLU, as in the tutorial; the two orders give the same values because max and a
    monotone function commute, and pooling first does the ReLU on 4x fewer values.
    """
    return Sequential([
        Conv2D(64, kernel_size=(3, 3), strides=(1, 1), padding="valid", input_shape=input_shape),
        MaxPooling2D(pool_size=(2, 2)),
        Activation("relu"),
        Dropout(rate=dropout),
        Conv2D(32, kernel_size=(3, 3), strides=(1, 1), padding="valid"),
        MaxPooling2D(pool_size=(2, 2)),
        Activation("relu"),
        Dropout(rate=dropout),
        Flatten(),
        Dense(512),
        Activation("relu"),
        Dropout(rate=dropout),
        Dense(256),
        Activation("relu"),
        Dense(classes, activation="softmax"),
    ])
