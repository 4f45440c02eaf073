"""Sequential: a stack of layers trained with a loss and an optimizer, with Keras 2's API.

One training step reads straight down the stack and back (:meth:`Sequential.train_step`)::

    y = x
    for layer in layers:            y = layer.forward(y, training=True)     # each caches what it needs
    loss = loss_fn(targets, y, w)               # w: per-sample weights, or None for the plain mean
    dy = loss_fn.gradient(targets, y, w)        # or the fused softmax gradient (p - y) / N into the last layer
    for layer in reversed(layers):  dy = layer.backward(dy)                  # each fills layer.grads
    optimizer.apply_gradients(layers)           # reads layer.grads, updates layer.params

The first four lines are :meth:`Sequential.compute_gradients`, the public seam where data-parallel training
averages the gradients before the optimizer applies them. With ``model.fuse`` on (the default), the engine's
planner (:mod:`tinynet.engine`) stands in for runs of layers with fused stages that compute the same thing; the
passes through either are in :mod:`tinynet.models.passes`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinynet import backend, losses, optimizers
from tinynet import metrics as metrics_module
from tinynet.callbacks import Callback, History
from tinynet.engine.compiled_inference import CompiledInference
from tinynet.engine.compiled_training import CompiledTraining
from tinynet.engine.stage import Stage
from tinynet.layers.base import Layer
from tinynet.models import evaluation, passes
from tinynet.models.checks import check_model_weights, check_x, check_xy
from tinynet.models.keras2_aliases import Keras2Aliases
from tinynet.models.numerics import NumericalFaultError, arrays_are_finite, locate_fault
from tinynet.models.sample_weights import sample_weights


class Sequential(Keras2Aliases):
    """A linear stack of layers: ``Sequential([Conv2D(...), ...])`` or ``model.add(layer)`` one by one.

    Each layer is built as soon as its input shape is known: at ``add`` when the first layer names
    ``input_shape``, so a shape mistake is reported on the line that defines the model.
    """

    def __init__(self, layers: Iterable[Layer] | None = None, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"Sequential: name must be a non-empty string, got {name!r}")
        self.name = name or backend.unique_name("sequential")
        self.layers: list[Layer] = []
        self.optimizer: Any = None
        self.loss: losses.Loss | None = None
        #: The keys of what ``evaluate`` returns and ``fit`` logs: ``loss``, then one per metric asked for.
        self.metrics_names: list[str] = ["loss"]
        self._metrics: list[tuple[str, Callable[[np.ndarray, np.ndarray], Any]]] = []
        self._metric_requests: list[Any] = []  # as compile was given them, for saving
        self.stop_training = False
        self.history: History | None = None
        self._shuffle_generator = backend.new_generator()
        #: Run fusable layer patterns as the engine's stages (:mod:`tinynet.engine`); False runs every layer on its own.
        self.fuse = True
        # (what the plan was made for, the plan): see passes.stages.
        self._stage_plan: tuple[object, list[Stage]] | None = None
        # (the plan it was made for, whether it was enabled, the whole-network inference or None): passes.py
        self._compiled_inference: tuple[list[Stage], tuple[bool, bool], CompiledInference | None] | None = None
        # (the network it was made for, what else it depends on, the compiled training passes or None): passes.py
        self._compiled_training: (tuple[CompiledInference | None, tuple[object, ...], CompiledTraining | None]
                                  | None) = None
        #: Epochs completed so far (Keras numbering): the ``initial_epoch`` that continues this model's training.
        self.epochs_done = 0
        #: The :class:`NumericalFaultError` ``fit`` handed to the callbacks (TerminateOnNaN) in the current epoch,
        #: else None: an epoch with a fault is never a good epoch, and ModelCheckpoint does not save it.
        self.numerical_fault: NumericalFaultError | None = None
        if layers is not None and (not isinstance(layers, Iterable) or isinstance(layers, np.ndarray | str)):
            raise TypeError(f"{self.name}: layers must be a list of tinynet layers, got {type(layers).__name__}")
        for layer in [] if layers is None else layers:
            self.add(layer)

    # ---------------------------------------------------------------------------------------- construction
    def add(self, layer: Layer) -> None:
        """Append a layer, building it right away when its input shape is known."""
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}.add: expected a tinynet.layers.Layer, got {type(layer).__name__}")
        if any(existing is layer for existing in self.layers):
            raise ValueError(f"{self.name}.add: layer {layer.name!r} is already in the model")
        if any(existing.name == layer.name for existing in self.layers):
            raise ValueError(f"{self.name}.add: a layer named {layer.name!r} is already in the model")
        if self.layers:
            if self.layers[-1].built:
                self._build_layer(layer, self.layers[-1]._built_output_shape)
        elif layer._declared_input_shape is not None:
            self._build_layer(layer, layer._declared_input_shape)
        self.layers.append(layer)

    def _build_layer(self, layer: Layer, input_shape: tuple[int, ...]) -> None:
        if layer.built:
            if layer.input_shape != tuple(input_shape):
                raise ValueError(f"{layer.name}: already built for input shape {layer.input_shape}, "
                                 f"but the previous layer outputs {tuple(input_shape)}")
            return
        layer.build(tuple(input_shape))

    def build(self, input_shape: tuple | None = None) -> None:
        """Build every layer for ``input_shape`` (Keras style, with the batch axis first: ``(None, 28, 28, 1)``)."""
        if not self.layers:
            raise ValueError(f"{self.name}: the model has no layers")
        if input_shape is not None and not isinstance(input_shape, tuple | list):
            raise TypeError(f"{self.name}.build: input_shape must be a tuple with the batch axis first, such as "
                            f"(None, 28, 28, 1), got {input_shape!r}")
        shape = self.layers[0]._declared_input_shape if input_shape is None else tuple(input_shape)[1:]
        if shape is None:
            raise ValueError(f"{self.name}: the input shape is unknown; give the first layer input_shape= or "
                             "call build((None, *shape))")
        for layer in self.layers:
            self._build_layer(layer, shape)
            shape = layer._built_output_shape

    @property
    def built(self) -> bool:
        return bool(self.layers) and all(layer.built for layer in self.layers)

    @property
    def input_shape(self) -> tuple:
        self._require_built("input_shape")
        return (None, *self.layers[0]._built_input_shape)

    @property
    def output_shape(self) -> tuple:
        self._require_built("output_shape")
        return (None, *self.layers[-1]._built_output_shape)

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise RuntimeError(f"{self.name}: {what} is unknown until the model is built (give the first layer "
                               "input_shape=, call build(), or fit/predict on data)")

    # ------------------------------------------------------------------------------------------- compile
    def compile(self, optimizer: Any = "sgd", loss: Any = None, metrics: list | None = None) -> None:
        """Choose the optimizer, the loss and the metrics: names (``'accuracy'``/``'acc'``, resolved to the
        accuracy matching the loss and logged as ``acc``; ``'mae'``, ``'top_k_categorical_accuracy'``...) or
        functions ``metric(y_true, y_pred)``; see :func:`tinynet.metrics.resolve` for the names they log under."""
        if loss is None:
            raise ValueError(f"{self.name}.compile: a loss is required, e.g. loss='categorical_crossentropy'")
        if not (isinstance(loss, str | losses.Loss) or callable(loss)):
            raise TypeError(f"{self.name}.compile: loss must be a loss name such as 'categorical_crossentropy' or a "
                            f"tinynet.losses.Loss, got {type(loss).__name__}")
        optimizer = optimizers.get(optimizer)
        loss = losses.get(loss)
        resolved = metrics_module.resolve(metrics, loss, f"{self.name}.compile")
        if self.built and hasattr(optimizer, "check_learning_rate"):
            # A rate that is infinite in the weights' float type (1e39 in float32) is a bad argument, not a fault
            # to discover at the first step; a model built later is checked at its first update.
            optimizer.check_learning_rate(self.layers)
        self.optimizer, self.loss = optimizer, loss
        self._metrics, self._metric_requests = resolved, list(metrics or [])
        self.metrics_names = ["loss", *(key for key, _ in resolved)]

    def _require_compiled(self, entry_point: str) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(f"{self.name}.{entry_point}: you must compile the model before training or "
                               "evaluating it (model.compile(optimizer, loss, metrics))")

    # ------------------------------------------------------------------------------------- the public step
    def compute_gradients(self, x: np.ndarray, y: np.ndarray, training: bool = True,
                          sample_weight: np.ndarray | None = None) -> dict[str, float]:
        """Forward pass, loss and backward pass on one batch: fills every ``layer.grads`` and returns the batch's
        figures (``loss``, and each metric compiled) from this forward pass.

        Nothing is updated; :meth:`train_step` applies the gradients. ``x`` and ``y`` are one batch already shaped
        for the model (as :meth:`train_on_batch` checks them); they are cast to the model's float type.
        ``training=False`` backpropagates through the inference-mode forward pass (dropout off, moving
        statistics), for tools that study a trained model; training always uses ``True``. ``sample_weight``
        (one weight per sample, or None) weighs the loss and its gradient as Keras 2.2.4 does
        (:mod:`tinynet.losses.base`); the metrics stay unweighted.
        """
        self._require_compiled("compute_gradients")
        return self._compute_gradients(x, y, training, sample_weight, None)

    def _compute_gradients(self, x: np.ndarray, y: np.ndarray, training: bool, sample_weight: np.ndarray | None,
                           update: passes.SgdInPass | None) -> dict[str, float]:
        """:meth:`compute_gradients`; with ``update`` (:func:`passes.update_in_backward`), a compiled backward
        pass also applies the optimizer's update when the loss and every gradient are finite."""
        x, y = self._as_model_batch(x, y)
        with passes.compute_scope(self):  # the whole pass, so no BLAS call in it leaves OpenBLAS threads spinning
            outputs = passes.forward_in_scope(self, x, training=training)
            figures = self._batch_figures(y, outputs, sample_weight)  # before backward, which may reuse outputs
            if update is not None:
                update.allowed = math.isfinite(figures["loss"])
            passes.backward(self, y, outputs, sample_weight, update)
        return figures

    def train_step(self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> dict[str, float]:
        """:meth:`compute_gradients`, the fault checks, then ``optimizer.apply_gradients``: one update.

        Raises :class:`NumericalFaultError` when the loss or a gradient is NaN/Inf (nothing is updated) or when the
        update made a weight NaN/Inf. Returns the batch's figures from the forward pass before the update.

        With the engine's compiled training passes and SGD, the backward pass applies the update as its last
        phase (:class:`tinynet.engine.compiled_training.SgdInPass`): the same arithmetic and bits as
        ``apply_gradients``, without a parallel region of its own.
        """
        self._require_compiled("compute_gradients")
        x, y = self._as_model_batch(x, y)
        with passes.compute_scope(self):
            # The compiled backward pass applies SGD's update itself when it can (one parallel region less a
            # step); it does so only when the loss and every gradient are finite, as the checks below require.
            # A compute_gradients wrapped on the instance or overridden (tinynet.learn's recorder, a learner's
            # subclass) is called as it is, and the update follows it.
            own = type(self).compute_gradients is Sequential.compute_gradients and "compute_gradients" not in vars(self)
            update = passes.update_in_backward(self) if self.fuse and own else None
            if update is None:
                figures = self.compute_gradients(x, y, sample_weight=sample_weight)
            else:
                figures = self._compute_gradients(x, y, True, sample_weight, update)
            finite = passes.gradients_finite(self)  # known when the backward pass checked what it wrote
            if hasattr(self.optimizer, "combine_shares"):
                # Data-parallel training (tinynet.distributed): the gradients and figures of every process's share
                # of the batch are summed here, in one exchange, so that every process checks and applies the same.
                figures = self.optimizer.combine_shares(self.layers, figures)
                finite = None  # the sums are new arrays of numbers: look at them
            if not math.isfinite(figures["loss"]):
                raise self._fault("loss", figures, x)
            if finite is None:
                finite = arrays_are_finite(layer.grads for layer in self.layers)
            if not finite:
                raise self._fault("gradient", figures, x)
            updated_finite: bool | None
            if update is not None and update.applied:
                self.optimizer.commit_update()
                updated_finite = update.finite()
            else:
                updated_finite = self.optimizer.apply_gradients(self.layers)
            if updated_finite is None:  # an optimizer that does not report it: look at the weights
                updated_finite = arrays_are_finite(layer.params for layer in self.layers)
            if not updated_finite:
                # A finite gradient times a huge learning rate can still overflow; the next forward pass may not
                # show it (max pooling never picks a NaN), so every update is checked.
                raise self._fault("update", figures, x)
        return figures

    def _fault(self, quantity: str, figures: dict[str, float], x: np.ndarray) -> NumericalFaultError:
        layer, detail = locate_fault(self.layers, quantity, [x])
        passes.clear_caches(self)
        return NumericalFaultError.describe(self.name, quantity, figures, layer, detail)

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """The outputs for one batch (Keras's ``model(x, training=...)``): ``training=True`` runs dropout and
        batch statistics as a training step would (drawing from the dropout generators), and keeps nothing for a
        backward pass."""
        outputs = passes.forward(self, self._gather(x, slice(None)), training=training)
        passes.clear_caches(self)
        return outputs

    def _as_model_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._gather(x, slice(None)), self._gather_targets(y, slice(None))

    def _batch_figures(self, targets: np.ndarray, outputs: np.ndarray,
                       sample_weight: np.ndarray | None = None) -> dict[str, float]:
        loss = self.loss
        if loss is None:  # the public entry points refused an uncompiled model already, naming themselves
            raise RuntimeError(f"{self.name}: the model has no loss; compile it first")
        figures = {"loss": loss(targets, outputs, sample_weight)}
        for key, metric in self._metrics:
            figures[key] = metrics_module.batch_value(metric, targets, outputs)
        return figures

    def _gather(self, x: np.ndarray, indices: np.ndarray | slice) -> np.ndarray:
        """One batch, cast to the model's float type (the whole dataset is never copied to float)."""
        batch = x[indices]
        dtype = self.layers[0].dtype
        return batch if batch.dtype == dtype else batch.astype(dtype)

    def _gather_targets(self, y: np.ndarray, indices: np.ndarray | slice) -> np.ndarray:
        batch = y[indices]
        if isinstance(self.loss, losses.SparseCategoricalCrossentropy):
            return batch  # integer labels stay integers
        dtype = self.layers[-1].dtype
        return batch if batch.dtype == dtype else batch.astype(dtype)

    # --------------------------------------------------------------------------- fit, evaluate, predict
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1, verbose: int = 1,
            callbacks: list[Callback] | None = None, validation_split: float = 0.0, validation_data: Any = None,
            shuffle: bool = True, class_weight: dict | None = None, sample_weight: Any = None,
            initial_epoch: int = 0, steps_per_epoch: int | None = None,
            validation_steps: int | None = None) -> History:
        """Train for ``epochs - initial_epoch`` epochs (Keras numbering: ``initial_epoch=1, epochs=10`` runs
        epochs printed 2/10 ... 10/10). Returns the :class:`History` (also kept as ``model.history``).

        ``x`` and ``y`` are arrays, or ``x`` is a :class:`tinynet.utils.Sequence` or a generator yielding
        ``(x, y)`` or ``(x, y, sample_weight)`` batches (``steps_per_epoch`` of them per epoch; a Sequence's
        length by default). ``sample_weight`` (one per sample) or ``class_weight`` (``{class: weight}``) weigh
        the loss (:mod:`tinynet.models.sample_weights`). ``validation_data`` is ``(x, y)``, ``(x, y, weights)``,
        a Sequence or a generator (``validation_steps``). The loop is :func:`tinynet.models.training.fit`."""
        from tinynet.models.training import fit

        self._require_compiled("fit")
        return fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle,
                   class_weight, sample_weight, initial_epoch, steps_per_epoch, validation_steps)

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: int = 1,
                 sample_weight: Any = None, steps: int | None = None) -> float | list[float]:
        """The loss (weighted by ``sample_weight`` if given) and the metrics over ``x``, dropout off: the loss
        alone without metrics, else a list in the order of :attr:`metrics_names`. ``x`` may be a Sequence or a
        generator (``steps`` batches). Partial batches weigh by their size."""
        self._require_compiled("evaluate")
        return self._as_keras_result(evaluation.evaluate(self, x, y, batch_size, verbose, sample_weight, steps))

    def _as_keras_result(self, figures: dict[str, float]) -> float | list[float]:
        return figures["loss"] if len(self.metrics_names) == 1 else [figures[key] for key in self.metrics_names]

    def predict(self, x: Any, batch_size: int | None = None, verbose: int = 0, steps: int | None = None) -> np.ndarray:
        """The model's outputs for ``x`` (arrays, or the batches of a Sequence or generator), dropout off."""
        return evaluation.predict(self, x, batch_size, verbose, steps)

    def train_on_batch(self, x: np.ndarray, y: np.ndarray, sample_weight: Any = None,
                       class_weight: dict | None = None) -> float | list[float]:
        """One update on one batch (checked; weighted as :meth:`fit` weighs it); returns its loss (and metrics)
        from the forward pass before the update."""
        self._require_compiled("train_on_batch")
        x, y = check_xy(self, x, y, "train_on_batch")
        weights = sample_weights(sample_weight, class_weight, y, f"{self.name}.train_on_batch")
        return self._as_keras_result(self.train_step(x, y, sample_weight=weights))

    def test_on_batch(self, x: np.ndarray, y: np.ndarray, sample_weight: Any = None) -> float | list[float]:
        """Loss (and metrics) on one batch, dropout off, no update."""
        self._require_compiled("test_on_batch")
        x, y = check_xy(self, x, y, "test_on_batch")
        return self._as_keras_result(evaluation.evaluate(self, x, y, len(x), 0, sample_weight, None))

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        """Outputs for one batch, dropout off."""
        return self(check_x(self, x, "predict_on_batch"), training=False)

    # ----------------------------------------------------------------------------- saving, weights, summary
    def save(self, filepath: Any) -> None:
        """Save the model at ``filepath``: tinynet's exact-resume file, or Keras 3's format for a name ending in
        ``.keras`` or ``.h5`` (see :func:`tinynet.models.files.save`)."""
        from tinynet.models import files  # the savers build models: imported when used, never in a circle

        files.save(self, filepath)

    def save_weights(self, filepath: Any) -> None:
        """Save the weights alone (see :func:`tinynet.models.files.save_weights`)."""
        from tinynet.models import files

        files.save_weights(self, filepath)

    def load_weights(self, filepath: Any) -> None:
        """Set the weights from a weights file (see :func:`tinynet.models.files.load_weights`)."""
        from tinynet.models import files

        files.load_weights(self, filepath)

    def export(self, filepath: Any, format: str = "onnx") -> None:
        """Export the model for inference elsewhere (Keras 3's spelling; see :func:`tinynet.models.files.export`)."""
        from tinynet.models import files

        files.export(self, filepath, format)

    def get_weights(self) -> list[np.ndarray]:
        """Every layer's weights in order, ``[kernel, bias]`` per layer, Keras layouts."""
        return [weight for layer in self.layers for weight in layer.get_weights()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Set every weight from a list shaped like :meth:`get_weights` (checked before anything changes)."""
        self._require_built("set_weights")
        for layer, chunk in check_model_weights(self, weights):
            layer.set_weights(chunk)

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, line_length: int = 65, print_fn: Callable[[str], None] | None = None,
                batch_size: int | None = None) -> None:
        """Print each layer's name, type, output shape and parameter count, laid out as Keras 2 prints it.

        With ``batch_size``, two more columns follow (and two more total lines): each layer's forward FLOPs for
        a batch of that size (a multiply-add counts 2) and the memory its output activations take
        (see :mod:`tinynet.models.costs`). Without it the output is exactly Keras's.
        """
        from tinynet.models.summary import print_summary

        self._require_built("summary")
        print_summary(self, line_length, print_fn, batch_size)
