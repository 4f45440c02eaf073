"""Hooks on layers: see every forward and backward call of a layer without changing layer or model code.

The model calls ``layer.forward`` and ``layer.backward`` (``backward_preactivation`` for a softmax fused with the
loss) on each layer object. A hook replaces those methods *on the instance* with a wrapper that calls the original
and then looks at its arguments and result, and puts the original back afterwards. No layer and no model code
changes, and a layer a learner writes is inspected the same way. The engine's fused stages never call a layer's
own methods, so the tools here run the model layer by layer while they watch (:func:`run_layer_by_layer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinynet.layers import Layer

_HOOKED_METHODS = ("forward", "backward", "backward_preactivation")

ForwardHook = Callable[[Layer, np.ndarray, np.ndarray, bool], None]
BackwardHook = Callable[[Layer, np.ndarray, Any, bool], None]


def install_hooks(layers: Iterable[Layer], after_forward: ForwardHook | None = None,
                  after_backward: BackwardHook | None = None) -> Callable[[], None]:
    """Wrap each layer's forward/backward so the hooks see every call; returns a function that unwraps them.

    ``after_forward(layer, x, y, training)`` runs after each forward; ``after_backward(layer, dy, dx, fused)``
    after each backward, where ``dy`` is the gradient that arrived at the layer's output (``dL/dz`` before its
    activation when ``fused``, the fused softmax/cross-entropy path) and ``dx`` what it sent on (``None`` for a
    layer that needs no input gradient).
    """
    restorers = []
    for layer in layers:
        saved = {name: vars(layer).get(name) for name in _HOOKED_METHODS}
        # Each wrapper is an instance attribute shadowing the class's method until restore() removes it, which mypy
        # (rightly, in general) calls assigning to a method.
        if after_forward is not None:
            layer.forward = _forward_wrapper(layer, layer.forward, after_forward)  # type: ignore[method-assign]
        if after_backward is not None:
            layer.backward = _backward_wrapper(  # type: ignore[method-assign]
                layer, layer.backward, after_backward, fused=False)
            if hasattr(layer, "backward_preactivation"):
                layer.backward_preactivation = _backward_wrapper(layer, layer.backward_preactivation,
                                                                 after_backward, fused=True)
        restorers.append((layer, saved))

    def restore() -> None:
        for hooked_layer, originals in restorers:
            for name, original in originals.items():
                if original is None:
                    vars(hooked_layer).pop(name, None)  # back to the class's method
                else:
                    setattr(hooked_layer, name, original)  # someone else's wrapper was there first

    return restore


def _forward_wrapper(layer: Layer, original: Callable, hook: ForwardHook) -> Callable:
    def forward(x: np.ndarray, training: bool = False) -> np.ndarray:
        y = original(x, training=training)
        hook(layer, x, y, training)
        return y

    return forward


def _backward_wrapper(layer: Layer, original: Callable, hook: BackwardHook, fused: bool) -> Callable:
    def backward(dy: np.ndarray) -> np.ndarray | None:
        dx = original(dy)
        hook(layer, dy, dx, fused)
        return dx

    return backward


def run_layer_by_layer(model: Any) -> bool | None:
    """Turn the model's fused stages off (see :mod:`tinynet.engine`) so that every layer's own forward and
    backward run, and the hooks see each of them; return the previous setting. Fused and unfused runs compute
    the same numbers bit for bit, so this changes what can be seen, not what is computed."""
    previous = getattr(model, "fuse", None)
    if previous is not None:
        model.fuse = False
    return previous


def restore_fusion(model: Any, previous: bool | None) -> None:
    if previous is not None:
        model.fuse = previous


def l2_norm(array: np.ndarray) -> float:
    """The Euclidean norm of every entry, summed in float64 (a float32 sum of squares loses digits)."""
    return float(np.sqrt(np.sum(np.square(array, dtype=np.float64))))
