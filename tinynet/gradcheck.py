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

Use it on your own layers::

    from tinynet.gradcheck import check_layer
    report = check_layer(MyLayer(...), input_shape=(5, 5, 3))
    print(report)            # worst entries first
    assert report.passed
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinynet.layers.base import Layer

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


def _as_float64_layer(layer: Layer) -> Layer:
    """The same layer in float64: the layer itself if it already is, else a rebuilt copy with the same weights."""
    if layer.dtype == np.float64:
        return layer
    try:
        twin = type(layer).from_config(layer.get_config() | {"dtype": "float64"})
    except Exception as error:  # a learner's layer without a faithful get_config
        raise TypeError(
            f"check_layer: {layer.name} is {layer.dtype} and could not be rebuilt in float64 from get_config() "
            f"({error}); create it with dtype='float64' or after tinynet.backend.set_floatx('float64')"
        ) from error
    for original, copy in zip(_generators(layer), _generators(twin), strict=False):
        copy.bit_generator.state = original.bit_generator.state
    if layer.built:
        twin.build(layer.input_shape)
        twin.set_weights([w.astype(np.float64) for w in layer.get_weights()])
    return twin


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
    At most ``max_entries`` entries of each array are checked (chosen at random; ``None`` checks all). A float32
    layer is checked through a float64 copy rebuilt from its config and weights.
    """
    rng = np.random.default_rng(seed)
    layer = _as_float64_layer(layer)
    if x is None:
        if input_shape is None:
            raise ValueError("check_layer: give input_shape (per sample, no batch axis) or x")
        x = rng.standard_normal((batch_size, *input_shape))
    x = np.array(x, dtype=np.float64)
    if not layer.built:
        layer.build(x.shape[1:])
    layer.needs_input_gradient = True
    generator_states = [g.bit_generator.state for g in _generators(layer)]
    saved_state = _snapshot_state([layer])

    def forward() -> np.ndarray:
        for generator, state in zip(_generators(layer), generator_states, strict=True):
            generator.bit_generator.state = state
        _restore_state(saved_state)
        return layer.forward(x, training=training)

    output = forward()
    upstream = rng.standard_normal(output.shape)
    dx = layer.backward(upstream.copy())
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
    _restore_state(saved_state)
    return GradcheckReport(subject=f"{type(layer).__name__} {layer.name!r}", entries=entries, rtol=rtol, atol=atol)


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
    x, y = model._check_xy(x, y, "check_model")
    for layer in model.layers:
        if layer.dtype != np.float64:
            raise TypeError(f"check_model: layer {layer.name} is {layer.dtype}; build the model after "
                            "tinynet.backend.set_floatx('float64') (or with dtype='float64' on every layer)")
    x = x.astype(np.float64)
    y = model._gather_targets(y, slice(None))
    rng = np.random.default_rng(seed)
    states = [(g, g.bit_generator.state) for layer in model.layers for g in _generators(layer)]
    saved_state = _snapshot_state(model.layers)

    def forward() -> np.ndarray:
        for generator, state in states:
            generator.bit_generator.state = state
        _restore_state(saved_state)
        return model._forward(x, training=True)

    outputs = forward()
    model._backward(y, outputs)
    analytic = {(layer.name, name): grad.copy() for layer in model.layers for name, grad in layer.grads.items()}

    def objective() -> float:
        value = model.loss(y, forward())
        model._clear_caches()
        return value

    entries = []
    for layer in model.layers:
        for name, param in layer.params.items():
            indices = _sample_indices(param.shape, max_entries, rng)
            numeric = numerical_gradient(objective, param, indices, step)
            entries.append(_compare(f"{layer.name}.{name}", analytic[(layer.name, name)], param.shape, indices,
                                    numeric, rtol, atol))
    _restore_state(saved_state)
    return GradcheckReport(subject=f"model {model.name!r}", entries=entries, rtol=rtol, atol=atol)
