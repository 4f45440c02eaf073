"""Element-wise activation functions and their backward passes.

Every activation here has a derivative that can be written with its *output* ``a`` alone, so a layer only has to
cache what it returned:

==========  ==========================  ==================================================
name        forward ``a = f(z)``        backward ``dz = dL/dz`` from ``da = dL/da``
==========  ==========================  ==================================================
linear      ``a = z``                   ``dz = da``
relu        ``a = max(z, 0)``           ``dz = da * [a > 0]``  (the kink at 0 gets slope 0)
sigmoid     ``a = 1 / (1 + e^-z)``      ``dz = da * a * (1 - a)``
tanh        ``a = tanh(z)``             ``dz = da * (1 - a^2)``
softmax     ``a_k = e^z_k / sum_j e^z_j``  ``dz = a * (da - sum_k(da_k * a_k))`` over the last axis
==========  ==========================  ==================================================

Softmax's row comes from its Jacobian ``da_k/dz_i = a_k (delta_ki - a_i)``: contracting with ``da`` gives
``dz_i = a_i (da_i - sum_k da_k a_k)``, a vector-Jacobian product that never builds the ``K x K`` matrix.
When softmax is followed by categorical cross-entropy the model skips this and uses the fused ``(p - y) / N``
(see :mod:`tinynet.losses`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ActivationFunction:
    """A named pair ``forward(z) -> a`` and ``backward(da, a) -> dz``."""

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    backward: Callable[[np.ndarray, np.ndarray], np.ndarray]


def linear(z: np.ndarray) -> np.ndarray:
    return z


def _linear_backward(da: np.ndarray, a: np.ndarray) -> np.ndarray:
    return da


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0, dtype=z.dtype)


def _relu_backward(da: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.where(a > 0, da, 0).astype(da.dtype, copy=False)


def sigmoid(z: np.ndarray) -> np.ndarray:
    # exp(-|z|) never overflows, and for z < 0 the form e / (1 + e) keeps small outputs to full relative
    # precision (0.5 * (1 + tanh(z / 2)) cancels: in float32 it gave 0 at z = -20 and was 2.6% off at z = -15).
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def _sigmoid_backward(da: np.ndarray, a: np.ndarray) -> np.ndarray:
    return da * a * (1 - a)


def tanh(z: np.ndarray) -> np.ndarray:
    return np.tanh(z)


def _tanh_backward(da: np.ndarray, a: np.ndarray) -> np.ndarray:
    return da * (1 - a * a)


def softmax(z: np.ndarray) -> np.ndarray:
    # Subtracting the row maximum changes nothing mathematically and keeps exp() from overflowing.
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_backward(da: np.ndarray, a: np.ndarray) -> np.ndarray:
    return a * (da - (da * a).sum(axis=-1, keepdims=True))


_ACTIVATIONS: dict[str, ActivationFunction] = {
    "linear": ActivationFunction("linear", linear, _linear_backward),
    "relu": ActivationFunction("relu", relu, _relu_backward),
    "sigmoid": ActivationFunction("sigmoid", sigmoid, _sigmoid_backward),
    "tanh": ActivationFunction("tanh", tanh, _tanh_backward),
    "softmax": ActivationFunction("softmax", softmax, _softmax_backward),
}


def get(identifier: str | ActivationFunction | None, *, owner: str = "activation") -> ActivationFunction:
    """Look an activation up by name (``None`` means ``'linear'``, as in Keras).

    ``owner`` names the layer or argument in the error message.
    """
    if identifier is None:
        return _ACTIVATIONS["linear"]
    if isinstance(identifier, ActivationFunction):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(
            f"{owner}: expected an activation name ({', '.join(sorted(_ACTIVATIONS))}) or None, "
            f"got {type(identifier).__name__}"
        )
    try:
        return _ACTIVATIONS[identifier]
    except KeyError:
        raise ValueError(
            f"{owner}: unknown activation {identifier!r}; expected one of {', '.join(sorted(_ACTIVATIONS))}"
        ) from None


def names() -> list[str]:
    """The names :func:`get` accepts."""
    return sorted(_ACTIVATIONS)
