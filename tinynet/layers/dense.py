"""Dense: the fully connected layer ``y = activation(x @ W + b)``."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import activations
from tinynet import initializers as initializers_module
from tinynet.kernels import blocked_matmul
from tinynet.layers.base import Layer


class Dense(Layer):
    r"""Fully connected layer, Keras 2's ``Dense``.

    Shapes: input ``x`` is ``(N, in)`` (more leading axes are allowed: the product acts on the last one), kernel
    ``W`` is ``(in, units)`` (Keras layout), bias ``b`` is ``(units,)``, output ``y`` is ``(N, units)``.

    Forward::

        z = x @ W + b
        y = activation(z)

    Backward, given ``dy = dL/dy``: ``dz = activation'(dy)``, then from ``z[n,u] = sum_i x[n,i] W[i,u] + b[u]``::

        dW = x^T @ dz        dL/dW[i,u] = sum_n x[n,i] dz[n,u]
        db = sum_n dz[n]     every sample adds b once
        dx = dz @ W^T        dL/dx[n,i] = sum_u dz[n,u] W[i,u]

    Cache: the input ``x`` and the output ``y``.

    The products are :func:`tinynet.kernels.blocked_matmul`: ``@`` cut into the blocks the engine's threads
    share, so that this layer and the engine's stand-in for it give the same bits.
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        input_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        if input_dim is not None and "input_shape" not in kwargs:
            kwargs["input_shape"] = (input_dim,)  # Keras 2's shorthand for a 1-D input
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int | np.integer) or units <= 0:
            raise ValueError(f"{self.name}: units must be a positive int, got {units!r}")
        self.units = int(units)
        self.activation = activations.get(activation, owner=f"{self.name} activation")
        self.use_bias = self._flag(use_bias, "use_bias")
        self.kernel_initializer = initializers_module.get(kernel_initializer, owner=f"{self.name} kernel_initializer")
        self.bias_initializer = initializers_module.get(bias_initializer, owner=f"{self.name} bias_initializer")

    def build(self, input_shape: tuple[int, ...]) -> None:
        input_shape = self._validate_shape(input_shape, "input_shape")
        if len(input_shape) < 1:
            raise ValueError(f"{self.name}: expects inputs of shape (batch, features), got per-sample {input_shape}")
        self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*input_shape[:-1], self.units)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        kernel = self.params["kernel"]
        z = blocked_matmul(x.reshape(-1, x.shape[-1]), kernel).reshape(*x.shape[:-1], self.units)
        if self.use_bias:
            z += self.params["bias"]
        y = self.activation.forward(z)
        self._cache = (x, y)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        x, y = self._take_cache()
        dy = self._check_output_gradient(dy, y.shape)
        return self._backward_from_z(self.activation.backward(dy, y), x)

    def backward_preactivation(self, dz: np.ndarray) -> np.ndarray | None:
        """Backward from ``dL/dz`` (the gradient before the activation), used by the fused softmax loss."""
        x, y = self._take_cache()
        return self._backward_from_z(self._check_output_gradient(dz, y.shape), x)

    def _backward_from_z(self, dz: np.ndarray, x: np.ndarray) -> np.ndarray | None:
        x_rows = x.reshape(-1, x.shape[-1])
        dz_rows = dz.reshape(-1, self.units)
        # Written into the existing gradient arrays: each backward overwrites layer.grads, allocating nothing.
        blocked_matmul(x_rows.T, dz_rows, out=self.grads["kernel"])
        if self.use_bias:
            np.sum(dz_rows, axis=0, out=self.grads["bias"])
        if not self.needs_input_gradient:
            return None
        dx_rows = blocked_matmul(dz_rows, self.params["kernel"].T)
        return dx_rows.reshape(*dz.shape[:-1], x.shape[-1])

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {
            "units": self.units,
            "activation": self.activation.name,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers_module.serialize(self.kernel_initializer),
            "bias_initializer": initializers_module.serialize(self.bias_initializer),
        }
