"""A faithful PyTorch port of the tutorial CNN, for the ``torch`` suite's side-by-side timings.

Same layers, sizes and order as :mod:`benchmarks.tutorial` in ``torch.nn`` (channels-first, PyTorch's native
layout; the layout changes where values sit in memory, not how much work there is). The final softmax is fused
into ``CrossEntropyLoss`` for training, as tinynet fuses it with its categorical cross-entropy, and applied
explicitly for inference so both engines return probabilities. Both engines also compute the batch's loss and
accuracy as Python floats in a training step (tinynet's ``train_on_batch`` returns them).

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


class TorchTutorial:
    """The port, its Nesterov SGD optimizer and the two timed operations: a training step and inference."""

    def __init__(self, threads: int, seed: int = 0) -> None:
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = build_torch_model(seed)
        # PyTorch's nesterov needs momentum > 0; tinynet uses the same BENCHMARK_MOMENTUM in every suite.
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE, momentum=BENCHMARK_MOMENTUM,
                                         nesterov=True)
        self.loss = torch.nn.CrossEntropyLoss()

    def tensors(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        """Channels-last NumPy images ``(N, 28, 28, 1)`` and int labels as PyTorch tensors (channels-first)."""
        x = self.torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        return x, self.torch.from_numpy(labels.astype(np.int64))

    def train_step(self, x: Any, labels: Any) -> tuple[float, float]:
        """One SGD update; returns the batch's loss and accuracy as floats, as ``train_on_batch`` does."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = self.loss(logits, labels)
        loss.backward()
        self.optimizer.step()
        accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
        return float(loss.item()), float(accuracy.item())

    def predict(self, x: Any) -> np.ndarray:
        """Softmax probabilities for a batch, dropout off, no autograd bookkeeping."""
        self.model.eval()
        with self.torch.inference_mode():
            return self.torch.softmax(self.model(x), dim=1).numpy()
