"""Gradient checking: compare a layer's or a model's hand-written backward pass with finite differences.

How it works (as in Caffe's checker and cs231n's ``eval_numerical_gradient_array``):

1. Pick a random upstream gradient ``g`` shaped like the output and define the scalar ``s(x, W) = sum(f(x; W) * g)``.
   Its exact gradient with respect to ``x`` is the vector-Jacobian product ``J^T g``: precisely what
   ``layer.backward(g)`` must return, and likewise for each parameter through ``layer.grads``.
2. Estimate the same numbers by central differences, one entry at a time, in float64::

       ds/dv ~ (s(v + h) - s(v - h)) / (2 h)        error O(h^2), h = 1e-6 by default

3. Compare entry by entry: an entry passes when ``|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)``.

Randomness is frozen: every NumPy ``Generator`` the layer owns (a Dropout's mask stream) is rewound to the same
state before each forward pass, so all evaluations see the same mask. Non-trainable state (BatchNormalization's
moving statistics, which a training forward updates) is likewise put back before each forward pass and after the
check, so a check leaves the layer or model exactly as it found it. Functions with kinks (ReLU at 0, max-pool
ties) have no derivative there; draw inputs away from them (the default inputs are Gaussian, which hits a kink
with probability 0, and :func:`check_layer` reports the entries that disagree so a kink is easy to recognise).

:func:`check_layer` checks the very object it is given. A float32 layer is run in float64 on working copies of
its own arrays and restored afterwards, never rebuilt from ``get_config`` (which would drop state the constructor
kept outside the config, and so check a different layer); :func:`check_model` checks the model itself and asks
for a float64 model.

Use it on your own layers::

    from tinynet.learn import check_layer
    report = check_layer(MyLayer(...), input_shape=(5, 5, 3))
    print(report)            # worst entries first
    assert report.passed
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinynet import losses
from tinynet.layers.base import Layer
from tinynet.models.checks import check_xy

__all__ = ["EntryCheck", "GradcheckReport", "check_layer", "check_model", "numerical_gradient"]


@dataclass
class EntryCheck:
    """The comparison for one array (``'x'`` or ``'<layer>.<param>'``)."""

    name: str
    shape: tuple[int, ...]
    checked: int
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    worst_analytic: float
    worst_numeric: float
    failures: list[tuple[tuple[int, ...], float, float]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class GradcheckReport:
    """The result of a check: ``.passed`` is the verdict, ``str(report)`` names the worst entries."""

    subject: str
    entries: list[EntryCheck]
    rtol: float
    atol: float

    @property
    def passed(self) -> bool:
        return all(entry.passed for entry in self.entries)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"gradient check of {self.subject}: {verdict} (rtol={self.rtol:g}, atol={self.atol:g})",
                 f"  {'array':<28} {'shape':<18} {'checked':>7} {'max abs err':>12} {'max rel err':>12}  worst at"]
        for entry in sorted(self.entries, key=lambda e: (e.passed, -e.max_rel_error)):
            mark = "  " if entry.passed else "X "
            lines.append(
                f"{mark}{entry.name:<28} {str(entry.shape):<18} {entry.checked:>7} {entry.max_abs_error:>12.3e} "
                f"{entry.max_rel_error:>12.3e}  {entry.worst_index} analytic={entry.worst_analytic:.6g} "
                f"numeric={entry.worst_numeric:.6g}"
            )
            for index, analytic, numeric in entry.failures[:5]:
                lines.append(f"      wrong at {index}: analytic={analytic:.6g} numeric={numeric:.6g}")
            if len(entry.failures) > 5:
                lines.append(f"      ... and {len(entry.failures) - 5} more wrong entries")
        return "\n".join(lines)


def numerical_gradient(objective: Callable[[], float], array: np.ndarray, indices: list[tuple[int, ...]],
                       step: float = 1e-6) -> np.ndarray:
    """Central differences of ``objective()`` with respect to ``array[index]`` for each index (perturbed in place
    and restored)."""
    estimates = np.empty(len(indices))
    for position, index in enumerate(indices):
        original = array[index]
        array[index] = original + step
        plus = objective()
        array[index] = original - step
        minus = objective()
        array[index] = original
        estimates[position] = (plus - minus) / (2 * step)
    return estimates


def _sample_indices(shape: tuple[int, ...], max_entries: int | None, rng: np.random.Generator) -> list[tuple]:
    size = int(np.prod(shape))
    flat = np.arange(size) if max_entries is None or size <= max_entries else rng.choice(size, max_entries,
                                                                                         replace=False)
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in np.sort(flat)]


def _compare(name: str, analytic: np.ndarray, array_shape: tuple[int, ...], indices: list[tuple],
             numeric: np.ndarray, rtol: float, atol: float) -> EntryCheck:
    picked = np.array([analytic[index] for index in indices], dtype=np.float64)
    abs_error = np.abs(picked - numeric)
    scale = np.maximum(np.abs(picked), np.abs(numeric))
    rel_error = abs_error / np.maximum(scale, 1e-12)
    rel_error[scale < atol] = 0.0  # both essentially zero: nothing to compare relatively
    wrong = abs_error > atol + rtol * scale
    worst = int(np.argmax(abs_error - (atol + rtol * scale))) if len(indices) else 0
    failures = [(indices[i], float(picked[i]), float(numeric[i])) for i in np.flatnonzero(wrong)]
    return EntryCheck(
        name=name, shape=tuple(array_shape), checked=len(indices),
        max_abs_error=float(abs_error.max(initial=0.0)), max_rel_error=float(rel_error.max(initial=0.0)),
        worst_index=indices[worst] if indices else (), worst_analytic=float(picked[worst]) if indices else 0.0,
        worst_numeric=float(numeric[worst]) if indices else 0.0, failures=failures,
    )


def _generators(obj: Any) -> list[np.random.Generator]:
    return [value for value in vars(obj).values() if isinstance(value, np.random.Generator)]


def _snapshot_state(layers: list[Layer]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Copies of every non-trainable state array (moving statistics), paired with the array itself."""
    return [(array, array.copy()) for layer in layers for array in layer.state.values()]


def _restore_state(snapshot: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for array, saved in snapshot:
        array[...] = saved  # in place: the layer keeps its own arrays


def _rewinder(layers: list[Layer]) -> Callable[[], None]:
    """A function that puts every generator and non-trainable state array of ``layers`` back to what it holds
    now, each time it is called: every forward pass of a check then draws the same dropout masks and starts from
    the same moving statistics, and a last call leaves the layers as the check found them."""
    generator_states = [(generator, generator.bit_generator.state) for layer in layers
                        for generator in _generators(layer)]
    saved_state = _snapshot_state(layers)

    def rewind() -> None:
        for generator, state in generator_states:
            generator.bit_generator.state = state
        _restore_state(saved_state)

    return rewind


class _Float64WorkingState:
    """The given layer itself, run in float64 on copies of its arrays, and put back exactly as it was.

    Why not a rebuilt copy: ``type(layer).from_config(layer.get_config())`` silently drops whatever the
    constructor kept that ``get_config`` does not return (a flag, a hand-set attribute), so the checker would
    check a different layer than the one it was given, and could pass a wrong one. Instead, on entry, every
    attribute of the layer is swapped for a working copy: each float array (``params``, ``grads``, ``state``,
    scratch buffers, arrays the learner keeps under their own names) becomes a float64 copy, other arrays plain
    copies, dicts/lists/tuples are rebuilt around the copies, NumPy generators are cloned, and ``dtype`` becomes
    float64. One array reached under two names (``self.kernel`` and ``params['kernel']``) gets one copy, so the
    aliasing survives. ``_cache`` starts empty and ``needs_input_gradient`` is on. On exit the original attribute
    dict is put back: the same objects, never written to, with the same values, dtype, cache and generator
    states.

    What cannot be copied faithfully is refused with a TypeError rather than checked approximately: a sub-layer
    (its weights are not the checked layer's, and its state would change), an array that is a view of another
    (separate copies would come apart), and a float array below float64 hidden inside some other object (it
    would keep computing in float32).
    """

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.original = dict(vars(layer))
        self._copies: dict[int, tuple[Any, Any]] = {}  # id(original) -> (original, copy); keeps the ids alive
        self._arrays: list[tuple[str, np.ndarray]] = []

    def __enter__(self) -> Layer:
        original_dtype = self.layer.dtype
        working = {name: self._copy(value, name, original_dtype) for name, value in self.original.items()
                   if name != "_cache"}
        self._refuse_views()
        working.update(dtype=np.dtype(np.float64), _cache=None, needs_input_gradient=True)
        vars(self.layer).update(working)
        return self.layer

    def __exit__(self, *exc_info: object) -> None:
        attributes = vars(self.layer)
        attributes.clear()
        attributes.update(self.original)

    def _refuse(self, where: str, why: str) -> TypeError:
        return TypeError(
            f"check_layer: cannot check {self.layer.name} ({type(self.layer).__name__}) in float64: {where} {why}; "
            "create the layer with dtype='float64' (or after tinynet.backend.set_floatx('float64'))"
        )

    def _copy(self, value: Any, where: str, original_dtype: np.dtype) -> Any:
        if id(value) in self._copies:
            return self._copies[id(value)][1]
        copy: Any  # the value's float64 twin: an array, a dict, a tuple, a dtype, a generator...
        if isinstance(value, np.ndarray):
            copy = value.astype(np.float64) if value.dtype.kind == "f" else value.copy(order="K")
            self._arrays.append((where, value))
        elif isinstance(value, np.random.Generator):
            copy = deepcopy(value)  # the same stream from the same state; the original never advances
        elif isinstance(value, Layer):
            raise self._refuse(where, f"holds the layer {value.name}, whose weights this check would not cover "
                               "and whose state it would change (check that layer on its own, or both in a model "
                               "with check_model)")
        elif type(value) is dict:
            copy = {key: self._copy(item, f"{where}[{key!r}]", original_dtype) for key, item in value.items()}
        elif type(value) in (list, tuple):
            copy = type(value)(self._copy(item, f"{where}[{i}]", original_dtype) for i, item in enumerate(value))
        elif isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
            copy = type(value)(*(self._copy(item, f"{where}.{name}", original_dtype)
                                 for name, item in zip(value._fields, value, strict=True)))
        elif isinstance(value, np.dtype) and value == original_dtype:
            copy = np.dtype(np.float64)  # a dtype the layer saved for itself follows the layer's
        elif isinstance(value, np.floating):
            copy = np.float64(value)
        else:
            self._refuse_hidden_arrays(value, where)
            copy = value  # str, numbers, callables, initializers: nothing to convert or to restore
        self._copies[id(value)] = (value, copy)
        return copy

    def _refuse_hidden_arrays(self, value: Any, where: str) -> None:
        inner = getattr(value, "__dict__", None)
        if not isinstance(inner, dict) or isinstance(value, type):
            return
        for name, item in inner.items():
            if isinstance(item, np.ndarray) and item.dtype.kind == "f" and item.dtype != np.float64:
                raise self._refuse(f"{where}.{name}", f"is a {item.dtype} array inside a "
                                   f"{type(value).__name__} object, which this check cannot convert")

    def _refuse_views(self) -> None:
        for position, (where, array) in enumerate(self._arrays):
            for other_where, other in self._arrays[position + 1:]:
                if np.shares_memory(array, other):
                    raise self._refuse(where, f"shares memory with {other_where} (a view), which separate "
                                       "float64 copies would not reproduce")


def check_layer(
    layer: Layer,
    input_shape: tuple[int, ...] | None = None,
    *,
    x: np.ndarray | None = None,
    batch_size: int = 2,
    training: bool = True,
    seed: int = 0,
    step: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    max_entries: int | None = 200,
) -> GradcheckReport:
    """Check ``layer.backward`` (``dx`` and every parameter gradient) against central differences in float64.

    ``input_shape`` is per sample, as ``build`` takes it; or give the input ``x`` itself (with its batch axis).
    At most ``max_entries`` entries of each array are checked (chosen at random; ``None`` checks all).

    The very object given is checked, whatever its dtype: it runs in float64 on working copies of its own arrays
    (see :class:`_Float64WorkingState`) and is put back afterwards with the same dtype, the same weight arrays
    holding the same values, the same cache and the same generator states. An unbuilt layer is first built for
    ``x``'s shape, as its first forward would. A layer that cannot be run in float64 faithfully (it holds a
    sub-layer, or float32 arrays hidden inside another object) is refused with a TypeError, never replaced by a
    look-alike.
    """
    rng = np.random.default_rng(seed)
    if x is None:
        if input_shape is None:
            raise ValueError("check_layer: give input_shape (per sample, no batch axis) or x")
        x = rng.standard_normal((batch_size, *input_shape))
    x = np.array(x, dtype=np.float64)
    if not layer.built:
        layer.build(x.shape[1:])
    with _Float64WorkingState(layer):
        entries = _check_float64_layer(layer, x, training, rng, step, rtol, atol, max_entries)
    return GradcheckReport(subject=f"{type(layer).__name__} {layer.name!r}", entries=entries, rtol=rtol, atol=atol)


def _check_float64_layer(layer: Layer, x: np.ndarray, training: bool, rng: np.random.Generator, step: float,
                         rtol: float, atol: float, max_entries: int | None) -> list[EntryCheck]:
    """The comparisons for a layer already running in float64 (its working state: changes here are discarded)."""
    rewind = _rewinder([layer])

    def forward() -> np.ndarray:
        rewind()
        return layer.forward(x, training=training)

    output = forward()
    upstream = rng.standard_normal(output.shape)
    dx = layer.backward(upstream.copy())
    if dx is None:
        raise ValueError(f"check_layer: {layer.name}.backward returned None with needs_input_gradient on; it must "
                         "return dx, the gradient with respect to its input")
    analytic = {name: grad.copy() for name, grad in layer.grads.items()}

    def objective() -> float:
        value = float(np.sum(forward() * upstream))
        layer._cache = None
        return value

    entries = []
    indices = _sample_indices(x.shape, max_entries, rng)
    entries.append(_compare("x", dx, x.shape, indices, numerical_gradient(objective, x, indices, step), rtol, atol))
    for name, param in layer.params.items():
        indices = _sample_indices(param.shape, max_entries, rng)
        numeric = numerical_gradient(objective, param, indices, step)
        entries.append(_compare(f"{layer.name}.{name}", analytic[name], param.shape, indices, numeric, rtol, atol))
    return entries


def check_model(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int = 0,
    step: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    max_entries: int | None = 50,
) -> GradcheckReport:
    """Check every parameter gradient of a compiled float64 model for the loss on ``(x, y)``.

    The loss is the model's compiled loss, with dropout on and its masks frozen; the analytic side is the model's
    own backward pass (fused softmax/cross-entropy included).
    """
    if model.loss is None:
        raise RuntimeError("check_model: compile the model first (the loss is part of what is checked)")
    x, y = check_xy(model, x, y, "check_model")
    for layer in model.layers:
        if layer.dtype != np.float64:
            raise TypeError(f"check_model: layer {layer.name} is {layer.dtype}; build the model after "
                            "tinynet.backend.set_floatx('float64') (or with dtype='float64' on every layer)")
    x = x.astype(np.float64)
    rng = np.random.default_rng(seed)
    rewind = _rewinder(model.layers)

    # Sparse labels stay integers; other targets take the model's float type, as the training step casts them.
    targets = y if isinstance(model.loss, losses.SparseCategoricalCrossentropy) else y.astype(np.float64)

    model.compute_gradients(x, y)  # the model's own public step, without the update
    analytic = {(layer.name, name): grad.copy() for layer in model.layers for name, grad in layer.grads.items()}

    def objective() -> float:
        rewind()
        return model.loss(targets, model(x, training=True))

    entries = []
    for layer in model.layers:
        for name, param in layer.params.items():
            indices = _sample_indices(param.shape, max_entries, rng)
            numeric = numerical_gradient(objective, param, indices, step)
            entries.append(_compare(f"{layer.name}.{name}", analytic[(layer.name, name)], param.shape, indices,
                                    numeric, rtol, atol))
    rewind()
    return GradcheckReport(subject=f"model {model.name!r}", entries=entries, rtol=rtol, atol=atol)
