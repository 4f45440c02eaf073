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
elu         ``z`` if ``z > 0``,         ``dz = da * (1 if a > 0 else a + alpha)``
            else ``alpha (e^z - 1)``    (alpha = 1; ``a + alpha = alpha e^z``)
selu        ``scale * elu(z, alpha)``   ``dz = da * (scale if a > 0 else a + scale alpha)``
softplus    ``log(e^z + 1)``            ``dz = da * (1 - e^-a)``  (the sigmoid of z)
softsign    ``z / (|z| + 1)``           ``dz = da * (1 - |a|)^2``  (``1 - |a| = 1 / (|z| + 1)``)
hard_sigm.  ``clip(0.2 z + 0.5, 0, 1)`` ``dz = da * 0.2 * [0 < a < 1]``  (slope 0 at the two kinks)
exponential ``e^z``                     ``dz = da * a``
==========  ==========================  ==================================================

Softmax's row comes from its Jacobian ``da_k/dz_i = a_k (delta_ki - a_i)``: contracting with ``da`` gives
``dz_i = a_i (da_i - sum_k da_k a_k)``, a vector-Jacobian product that never builds the ``K x K`` matrix.
When softmax is followed by categorical cross-entropy the model skips this and uses the fused ``(p - y) / N``
(see :mod:`tinynet.losses`).

The last six are Keras 2.2.4's (``keras/activations.py`` on the TensorFlow backend), with its constants: selu's
``alpha = 1.6732632423543772848170429916717`` and ``scale = 1.0507009873554804934193349852946`` (Klambauer et
al., 2017), hard_sigmoid's ``0.2 z + 0.5``. Keras 3 changed hard_sigmoid to ``clip(z / 6 + 0.5, 0, 1)``; tinynet
keeps Keras 2's. Each derivative is still a function of the output alone, because these functions are monotonic
(strictly, except hard_sigmoid's flat parts, where the slope is 0 whatever ``z``): the output says which piece
``z`` was on, and on each piece the slope can be written with ``a`` (for elu, ``d/dz alpha (e^z - 1) = alpha e^z
= a + alpha``). ELU's sign test ``a > 0`` needs ``alpha >= 0``, which the ``ELU`` layer requires.
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


#: selu's constants, as Keras 2.2.4 writes them (the fixed point that keeps activations at mean 0, variance 1).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def elu(z: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    # expm1 keeps e^z - 1 accurate for small |z|; its argument is clipped at 0 so that the branch np.where
    # discards cannot overflow (and warn) for large positive z.
    negative = np.expm1(np.minimum(z, 0))
    negative *= z.dtype.type(alpha)
    return np.where(z > 0, z, negative)


def elu_backward(da: np.ndarray, a: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``dz`` of :func:`elu` from its output ``a`` (``alpha >= 0``): 1 where ``a > 0``, ``a + alpha`` elsewhere."""
    return da * np.where(a > 0, a.dtype.type(1), a + a.dtype.type(alpha))


def selu(z: np.ndarray) -> np.ndarray:
    scaled = elu(z, SELU_ALPHA)
    scaled *= z.dtype.type(SELU_SCALE)
    return scaled


def _selu_backward(da: np.ndarray, a: np.ndarray) -> np.ndarray:
    # a = scale * alpha * (e^z - 1) below 0, so its slope scale * alpha * e^z is a + scale * alpha.
    slope = np.where(a > 0, a.dtype.type(SELU_SCALE), a + a.dtype.type(SELU_SCALE * SELU_ALPHA))
    return da * slope


def softplus(z: np.ndarray) -> np.ndarray:
    # log(e^z + 1) = max(z, 0) + log(1 + e^-|z|): e^-|z| <= 1 never overflows, and log1p keeps the tail
    # accurate where softplus(z) ~ e^z is tiny (z << 0).
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def _softplus_backward(da: np.ndarray, a: np.ndarray) -> np.ndarray:
    # softplus' = sigmoid(z) = 1 - e^-a, since e^a = e^z + 1; -expm1(-a) stays accurate for tiny a.
    return da * -np.expm1(-a)


def softsign(z: np.ndarray) -> np.ndarray:
    return z / (np.abs(z) + 1)


def _softsign_backward(da: np.ndarray, a: np.ndarray) -> np.ndarray:
    remainder = 1 - np.abs(a)  # = 1 / (|z| + 1)
    return da * remainder * remainder


def hard_sigmoid(z: np.ndarray) -> np.ndarray:
    # Keras 2's piecewise-linear sigmoid, computed as Keras 2.2.4 does: (0.2 * z) + 0.5, then clipped.
    return np.clip(z.dtype.type(0.2) * z + z.dtype.type(0.5), 0, 1)


def _hard_sigmoid_backward(da: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.where((a > 0) & (a < 1), da * da.dtype.type(0.2), 0).astype(da.dtype, copy=False)


def exponential(z: np.ndarray) -> np.ndarray:
    return np.exp(z)


def _exponential_backward(da: np.ndarray, a: np.ndarray) -> np.ndarray:
    return da * a


_ACTIVATIONS: dict[str, ActivationFunction] = {
    "linear": ActivationFunction("linear", linear, _linear_backward),
    "relu": ActivationFunction("relu", relu, _relu_backward),
    "sigmoid": ActivationFunction("sigmoid", sigmoid, _sigmoid_backward),
    "tanh": ActivationFunction("tanh", tanh, _tanh_backward),
    "softmax": ActivationFunction("softmax", softmax, _softmax_backward),
    "elu": ActivationFunction("elu", elu, elu_backward),  # alpha = 1, its default
    "selu": ActivationFunction("selu", selu, _selu_backward),
    "softplus": ActivationFunction("softplus", softplus, _softplus_backward),
    "softsign": ActivationFunction("softsign", softsign, _softsign_backward),
    "hard_sigmoid": ActivationFunction("hard_sigmoid", hard_sigmoid, _hard_sigmoid_backward),
    "exponential": ActivationFunction("exponential", exponential, _exponential_backward),
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
