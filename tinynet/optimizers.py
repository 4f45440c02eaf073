"""SGD with Keras 2's exact equations: momentum, Nesterov momentum and time-based learning-rate decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinynet import parallel
from tinynet.kernels.sgd import sgd_update
from tinynet.layers.base import Layer

# The update is cut into this many independent parts, one per core of the 2-core machines tinynet is tuned on.
_UPDATE_LANES = 2


class SGD:
    r"""Stochastic gradient descent exactly as Keras 2.2/2.3 writes it.

    With ``t = iterations``, the number of updates already applied (0 for the first batch; it lives on the
    optimizer, never resets between epochs and ignores ``initial_epoch``), for every parameter ``p`` with gradient
    ``g`` and velocity ``v`` (zero at the start)::

        lr_t = lr / (1 + decay * t)                       (time-based decay; lr_t = lr when decay = 0)
        v    = momentum * v - lr_t * g
        p    = p + v                                      (classical momentum)
        p    = p + momentum * v - lr_t * g                (nesterov=True: look ahead along the new velocity)

    With ``momentum = 0`` both reduce to ``p = p - lr_t * g``. Keras's Nesterov form is the "Sutskever" rewrite
    that needs no gradient at the look-ahead point: it applies the momentum step twice, once through ``v`` and
    once explicitly.

    Why a step *against* ``g`` lowers the loss: to first order ``L(p - lr g) = L(p) - lr ||g||^2``, which is
    smaller for a small enough ``lr``. Momentum keeps a decaying sum of past steps, ``v_t = -sum_s momentum^(t-s)
    lr_s g_s``, so directions that agree from step to step speed up and those that flip sign cancel out.

    Shapes and state: each velocity has its parameter's shape and dtype, created at zero on first use (and only
    when ``momentum > 0``); with ``iterations`` that is all the optimizer keeps. It reads ``layer.grads`` and
    changes ``layer.params`` in place, and nothing else.

    ``lr=`` is accepted as Keras 2.2 named it; ``optimizer.lr`` and ``optimizer.learning_rate`` are the base rate.
    Velocities are kept per layer name and parameter name, so one optimizer serves a whole model and its state
    can be saved.
    """

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        decay: float = 0.0,
        nesterov: bool = False,
        lr: float | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"SGD: unexpected keyword argument(s) {', '.join(sorted(kwargs))}")
        if lr is not None:
            learning_rate = lr
        for argument, value in (("learning_rate", learning_rate), ("momentum", momentum), ("decay", decay)):
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating) or not np.isfinite(value):
                raise TypeError(f"SGD: {argument} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"SGD: {argument} must be >= 0, got {value!r}")
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.decay = float(decay)
        self.nesterov = bool(nesterov)
        self.iterations = 0
        self.velocities: dict[tuple[str, str], np.ndarray] = {}

    @property
    def lr(self) -> float:
        return self.learning_rate

    @lr.setter
    def lr(self, value: float) -> None:
        self.learning_rate = float(value)

    def current_learning_rate(self) -> float:
        """``lr_t`` for the next update."""
        if self.decay > 0:
            return self.learning_rate / (1.0 + self.decay * self.iterations)
        return self.learning_rate

    def apply_gradients(self, layers: Iterable[Layer]) -> bool:
        """One update of every trainable parameter from the ``grads`` the last backward pass left.

        Returns True when every updated value is finite (checked in the update's own pass; the model uses it to
        stop on an update that overflowed).
        """
        lr_t = self.current_learning_rate()
        updates = []
        for layer in layers:
            if not layer.trainable:
                continue
            for name, param in layer.params.items():
                grad = layer.grads[name]
                if grad.shape != param.shape:
                    raise ValueError(f"SGD: gradient {layer.name}.{name} has shape {grad.shape}, "
                                     f"parameter has {param.shape}")
                velocity = None
                if self.momentum != 0:
                    velocity = self.velocities.get((layer.name, name))
                    if velocity is None:
                        velocity = self.velocities[(layer.name, name)] = np.zeros_like(param)
                updates.append((param, velocity, np.ascontiguousarray(grad, dtype=param.dtype)))
        # One fused pass per parameter, in the parameter's dtype (tinynet.kernels.sgd). Every element's update is
        # independent, so each array is cut in halves and tinynet's threads take one half of every array each.
        lanes: list[list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]] = [[] for _ in range(_UPDATE_LANES)]
        for param, velocity, grad in updates:
            for lane, (start, end) in enumerate(parallel.split_range(param.size, _UPDATE_LANES)):
                lanes[lane].append((param.reshape(-1)[start:end], grad.reshape(-1)[start:end],
                                    None if velocity is None else velocity.reshape(-1)[start:end]))
        non_finite = [0] * _UPDATE_LANES

        def run(slot: int, first: int, stop: int) -> None:
            for lane in range(first, stop):
                for param, grad, velocity in lanes[lane]:
                    non_finite[lane] += sgd_update(param, velocity, grad, lr_t, self.momentum, self.nesterov)

        parallel.parallel_ranges(_UPDATE_LANES, run)
        all_finite = not any(non_finite)
        self.iterations += 1
        return all_finite

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "momentum": self.momentum, "decay": self.decay,
                "nesterov": self.nesterov}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SGD:
        return cls(**config)


_BY_NAME = {"sgd": SGD}


def get(identifier: str | SGD) -> SGD:
    """An optimizer from its name (``'sgd'``, with Keras's defaults) or an instance."""
    if isinstance(identifier, str):
        if identifier.lower() in _BY_NAME:
            return _BY_NAME[identifier.lower()]()
        raise ValueError(f"optimizer: unknown optimizer {identifier!r}; expected one of {', '.join(_BY_NAME)}")
    if hasattr(identifier, "apply_gradients"):
        return identifier
    raise TypeError(f"optimizer: expected an optimizer name or instance, got {type(identifier).__name__}")
