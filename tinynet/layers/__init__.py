"""Layers with Keras 2 names. Each file holds one layer, its forward and backward passes side by side."""

from tinynet.layers.activation import Activation, ReLU
from tinynet.layers.average_pooling import AveragePooling2D
from tinynet.layers.base import Layer
from tinynet.layers.conv import Conv2D
from tinynet.layers.dense import Dense
from tinynet.layers.dropout import Dropout
from tinynet.layers.elu import ELU
from tinynet.layers.flatten import Flatten
from tinynet.layers.global_pooling import GlobalAveragePooling2D
from tinynet.layers.leaky_relu import LeakyReLU
from tinynet.layers.max_pooling import MaxPooling2D
from tinynet.layers.normalization import BatchNormalization
from tinynet.layers.reshape import Reshape
from tinynet.layers.zero_padding import ZeroPadding2D

# Keras 2 aliases
Convolution2D = Conv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D

__all__ = [
    "Activation",
    "AveragePooling2D",
    "AvgPool2D",
    "BatchNormalization",
    "Conv2D",
    "Convolution2D",
    "Dense",
    "Dropout",
    "ELU",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalAvgPool2D",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "MaxPooling2D",
    "ReLU",
    "Reshape",
    "ZeroPadding2D",
]


def get(class_name: str) -> type[Layer]:
    """The layer class of that name (used by model loading)."""
    try:
        layer_class = globals()[class_name]
    except KeyError:
        raise ValueError(f"unknown layer class {class_name!r}") from None
    if not (isinstance(layer_class, type) and issubclass(layer_class, Layer)):
        raise ValueError(f"unknown layer class {class_name!r}")
    return layer_class
