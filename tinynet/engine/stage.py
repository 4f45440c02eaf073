"""What a model's passes run: a *stage*, the layer contract's running half.

A stage is a layer itself (``model.fuse = False``, or a layer the engine has no stand-in for) or an engine object
standing in for one layer or a run of them (:mod:`tinynet.engine.planner`). The passes in
:mod:`tinynet.models.passes` know nothing else about it: they call ``forward`` down the list and ``backward`` back
up, tell each stage whether anyone needs its input gradient, and drop its cache when no backward will come.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from tinynet.layers.base import Layer


class Stage(Protocol):
    """One step of a pass. ``backward`` returns ``None`` when ``needs_input_gradient`` is off (Caffe's
    ``propagate_down``): the first stage with parameters has nobody to hand ``dx`` to."""

    needs_input_gradient: bool
    _cache: Any  # what forward keeps for backward; ``None`` when there is nothing to keep

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray: ...

    def backward(self, dy: np.ndarray) -> np.ndarray | None: ...


@runtime_checkable
class SoftmaxOutputStage(Protocol):
    """A last stage that can start the backward pass at its softmax's input: with a cross-entropy loss the
    gradient there is ``(p - y) / N``, and the softmax's own Jacobian is skipped (Dense, Activation and the
    engine's threaded stand-ins for them)."""

    def backward_preactivation(self, dz: np.ndarray) -> np.ndarray | None: ...


class StandIn:
    """What every engine stage standing in for layers shares: the ``layers`` it runs, a name made of theirs, its
    cache, and ``needs_input_gradient``, which lives on the first layer (the one that receives the stage's input),
    so that setting it on the stage or on the layer is the same thing."""

    _forward_needed = "a forward pass"  # what the error says backward lacked

    def __init__(self, *layers: Layer) -> None:
        self.layers: tuple[Layer, ...] = layers
        self.name = "+".join(layer.name for layer in layers)
        self._cache: Any = None

    @property
    def needs_input_gradient(self) -> bool:
        return self.layers[0].needs_input_gradient

    @needs_input_gradient.setter
    def needs_input_gradient(self, value: bool) -> None:
        self.layers[0].needs_input_gradient = value

    def _take_cache(self) -> Any:
        """Return what forward cached and clear it, or raise if backward comes without a forward."""
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward called without {self._forward_needed} before it")
        cache, self._cache = self._cache, None
        return cache
