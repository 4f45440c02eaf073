"""The engine's Dense: the layer's equations with its matrix products shared by the engine's threads."""

from __future__ import annotations

import numpy as np

from tinynet.engine import threads
from tinynet.engine.stage import StandIn
from tinynet.layers.base import Layer
from tinynet.layers.dense import Dense


class ThreadedDense(StandIn):
    """Stands in for a :class:`tinynet.layers.Dense` (any activation): the same forward and backward, with
    ``x @ W``, ``x^T @ dz`` and ``dz @ W^T`` computed by :func:`tinynet.engine.threads.matmul`.

    That product cuts each matrix into the blocks the layer's own :func:`tinynet.kernels.blocked_matmul` cuts
    and hands them to two threads, so the results are the layer's bit for bit (a test compares them). The
    weights, gradients and activation are the layer's; the stage keeps only its cache: the input ``x`` and the
    output ``y``.
    """

    def __init__(self, dense: Dense, *following: Layer) -> None:
        super().__init__(dense, *following)  # following: the layers a fused subclass also runs
        self.dense = dense

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        dense = self.dense
        x = dense.check_input(x)
        z = threads.matmul(x.reshape(-1, x.shape[-1]), dense.params["kernel"]).reshape(*x.shape[:-1], dense.units)
        if dense.use_bias:
            z += dense.params["bias"]
        y = dense.activation.forward(z)
        self._cache = (x, y)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        x, y = self._take_cache()
        dy = self.dense.check_output_gradient(dy, y.shape)
        return self._backward_from_z(self.dense.activation.backward(dy, y), x)

    def backward_preactivation(self, dz: np.ndarray) -> np.ndarray | None:
        """Backward from ``dL/dz`` (the gradient before the activation), used by the fused softmax loss."""
        x, y = self._take_cache()
        return self._backward_from_z(self.dense.check_output_gradient(dz, y.shape), x)

    def _backward_from_z(self, dz: np.ndarray, x: np.ndarray) -> np.ndarray | None:
        """``dW = x^T dz``, ``db = 1^T dz`` and, when wanted, ``dx = dz W^T``: the two products in one parallel
        region (:func:`tinynet.engine.threads.matmuls`)."""
        dense = self.dense
        x_rows = x.reshape(-1, x.shape[-1])
        dz_rows = dz.reshape(-1, dense.units)
        products = [(x_rows.T, dz_rows, dense.grads["kernel"])]
        dx_rows = None
        if self.needs_input_gradient:
            dx_rows = np.empty((dz_rows.shape[0], x_rows.shape[1]), dtype=dense.dtype)
            products.append((dz_rows, dense.params["kernel"].T, dx_rows))
        threads.matmuls(products)
        if dense.use_bias:
            np.sum(dz_rows, axis=0, out=dense.grads["bias"])
        return None if dx_rows is None else dx_rows.reshape(*dz.shape[:-1], x.shape[-1])
