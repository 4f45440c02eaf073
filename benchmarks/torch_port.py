"""A faithful PyTorch port of the tutorial CNN, for the ``torch`` suite's side-by-side timings.

Same layers, sizes and order as :mod:`benchmarks.tutorial` in ``torch.nn`` (channels-first, PyTorch's native
layout; the layout changes where values sit in memory, not how much work there is). The final softmax is fused
into ``CrossEntropyLoss`` for training, as tinynet fuses it with its categorical cross-entropy, and applied
explicitly for inference so both engines return probabilities. Both engines also compute the batch's loss and
accuracy as Python floats in a training step (tinynet's ``train_on_batch`` returns them).

Two variants serve the ``peers`` suite: ``channels_last=True`` keeps the model's and the input's tensors in NHWC
memory order (``torch.channels_last``, the order oneDNN's convolutions prefer on CPU), and ``compiled=True``
runs the model through ``torch.compile`` (the default inductor backend, which generates C++ for the element-wise
work and fuses it around the convolutions and matrix products; AOTAutograd compiles the backward pass too; one
static graph per batch size; the loss and the optimizer's update stay eager, the update being PyTorch's own
multi-tensor ``foreach`` kernel). Compiling happens on the first call of each batch size, so callers warm each
shape up untimed.

:func:`copy_tinynet_weights` loads a tinynet model's weights, so that every engine of a comparison computes the
same network from the same starting point (and their outputs can be compared).

PyTorch is optional: :func:`torch_import_error` says why it cannot be used, and nothing here imports it at
module import time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.tutorial import BENCHMARK_MOMENTUM, CLASSES, LEARNING_RATE


def torch_import_error() -> str | None:
    """``None`` when ``import torch`` works, else the reason it does not."""
    try:
        import torch  # noqa: F401
    except Exception as error:  # an ImportError, or a broken install raising something else
        return f"{type(error).__name__}: {error}"
    return None


def build_torch_model(seed: int = 0) -> Any:
    """The tutorial CNN in ``torch.nn``; input ``(N, 1, 28, 28)``, output logits ``(N, 10)``."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=3),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Conv2d(64, 32, kernel_size=3),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(32 * 5 * 5, 512),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(512, 256),
        nn.ReLU(),
        nn.Linear(256, CLASSES),
    )


def copy_tinynet_weights(model: Any, weights: list[np.ndarray]) -> None:
    """Load tinynet's ``get_weights()`` (Keras layouts) into the port built by :func:`build_torch_model`.

    Conv kernels go from ``(kh, kw, in, out)`` to ``(out, in, kh, kw)``, dense kernels from ``(in, out)`` to
    ``(out, in)``. The first dense layer's rows are also reordered: tinynet flattens a channels-last map in
    ``(h, w, c)`` order, PyTorch a channels-first one in ``(c, h, w)`` order.
    """
    import torch

    layers = [layer for layer in model if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear))]
    if len(weights) != 2 * len(layers):
        raise ValueError(f"copy_tinynet_weights: expected {2 * len(layers)} arrays (kernel and bias of each of "
                         f"{len(layers)} layers), got {len(weights)}")
    previous = None
    with torch.no_grad():
        for index, layer in enumerate(layers):
            kernel, bias = weights[2 * index], weights[2 * index + 1]
            if isinstance(layer, torch.nn.Conv2d):
                torch_kernel = kernel.transpose(3, 2, 0, 1)
            else:
                if isinstance(previous, torch.nn.Conv2d):  # reads the flattened map of a convolution
                    height, width, channels = _flattened_map_shape(kernel.shape[0], previous.out_channels)
                    kernel = kernel.reshape(height, width, channels, -1).transpose(2, 0, 1, 3).reshape(kernel.shape)
                torch_kernel = kernel.T
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(torch_kernel)))
            layer.bias.copy_(torch.from_numpy(bias))
            previous = layer


def _flattened_map_shape(features: int, channels: int) -> tuple[int, int, int]:
    """The square ``(h, w, c)`` map that flattens to ``features`` values."""
    side = round((features // channels) ** 0.5)
    if side * side * channels != features:
        raise ValueError(f"copy_tinynet_weights: {features} flattened features are not a square map of "
                         f"{channels} channels")
    return side, side, channels


class TorchTutorial:
    """The port, its Nesterov SGD optimizer and the two timed operations: a training step and inference.

    ``weights``: tinynet's ``get_weights()`` to start from (else PyTorch's seeded initialisation);
    ``channels_last`` and ``compiled``: the variants described in the module docstring.
    """

    def __init__(self, threads: int, seed: int = 0, weights: list[np.ndarray] | None = None,
                 channels_last: bool = False, compiled: bool = False) -> None:
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = build_torch_model(seed)
        if weights is not None:
            copy_tinynet_weights(self.model, weights)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        # What runs the network: the module itself, or inductor's compiled code for it (same parameters).
        self.network = torch.compile(self.model, dynamic=False) if compiled else self.model
        # PyTorch's nesterov needs momentum > 0; tinynet uses the same BENCHMARK_MOMENTUM in every suite.
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE, momentum=BENCHMARK_MOMENTUM,
                                         nesterov=True)
        self.loss = torch.nn.CrossEntropyLoss()

    def tensors(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        """Channels-last NumPy images ``(N, 28, 28, 1)`` and int labels as PyTorch tensors: ``(N, 1, 28, 28)``,
        stored in the port's memory format."""
        x = self.torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        return x.contiguous(memory_format=self.memory_format), self.torch.from_numpy(labels.astype(np.int64))

    def train_step(self, x: Any, labels: Any) -> tuple[float, float]:
        """One SGD update; returns the batch's loss and accuracy as floats, as ``train_on_batch`` does."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.network(x)
        loss = self.loss(logits, labels)
        loss.backward()
        self.optimizer.step()
        accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
        return float(loss.item()), float(accuracy.item())

    def predict(self, x: Any) -> np.ndarray:
        """Softmax probabilities for a batch, dropout off, no autograd bookkeeping."""
        self.model.eval()
        with self.torch.inference_mode():
            return self.torch.softmax(self.network(x), dim=1).numpy()
