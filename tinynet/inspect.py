"""Looking inside a network: what each layer costs, what one step does, and what training does to every layer.

Three tools for learners, from a single step to a whole run:

* **Costs** -- :func:`forward_flops` and :func:`activation_bytes` per layer; ``model.summary(batch_size=32)``
  prints them as two extra columns.
* **One step, traced** -- :func:`trace_step` runs one forward and backward pass on a batch and returns, per
  layer, the shapes and a few summary numbers of what went in and out both ways (``examples/inspect_backprop.py``
  prints it for the tutorial CNN).
* **A whole run, recorded** -- :class:`TrainingRecorder` is a callback for ``fit`` that records, every ``every``
  steps, each layer's activation mean and standard deviation, the fraction of dead ReLU units, and for each
  parameter its gradient norm and its update ratio ``||W_after - W_before|| / ||W_before||``, as a long pandas
  table (``recorder.to_dataframe()``). :func:`plot_gradient_norms`, :func:`plot_update_ratios` and
  :func:`plot_activations` draw it; :func:`save_inspection` writes the table and the three pictures
  (``tinynet train --inspect`` calls it).

How the hooks work: the model calls ``layer.forward`` and ``layer.backward`` (``backward_preactivation`` for a
softmax fused with the loss) on each layer object. A hook replaces those methods *on the instance* with a wrapper
that calls the original and then looks at its arguments and result, and puts the original back afterwards. No
layer and no model code changes, and a layer a learner writes is inspected the same way.

What the numbers tell you (the usual rules of thumb, not laws):

* gradient norms that shrink layer after layer towards the input mean vanishing gradients; norms that grow by
  orders of magnitude mean exploding ones;
* an update ratio near ``1e-3`` per step is the classic healthy value for SGD; ``1e-5`` means that layer hardly
  learns (learning rate too small for it), ``1e-1`` means each step rewrites it;
* a dead ReLU unit outputs 0 for every sample of the batch, so it passes no gradient and cannot recover; a
  dead fraction that climbs during training means the learning rate pushed units below zero for good.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinynet.callbacks import Callback
from tinynet.fileio import atomic_write
from tinynet.layers import (
    Activation,
    Conv2D,
    Dense,
    Layer,
    ReLU,
)
from tinynet.models.checks import check_xy
from tinynet.models.costs import activation_bytes, format_bytes, forward_flops

__all__ = [
    "LayerTrace",
    "TrainingRecorder",
    "activation_bytes",
    "dead_fraction",
    "format_bytes",
    "forward_flops",
    "install_hooks",
    "is_relu",
    "plot_activations",
    "plot_gradient_norms",
    "plot_update_ratios",
    "save_inspection",
    "trace_step",
]

COLUMNS = ["step", "epoch", "layer", "quantity", "value"]


# ------------------------------------------------------------------------------------------------- hooks
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
        if after_forward is not None:
            layer.forward = _forward_wrapper(layer, layer.forward, after_forward)
        if after_backward is not None:
            layer.backward = _backward_wrapper(layer, layer.backward, after_backward, fused=False)
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


def _run_layer_by_layer(model: Any) -> bool | None:
    """Turn the model's fused stages off (see :mod:`tinynet.engine`) so that every layer's own forward and
    backward run, and the hooks see each of them; return the previous setting. Fused and unfused runs compute
    the same numbers bit for bit, so this changes what can be seen, not what is computed."""
    previous = getattr(model, "fuse", None)
    if previous is not None:
        model.fuse = False
    return previous


def _restore_fusion(model: Any, previous: bool | None) -> None:
    if previous is not None:
        model.fuse = previous


def _norm(array: np.ndarray) -> float:
    return float(np.sqrt(np.sum(np.square(array, dtype=np.float64))))


def is_relu(layer: Layer) -> bool:
    """True for layers whose output is a plain rectifier: ``Activation('relu')``, ``Conv2D``/``Dense`` with
    ``activation='relu'``, and ``ReLU`` without a negative slope."""
    if isinstance(layer, ReLU):
        return layer.negative_slope == 0
    activation = getattr(layer, "activation", None)
    return isinstance(layer, Activation | Conv2D | Dense) and getattr(activation, "name", None) == "relu"


def dead_fraction(y: np.ndarray) -> float:
    """Fraction of units (entries of one sample's output) that are exactly 0 for every sample of the batch."""
    return float(np.mean(np.all(y == 0, axis=0)))


# -------------------------------------------------------------------------------------------- one step
@dataclass
class LayerTrace:
    """What one layer saw in one training step (forward, then backward)."""

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    output_mean: float
    output_std: float
    output_dead_fraction: float | None = None
    upstream_shape: tuple[int, ...] | None = None  # dL/d(output) (dL/dz when fused), arriving in backward
    upstream_norm: float | None = None
    fused: bool = False
    input_gradient_shape: tuple[int, ...] | None = None  # dL/d(input), sent on; None when not needed
    input_gradient_norm: float | None = None
    gradient_norms: dict[str, float] = field(default_factory=dict)  # ||dL/dW|| per parameter
    gradients: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def trace_step(model: Any, x: np.ndarray, y: np.ndarray, training: bool = True) -> list[LayerTrace]:
    """Run one forward and one backward pass of a compiled model on ``(x, y)`` and trace it layer by layer.

    Nothing is updated: the optimizer is not called (the gradients are left in each ``layer.grads`` and copied
    into the traces). ``training=True`` runs dropout and batch statistics as ``fit`` would.
    """
    if getattr(model, "loss", None) is None:
        raise RuntimeError("trace_step: compile the model first (the loss starts the backward pass)")
    x, y = check_xy(model, x, y, "trace_step")
    traces: dict[str, LayerTrace] = {}

    def after_forward(layer: Layer, inputs: np.ndarray, outputs: np.ndarray, is_training: bool) -> None:
        traces[layer.name] = LayerTrace(
            name=layer.name, kind=type(layer).__name__, input_shape=tuple(inputs.shape),
            output_shape=tuple(outputs.shape), output_mean=float(np.mean(outputs, dtype=np.float64)),
            output_std=float(np.std(outputs, dtype=np.float64)),
            output_dead_fraction=dead_fraction(outputs) if is_relu(layer) else None)

    def after_backward(layer: Layer, dy: np.ndarray, dx: Any, fused: bool) -> None:
        trace = traces[layer.name]
        trace.upstream_shape, trace.upstream_norm, trace.fused = tuple(np.shape(dy)), _norm(dy), fused
        if dx is not None:
            trace.input_gradient_shape, trace.input_gradient_norm = tuple(dx.shape), _norm(dx)

    restore = install_hooks(model.layers, after_forward, after_backward)
    fuse = _run_layer_by_layer(model)
    try:
        model.compute_gradients(x, y, training=training)  # the model's own step, without the update
    finally:
        restore()
        _restore_fusion(model, fuse)
    for layer in model.layers:
        trace = traces[layer.name]
        if trace.upstream_shape is not None:
            trace.gradients = {name: grad.copy() for name, grad in layer.grads.items()}
            trace.gradient_norms = {name: _norm(grad) for name, grad in layer.grads.items()}
    return [traces[layer.name] for layer in model.layers]


# --------------------------------------------------------------------------------------------- recorder
class TrainingRecorder(Callback):
    """A ``fit`` callback that records, every ``every`` training steps, what happens inside each layer.

    Per layer (``layer`` column is its name): ``activation_mean`` and ``activation_std`` of its output on the
    training batch; ``dead_fraction`` for ReLU outputs (see :func:`dead_fraction`). Per parameter ``p``:
    ``grad_norm/p`` (the L2 norm of ``dL/dp`` from this step's backward pass), ``weight_norm/p`` and
    ``update_ratio/p`` (``||p_after - p_before|| / ||p_before||`` over this step's optimizer update; NaN while
    ``p`` is all zeros, as a bias is at the start). Per step, layer ``model``: the batch ``loss``.

    ``recorder.to_dataframe()`` gives the long table ``step, epoch, layer, quantity, value``; ``step`` counts
    training batches from 0 and keeps counting over later ``fit`` calls with the same recorder. Pivot it with
    ``frame.pivot_table(index='step', columns=['layer', 'quantity'], values='value')``.

    Recording copies the parameters before each recorded step (to measure the update) and reduces each output
    to a few numbers at once: memory stays small, and ``every=10`` makes the cost negligible. The step itself is
    never changed: before a recorded step, a shadow forward pass runs the same batch through the layers one by
    one (the fused stages of :mod:`tinynet.engine` show no inner outputs) with the random generators and moving
    statistics put back afterwards, so the step draws the same dropout mask and training gives the same bits as
    without the recorder. The activation figures come from that pass (equal to the fused step's up to float
    rounding); the gradients and updates are the step's own.
    """

    def __init__(self, every: int = 1) -> None:
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int | np.integer) or every < 1:
            raise ValueError(f"TrainingRecorder: every must be a positive int (record one step in every), "
                             f"got {every!r}")
        self.every = int(every)
        self.step = 0
        self.epoch = 0
        self.rows: list[tuple[int, int, str, str, float]] = []
        self._recording = False
        self._activations: dict[str, dict[str, float]] = {}
        self._weights_before: dict[tuple[str, str], np.ndarray] = {}
        self._restore: Callable[[], None] | None = None
        self._capturing = False

    # Hooks are installed for the length of fit and removed at its end, even when it ends on an error.
    def on_train_begin(self, logs: dict | None = None) -> None:
        self.on_train_end()  # a previous fit that ended on an error never called it: undo what it left
        model = self.model
        remove_layer_hooks = install_hooks(model.layers, after_forward=self._after_forward)
        step = model.compute_gradients  # the public step's first half, wrapped on this instance only

        def compute_gradients(x: np.ndarray, y: np.ndarray, training: bool = True,
                              sample_weight: np.ndarray | None = None) -> dict[str, float]:
            if self._recording and training:
                self._shadow_forward(x)
            return step(x, y, training=training, sample_weight=sample_weight)

        model.compute_gradients = compute_gradients

        def restore() -> None:
            remove_layer_hooks()
            if vars(model).get("compute_gradients") is compute_gradients:
                del model.compute_gradients

        self._restore = restore

    def on_train_end(self, logs: dict | None = None) -> None:
        self._recording = False
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        if self._restore is not None:
            self._restore()
            self._restore = None

    def _shadow_forward(self, x: np.ndarray) -> None:
        """The batch through every layer on its own, leaving the model exactly as it was (generators rewound,
        moving statistics put back), so that the real step that follows is the step training would take."""
        model = self.model
        generators = [(generator, generator.bit_generator.state) for layer in model.layers
                      for generator in vars(layer).values() if isinstance(generator, np.random.Generator)]
        moving = [(array, array.copy()) for layer in model.layers for array in layer.state.values()]
        fuse = _run_layer_by_layer(model)
        self._capturing = True
        try:
            model(x, training=True)
        finally:
            self._capturing = False
            _restore_fusion(model, fuse)
            for generator, state in generators:
                generator.bit_generator.state = state
            for array, saved in moving:
                array[...] = saved

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._recording = self.step % self.every == 0
        self._activations = {}
        if self._recording:
            self._weights_before = {(layer.name, name): param.copy() for layer in self.model.layers
                                    if layer.trainable for name, param in layer.params.items()}

    def _after_forward(self, layer: Layer, x: np.ndarray, y: np.ndarray, training: bool) -> None:
        if not (self._capturing and training):
            return  # the real step (fused or not), validation and predict are not recorded
        stats = {"activation_mean": float(np.mean(y, dtype=np.float64)),
                 "activation_std": float(np.std(y, dtype=np.float64))}
        if is_relu(layer):
            stats["dead_fraction"] = dead_fraction(y)
        self._activations[layer.name] = stats

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._recording:
            self._record_step(logs or {})
        self._recording = False
        self.step += 1

    def _record_step(self, logs: dict) -> None:
        add = self.rows.append
        for layer in self.model.layers:
            for quantity, value in self._activations.get(layer.name, {}).items():
                add((self.step, self.epoch, layer.name, quantity, value))
            if not layer.trainable:
                continue
            for name, param in layer.params.items():
                before = self._weights_before.get((layer.name, name))
                add((self.step, self.epoch, layer.name, f"grad_norm/{name}", _norm(layer.grads[name])))
                add((self.step, self.epoch, layer.name, f"weight_norm/{name}", _norm(param)))
                if before is not None:
                    before_norm = _norm(before)
                    ratio = _norm(param - before) / before_norm if before_norm > 0 else float("nan")
                    add((self.step, self.epoch, layer.name, f"update_ratio/{name}", ratio))
        if "loss" in logs:
            add((self.step, self.epoch, "model", "loss", float(logs["loss"])))

    def to_dataframe(self):
        """The records as a pandas DataFrame with columns ``step, epoch, layer, quantity, value``."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=COLUMNS)


# --------------------------------------------------------------------------------------------- pictures
# Colour per layer (in model order), line style per parameter: a kernel solid, its bias dashed.
_PARAMETER_STYLES = {"kernel": "-", "bias": "--", "gamma": "-.", "beta": ":"}


def _layer_order(frame) -> list[str]:
    return list(dict.fromkeys(frame["layer"]))  # first appearance = model order


def _series(frame, prefix: str) -> list[tuple[str, str, Any]]:
    """``(layer, parameter, table of step -> value)`` for every quantity ``prefix/<parameter>``."""
    chosen = frame[frame["quantity"].str.startswith(prefix + "/")]
    series = []
    for layer in _layer_order(chosen):
        rows = chosen[chosen["layer"] == layer]
        for quantity in dict.fromkeys(rows["quantity"]):
            values = rows[rows["quantity"] == quantity].sort_values("step")
            series.append((layer, quantity.split("/", 1)[1], values))
    return series


def _check_frame(frame, function: str):
    import pandas as pd

    if isinstance(frame, TrainingRecorder):
        frame = frame.to_dataframe()
    if not isinstance(frame, pd.DataFrame) or not set(COLUMNS) <= set(frame.columns):
        raise TypeError(f"{function}: expected a TrainingRecorder or its to_dataframe() table "
                        f"(columns {', '.join(COLUMNS)}), got {type(frame).__name__}")
    if frame.empty:
        raise ValueError(f"{function}: the table is empty; record at least one training step first")
    return frame


def _new_axes(title: str, ylabel: str, height: float = 4.8):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, height), layout="constrained")
    axes = figure.subplots()
    axes.set_title(title)
    axes.set_xlabel("training step (batch)")
    axes.set_ylabel(ylabel)
    axes.grid(True, which="major", alpha=0.3)
    return figure, axes


def _mark_epochs(axes, frame) -> None:
    """A faint vertical line where each epoch after the first begins, labelled with Keras's epoch number."""
    starts = frame.groupby("epoch")["step"].min().sort_index()
    for epoch, step in list(starts.items())[1:]:
        axes.axvline(step, color="0.6", linewidth=0.8, linestyle=":", zorder=0)
        axes.annotate(f"epoch {epoch + 1}", (step, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                      textcoords="offset points", fontsize="x-small", color="0.4")


def _plot_per_parameter(frame, prefix: str, path, title: str, ylabel: str, reference: float | None = None,
                        reference_label: str = "") -> Path:
    from matplotlib import colormaps

    series = _series(frame, prefix)
    if not series:
        raise ValueError(f"no '{prefix}/...' quantities in the table to plot")
    figure, axes = _new_axes(title, ylabel)
    layers = list(dict.fromkeys(layer for layer, _, _ in series))
    palette = colormaps["tab10" if len(layers) <= 10 else "tab20"]
    for layer, parameter, values in series:
        positive = values[values["value"] > 0]  # a log axis cannot show 0 or NaN (an all-zero bias at step 0)
        if positive.empty:
            continue
        axes.plot(positive["step"], positive["value"], color=palette(layers.index(layer) % palette.N),
                  linestyle=_PARAMETER_STYLES.get(parameter, "-"), linewidth=1.4, label=f"{layer}.{parameter}",
                  marker="o" if len(positive) == 1 else None)
    axes.set_yscale("log")
    if reference is not None:
        axes.axhline(reference, color="0.3", linewidth=1, linestyle=(0, (4, 3)), label=reference_label)
    _mark_epochs(axes, frame)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False,
                title="layer.parameter")
    return _save(figure, path)


def plot_gradient_norms(frame, path: str | os.PathLike) -> Path:
    """Gradient norm ``||dL/dW||`` of every parameter over training (log scale), one colour per layer."""
    frame = _check_frame(frame, "plot_gradient_norms")
    return _plot_per_parameter(frame, "grad_norm", path, "Gradient norm per parameter", "||dL/dW||  (log scale)")


def plot_update_ratios(frame, path: str | os.PathLike) -> Path:
    """Update ratio ``||delta W|| / ||W||`` per step for every parameter (log scale), with the 1e-3 guide line."""
    frame = _check_frame(frame, "plot_update_ratios")
    return _plot_per_parameter(frame, "update_ratio", path, "Size of each update relative to the weights",
                               "||delta W|| / ||W||  (log scale)", reference=1e-3,
                               reference_label="1e-3 (rule of thumb)")


def plot_activations(frame, path: str | os.PathLike) -> Path:
    """Two panels over training: each layer's output standard deviation (log scale), and the fraction of dead
    units of each ReLU."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    frame = _check_frame(frame, "plot_activations")
    figure = Figure(figsize=(10, 7.5), layout="constrained")
    std_axes, dead_axes = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    layers = [layer for layer in _layer_order(frame) if layer != "model"]
    palette = colormaps["tab10" if len(layers) <= 10 else "tab20"]
    for axes, quantity in ((std_axes, "activation_std"), (dead_axes, "dead_fraction")):
        for layer in layers:
            values = frame[(frame["layer"] == layer) & (frame["quantity"] == quantity)].sort_values("step")
            if quantity == "activation_std":
                values = values[values["value"] > 0]
            if not values.empty:
                axes.plot(values["step"], values["value"], color=palette(layers.index(layer) % palette.N),
                          linewidth=1.4, label=layer, marker="o" if len(values) == 1 else None)
        axes.grid(True, alpha=0.3)
        _mark_epochs(axes, frame)
    std_axes.set_yscale("log")
    std_axes.set_title("Layer outputs during training")
    std_axes.set_ylabel("std of the output  (log scale)")
    std_axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False, title="layer")
    dead_axes.set_ylabel("dead ReLU units (fraction)")
    dead_axes.set_xlabel("training step (batch)")
    dead = frame.loc[frame["quantity"] == "dead_fraction", "value"]
    # Zoom on the values (dead fractions are usually small) but never past 1, and keep 0 in sight.
    top = min(1.02, max(0.1, 1.25 * float(dead.max()))) if not dead.empty else 1.02
    dead_axes.set_ylim(-0.01 * top, top)
    if dead_axes.get_legend_handles_labels()[0]:
        dead_axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False,
                         title="ReLU layer")
    else:
        dead_axes.text(0.5, 0.5, "no ReLU layers", transform=dead_axes.transAxes, ha="center", color="0.4")
    return _save(figure, path)


def _save(figure, path: str | os.PathLike) -> Path:
    """Write the figure as PNG atomically: the old picture or the whole new one, never half."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must name a .png file, got {str(path)!r}")
    with atomic_write(path) as file:
        # bbox_inches="tight" keeps the legend placed outside the axes inside the picture.
        figure.savefig(file, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
    return path


def save_inspection(recorder: TrainingRecorder | Any, folder: str | os.PathLike) -> list[Path]:
    """Write ``inspect.csv`` (the long table) and ``gradient_norms.png``, ``update_ratios.png`` and
    ``activations.png`` into ``folder``; return their paths."""
    frame = _check_frame(recorder, "save_inspection")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "inspect.csv"
    with atomic_write(table) as file:
        file.write(frame.to_csv(index=False, float_format="%.6g").encode())
    return [table, plot_gradient_norms(frame, folder / "gradient_norms.png"),
            plot_update_ratios(frame, folder / "update_ratios.png"),
            plot_activations(frame, folder / "activations.png")]
