"""The layer contract every tinynet layer follows, built-in or written by a learner.

A layer is four methods and three dicts::

    layer.build(input_shape)          # per-sample shape, no batch axis; creates params, sets output_shape
    y  = layer.forward(x, training)   # caches what backward needs in layer._cache
    dx = layer.backward(dy)           # fills layer.grads (same keys as layer.params), returns dL/dx
    layer.get_weights() / set_weights(list)   # Keras layouts and order

    layer.params   {"kernel": W, "bias": b}       trainable arrays, updated by the optimizer (never by the layer)
    layer.grads    {"kernel": dW, "bias": db}     overwritten by every backward (no accumulation across steps)
    layer.state    {"moving_mean": ...}           non-trainable arrays that get_weights still returns

Like Caffe's ``propagate_down``, ``layer.needs_input_gradient = False`` lets ``backward`` skip computing ``dx`` (it
returns ``None``); the model sets it on its first layer, whose input is data. It is ``True`` by default.

Writing a layer: subclass :class:`Layer`, create parameters in ``build`` with :meth:`Layer.add_weight` and call
``super().build(input_shape)`` last, override :meth:`Layer.compute_output_shape` if the shape changes, and write
``forward``/``backward`` side by side with the math in the docstring. Start ``forward`` with
``x = self._prepare_input(x)`` (builds on first use, checks the shape, casts to the layer's dtype) and ``backward``
with ``cache = self._take_cache()`` (raises if there was no forward). See ``docs/custom_layer.md``.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator
from typing import Any, Literal, overload

import numpy as np

from tinynet import backend
from tinynet import initializers as initializers_module

Shape = tuple[int, ...]

#: Called as ``check(layer, weight name, shape)`` by every :meth:`Layer.add_weight` before it allocates, while
#: :func:`checking_weight_allocations` is active. A model loader sets it: building a layer from a config that came
#: in a file must not allocate a weight the file does not hold (a 12 KB file can declare a 16384x16384 Dense).
_weight_allocation_check: contextvars.ContextVar[Callable[[Layer, str, Shape], None] | None] = \
    contextvars.ContextVar("tinynet_weight_allocation_check", default=None)


@contextlib.contextmanager
def checking_weight_allocations(check: Callable[[Layer, str, Shape], None]) -> Iterator[None]:
    """Within the block (in this thread), every ``add_weight`` first calls ``check(layer, name, shape)``, which may
    raise to refuse the allocation."""
    token = _weight_allocation_check.set(check)
    try:
        yield
    finally:
        _weight_allocation_check.reset(token)


def snake_case(name: str) -> str:
    # Keras's rule, so automatic names match its: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d, ReLU -> re_lu.
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


@overload
def normalize_tuple(value: Any, n: Literal[2], argument: str, owner: str) -> tuple[int, int]: ...
@overload
def normalize_tuple(value: Any, n: int, argument: str, owner: str) -> tuple[int, ...]: ...
def normalize_tuple(value: Any, n: int, argument: str, owner: str) -> tuple[int, ...]:
    """Turn ``3`` or ``(3, 3)`` into an ``n``-tuple of positive ints, or raise naming the argument."""
    values = (value,) * n if isinstance(value, int | np.integer) and not isinstance(value, bool) else value
    try:
        values = tuple(values)
    except TypeError:
        raise TypeError(f"{owner}: {argument} must be an int or a tuple of {n} ints, got {value!r}") from None
    if len(values) != n or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{owner}: {argument} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v <= 0 for v in values):
        raise ValueError(f"{owner}: {argument} must be positive, got {value!r}")
    return tuple(int(v) for v in values)


def check_non_negative_number(value: Any, argument: str, owner: str) -> float:
    """``value`` as a float if it is a finite real number >= 0 (not a bool), or raise naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"{owner}: {argument} must be a number, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: {argument} must be a finite number >= 0, got {value!r}")
    return float(value)


class Layer:
    """Base class of all layers. See the module docstring for the contract."""

    def __init__(
        self,
        name: str | None = None,
        input_shape: Shape | None = None,
        dtype: str | None = None,
        trainable: bool = True,
        batch_input_shape: tuple | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {', '.join(sorted(kwargs))}")
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"{type(self).__name__}: name must be a non-empty string, got {name!r}")
        self.name: str = name or backend.unique_name(snake_case(type(self).__name__))
        self.dtype: np.dtype = backend.float_dtype(dtype)
        self.trainable = self._flag(trainable, "trainable")
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.built = False
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self.needs_input_gradient = True
        self._cache: Any = None
        self._scratch_buffers: dict[str, np.ndarray] = {}
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        self._declared_input_shape: Shape | None = (
            None if input_shape is None else self._validate_shape(input_shape, "input_shape")
        )

    # ----------------------------------------------------------------------------------------------- building
    def build(self, input_shape: Shape) -> None:
        """Record the per-sample input shape and compute the output shape. Subclasses create weights first."""
        self.input_shape = self._validate_shape(input_shape, "input_shape")
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """Per-sample output shape for a per-sample input shape (identity unless overridden)."""
        return tuple(input_shape)

    @property
    def _built_input_shape(self) -> Shape:
        """``input_shape`` where the layer must already be built (forward after ``_prepare_input``, backward, the
        engine's stages): the shape itself, never ``None``."""
        if self.input_shape is None:
            raise RuntimeError(f"{self.name}: the layer is not built yet, so its input shape is unknown")
        return self.input_shape

    @property
    def _built_output_shape(self) -> Shape:
        """``output_shape`` where the layer must already be built; see :attr:`_built_input_shape`."""
        if self.output_shape is None:
            raise RuntimeError(f"{self.name}: the layer is not built yet, so its output shape is unknown")
        return self.output_shape

    def add_weight(self, name: str, shape: Shape, initializer: Any = "zeros", trainable: bool = True) -> np.ndarray:
        """Create a parameter (in ``params``, with a zero gradient in ``grads``) or a state array."""
        check = _weight_allocation_check.get()
        if check is not None:
            check(self, name, tuple(int(length) for length in shape))
        init = initializers_module.get(initializer, owner=f"{self.name}.{name}")
        value = np.ascontiguousarray(init(tuple(shape), dtype=self.dtype), dtype=self.dtype)
        if trainable:
            self.params[name] = value
            self.grads[name] = np.zeros_like(value)
        else:
            self.state[name] = value
        return value

    # ------------------------------------------------------------------------------------ forward / backward
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.forward(x, training=training)

    # ------------------------------------------------------------------------------------------------ weights
    @property
    def weight_names(self) -> list[str]:
        """Names in ``get_weights`` order: trainable parameters, then state (Keras's order)."""
        return list(self.params) + list(self.state)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the parameters then the state arrays, in Keras layouts."""
        return [self._weight(name).copy() for name in self.weight_names]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Replace the values of every weight, checking count, shapes and values first (nothing changes on error)."""
        for name, value in zip(self.weight_names, self.check_weights(weights), strict=True):
            # In place, so that anything holding the array (optimizer, fused kernels) sees the new values.
            self._weight(name)[...] = value

    def check_weights(self, weights: list[np.ndarray]) -> list[np.ndarray]:
        """The arrays :meth:`set_weights` would assign, after checking them all; raises naming the layer and the
        weight. A weight must have the weight's shape and hold finite real numbers (floats or ints): a bool, a
        complex number, a date, a string or an object is no weight, and one NaN spreads to every output."""
        names = self.weight_names
        if not self.built:
            raise RuntimeError(f"{self.name}: set_weights called before the layer was built")
        if not isinstance(weights, list | tuple):
            raise TypeError(f"{self.name}: set_weights expects a list of arrays ({', '.join(names)}), "
                            f"got {type(weights).__name__}")
        if len(weights) != len(names):
            raise ValueError(f"{self.name}: expected {len(names)} weight arrays ({', '.join(names)}), "
                             f"got {len(weights)}")
        try:
            arrays = [np.asarray(w) for w in weights]
        except (ValueError, TypeError) as error:
            raise ValueError(f"{self.name}: set_weights expects rectangular arrays ({error})") from None
        for name, value in zip(names, arrays, strict=True):
            if value.shape != self._weight(name).shape:
                raise ValueError(f"{self.name}: weight {name!r} expects shape {self._weight(name).shape}, "
                                 f"got {value.shape}")
            if value.dtype.kind not in "fiu":
                raise ValueError(f"{self.name}: weight {name!r} must hold real numbers (float or int), got dtype "
                                 f"{value.dtype}")
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ValueError(f"{self.name}: weight {name!r} holds non-finite values (NaN or infinity)")
            # Beyond this, the cast to the layer's dtype gives inf (1e300 into float32).
            largest = float(np.finfo(self._weight(name).dtype).max)
            if value.size and max(abs(float(value.max())), abs(float(value.min()))) > largest:
                raise ValueError(f"{self.name}: weight {name!r} holds values beyond the range of "
                                 f"{self._weight(name).dtype}")
        return arrays

    def _weight(self, name: str) -> np.ndarray:
        return self.params[name] if name in self.params else self.state[name]

    def count_params(self) -> int:
        return int(sum(self._weight(name).size for name in self.weight_names))

    # ------------------------------------------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer (Keras's ``get_config``)."""
        config: dict[str, Any] = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}
        if self._declared_input_shape is not None:
            config["input_shape"] = self._declared_input_shape
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """Rebuild a layer from :meth:`get_config`; serialized initializers are turned back into objects."""
        config = {
            key: initializers_module.deserialize(value) if key.endswith("_initializer") else value
            for key, value in config.items()
        }
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} output_shape={self.output_shape}>"

    # ------------------------------------------------------------------------------------ helpers for layers
    def _validate_shape(self, shape: Any, argument: str) -> Shape:
        try:
            values = tuple(shape)
        except TypeError:
            raise TypeError(f"{self.name}: {argument} must be a tuple of ints, got {shape!r}") from None
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0 for v in values):
            raise ValueError(f"{self.name}: {argument} must hold positive ints (no batch axis), got {shape!r}")
        return tuple(int(v) for v in values)

    def _flag(self, value: Any, argument: str) -> bool:
        """A boolean constructor argument (``use_bias``, ``trainable``), or a TypeError naming it."""
        if not isinstance(value, bool | np.bool_):
            raise TypeError(f"{self.name}: {argument} must be True or False, got {value!r}")
        return bool(value)

    def _prepare_input(self, x: Any) -> np.ndarray:
        """Build on first use, check ``x`` is ``(batch, *input_shape)``, cast it to the layer's dtype."""
        if not isinstance(x, np.ndarray):
            try:
                x = np.asarray(x)
            except ValueError as error:
                raise ValueError(f"{self.name}: expected a rectangular numeric array; nested lists of different "
                                 f"lengths cannot become one ({error})") from None
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: expected a numeric array, got dtype {x.dtype}")
        if not self.built:
            if x.ndim < 2:
                raise ValueError(f"{self.name}: expected a batch of shape (batch, ...), got shape {x.shape}")
            self.build(self._declared_input_shape or x.shape[1:])
        input_shape = self._built_input_shape
        if x.ndim != len(input_shape) + 1 or x.shape[1:] != input_shape:
            raise ValueError(
                f"{self.name}: expected input of shape (batch, {', '.join(map(str, input_shape))}), "
                f"got {x.shape}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"{self.name}: got an empty batch (shape {x.shape})")
        return x if x.dtype == self.dtype else x.astype(self.dtype)

    def check_input(self, x: Any) -> np.ndarray:
        """What :meth:`forward` does to its input first: build on first use, check the shape, cast the dtype.

        Public so that code standing in for this layer (the engine's stages) applies the very same checks."""
        return self._prepare_input(x)

    def check_output_gradient(self, dy: Any, expected_shape: tuple[int, ...]) -> np.ndarray:
        """What :meth:`backward` does to ``dy`` first: check it against the output shape, cast the dtype."""
        return self._check_output_gradient(dy, expected_shape)

    def _scratch(self, name: str, shape: tuple[int, ...], fill: float | None = None) -> np.ndarray:
        """A work array of the layer's dtype, reused from call to call while the shape stays the same.

        For intermediates only (im2col matrices and the like), never for what forward returns: the caller may
        keep an output, but nobody outside the layer holds a scratch buffer. ``fill`` sets every element when
        the array is (re)made, for constant helpers such as a vector of ones; callers must not write to those.
        """
        buffer = self._scratch_buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != self.dtype:
            buffer = self._scratch_buffers[name] = np.empty(shape, dtype=self.dtype)
            if fill is not None:
                buffer.fill(fill)
        return buffer

    def _take_cache(self) -> Any:
        """Return what forward cached and clear it, or raise if backward comes without a forward."""
        cache = self._cache
        if cache is None:
            raise RuntimeError(f"{self.name}: backward called without a forward pass before it")
        self._cache = None
        return cache

    def _check_output_gradient(self, dy: Any, expected_shape: tuple[int, ...]) -> np.ndarray:
        """Check ``dy`` matches the last forward's output shape; cast to the layer's dtype."""
        try:
            dy = np.asarray(dy)
        except ValueError as error:
            raise ValueError(f"{self.name}: backward expected an array dy of shape {expected_shape} ({error})") \
                from None
        if dy.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: backward expected a numeric dy, got dtype {dy.dtype}")
        if dy.shape != expected_shape:
            raise ValueError(f"{self.name}: backward expected dy of shape {expected_shape}, got {dy.shape}")
        return dy if dy.dtype == self.dtype else dy.astype(self.dtype)
