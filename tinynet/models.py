"""Sequential: a stack of layers trained with a loss and an optimizer, with Keras 2's API.

One training step reads straight down the stack and back::

    y = x
    for layer in layers:            y = layer.forward(y, training=True)     # each caches what it needs
    loss = loss_fn(targets, y)
    dy = loss_fn.gradient(targets, y)           # or the fused softmax gradient (p - y) / N into the last layer
    for layer in reversed(layers):  dy = layer.backward(dy)                  # each fills layer.grads
    optimizer.apply_gradients(layers)           # reads layer.grads, updates layer.params
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinynet import backend, engine, losses, optimizers
from tinynet import metrics as metrics_module
from tinynet.callbacks import Callback, CallbackList, History, ProgbarLogger
from tinynet.engine import blas
from tinynet.layers.base import Layer
from tinynet.progbar import Progbar
from tinynet.saving import load_model  # noqa: F401  (Keras's tinynet.models.load_model)

# Largest slice of a batch that inference runs in one pass (see Sequential._forward).
_INFERENCE_CHUNK = 128

# The names ``metrics=['accuracy']`` is logged under: Keras 2.2's ``acc`` (the tutorial reads it) and 2.3's.
_ACCURACY_KEYS = ("acc", "accuracy")


class NumericalFaultError(FloatingPointError):
    """A NaN or infinity appeared in the loss, in a gradient, in a weight after an update, or in the validation
    loss, during training.

    The loss and every gradient are checked before the optimizer applies the step (then the weights are those of
    the last good step), every weight right after it (a finite gradient times a huge learning rate can overflow),
    and the validation loss at the end of each epoch. Either way no checkpoint is written for the epoch. The
    message names the epoch and batch (as the progress bar numbers them, with the 0-based indices callbacks see)
    and the layer where the fault first showed. Attributes: ``epoch`` and ``batch`` (0-based; ``None`` outside
    ``fit`` and for the validation pass), ``layer`` (its name, or ``None``), ``quantity`` (``'loss'``,
    ``'gradient'``, ``'update'`` or ``'validation'``) and ``figures`` (the loss and accuracy concerned). Pass
    ``TerminateOnNaN()`` to ``fit`` to stop training quietly instead, as Keras does.
    """

    def __init__(self, message: str, *, epoch: int | None, batch: int | None, layer: str | None, quantity: str,
                 figures: dict[str, float]) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.layer = layer
        self.quantity = quantity
        self.figures = figures


class Sequential:
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
        self.metrics_names: list[str] = ["loss"]
        self._accuracy: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
        self.stop_training = False
        self.history: History | None = None
        self._shuffle_generator = backend.new_generator()
        #: Run the layers through the engine's stages (:mod:`tinynet.engine`); False runs every layer's own code.
        self.fuse = True
        self._plan: tuple | None = None
        #: Epochs completed so far (Keras numbering): the ``initial_epoch`` that continues this model's training.
        self.epochs_done = 0
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
            previous = self.layers[-1]
            if previous.built:
                self._build_layer(layer, previous.output_shape)
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
            shape = layer.output_shape

    @property
    def built(self) -> bool:
        return bool(self.layers) and all(layer.built for layer in self.layers)

    @property
    def input_shape(self) -> tuple:
        self._require_built("input_shape")
        return (None, *self.layers[0].input_shape)

    @property
    def output_shape(self) -> tuple:
        self._require_built("output_shape")
        return (None, *self.layers[-1].output_shape)

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise RuntimeError(f"{self.name}: {what} is unknown until the model is built (give the first layer "
                               "input_shape=, call build(), or fit/predict on data)")

    # ------------------------------------------------------------------------------------------- compile
    def compile(self, optimizer: Any = "sgd", loss: Any = None, metrics: list[str] | None = None) -> None:
        """Choose the optimizer, the loss and the metrics (only accuracy is supported, under ``'accuracy'``
        or ``'acc'``, and is resolved to the accuracy matching the loss, as Keras does)."""
        if loss is None:
            raise ValueError(f"{self.name}.compile: a loss is required, e.g. loss='categorical_crossentropy'")
        if not (isinstance(loss, str | losses.Loss) or callable(loss)):
            raise TypeError(f"{self.name}.compile: loss must be a loss name such as 'categorical_crossentropy' or a "
                            f"tinynet.losses.Loss, got {type(loss).__name__}")
        if metrics is not None and (not isinstance(metrics, list | tuple)
                                    or not all(isinstance(metric, str) for metric in metrics)):
            raise TypeError(f"{self.name}.compile: metrics must be a list of names such as ['accuracy'], "
                            f"got {metrics!r}")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        self._accuracy = None
        self.metrics_names = ["loss"]
        for metric in metrics or []:
            if metric in ("accuracy", "acc"):
                self._accuracy = metrics_module.get(self.loss.accuracy_metric)
            elif isinstance(metric, str) and metric.endswith("accuracy"):
                self._accuracy = metrics_module.get(metric)
            else:
                raise ValueError(f"{self.name}.compile: unsupported metric {metric!r}; tinynet computes "
                                 "'accuracy' (also 'acc', 'categorical_accuracy', 'sparse_categorical_accuracy')")
        if self._accuracy is not None:
            self.metrics_names = ["loss", *_ACCURACY_KEYS]

    def _require_compiled(self, entry_point: str) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(f"{self.name}.{entry_point}: you must compile the model before training or "
                               "evaluating it (model.compile(optimizer, loss, metrics))")

    @property
    def _fused_softmax(self) -> bool:
        last_activation = getattr(self.layers[-1], "activation", None)
        return (self.loss is not None and self.loss.fuses_with_softmax
                and getattr(last_activation, "name", None) == "softmax"
                and hasattr(self.layers[-1], "backward_preactivation"))

    # ------------------------------------------------------------------------------------- passes and step
    def _stages(self) -> list[engine.Stage]:
        """What actually runs: the engine's stages for the layers (see :mod:`tinynet.engine.planner`), or, with
        ``fuse`` off, the layers themselves.

        The plan is cached and made again whenever the layers, their built state or ``self.fuse`` change.
        """
        key = (self.fuse, tuple((id(layer), layer.built) for layer in self.layers))
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, engine.plan(self.layers) if self.fuse else list(self.layers))
        return self._plan[1]

    def _compute_scope(self) -> Any:
        """Held around a step or a prediction: the engine at work (started on first use) with ``fuse`` on; with it
        off, only OpenBLAS held to one thread, so that the layers' products round as the engine's do and a
        seeded run gives the same bits on any machine (:func:`tinynet.engine.blas.single_threaded`)."""
        return engine.engine_scope() if self.fuse else blas.single_threaded()

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        with self._compute_scope():
            return self._forward_in_scope(x, training)

    def _forward_in_scope(self, x: np.ndarray, training: bool) -> np.ndarray:
        if training or len(x) <= _INFERENCE_CHUNK:
            for stage in self._stages():
                x = stage.forward(x, training=training)
            return x
        # Inference treats every sample on its own, so a large batch runs as slices small enough for each
        # layer's output to stay in cache (the convolution blocks cut their slices finer still). Measured at
        # batch 1000: 128-image slices 14,600-14,900 img/s, 32-image slices 13,700 (each slice hands work to
        # the threads a few times).
        outputs = None
        for start in range(0, len(x), _INFERENCE_CHUNK):
            chunk = self._forward_in_scope(x[start:start + _INFERENCE_CHUNK], training=False)
            if outputs is None:
                outputs = np.empty((len(x), *chunk.shape[1:]), dtype=chunk.dtype)
            outputs[start:start + len(chunk)] = chunk
        return outputs

    @staticmethod
    def _first_trainable_index(stages: list[engine.Stage]) -> int:
        """Stages before the first one with parameters need no backward pass at all."""
        for index, stage in enumerate(stages):
            if any(layer.params and layer.trainable for layer in getattr(stage, "layers", (stage,))):
                return index
        return len(stages)

    def _backward(self, targets: np.ndarray, outputs: np.ndarray) -> None:
        stages = self._stages()
        stop = self._first_trainable_index(stages)
        for index, stage in enumerate(stages):
            # Caffe's propagate_down: the first stage with parameters has no one to hand dx to.
            stage.needs_input_gradient = index > stop
        last = len(stages) - 1
        if self._fused_softmax:  # then the last stage is the softmax layer or the engine's stand-in for it
            gradient = stages[last].backward_preactivation(self.loss.softmax_gradient(targets, outputs))
        else:
            gradient = stages[last].backward(self.loss.gradient(targets, outputs))
        for index in range(last - 1, stop - 1, -1):
            gradient = stages[index].backward(gradient)
        for stage in stages[:stop]:
            stage._cache = None  # never backpropagated into; drop what their forward kept

    def _batch_figures(self, targets: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        figures = {"loss": self.loss(targets, outputs)}
        if self._accuracy is not None:
            accuracy = float(np.mean(self._accuracy(targets, outputs)))
            figures.update(dict.fromkeys(_ACCURACY_KEYS, accuracy))
        return figures

    def _train_step(self, x_batch: np.ndarray, y_batch: np.ndarray,
                    position: tuple[int, int, int, int] | None = None) -> dict[str, float]:
        with self._compute_scope():  # the whole step, so no BLAS call in it leaves OpenBLAS threads spinning
            return self._train_step_in_scope(x_batch, y_batch, position)

    def _train_step_in_scope(self, x_batch: np.ndarray, y_batch: np.ndarray,
                             position: tuple[int, int, int, int] | None) -> dict[str, float]:
        outputs = self._forward_in_scope(x_batch, training=True)
        figures = self._batch_figures(y_batch, outputs)  # from the forward pass used for the gradient
        if not math.isfinite(figures["loss"]):
            raise self._numerical_fault("loss", figures, x_batch, position)
        self._backward(y_batch, outputs)
        if not self._gradients_are_finite():
            raise self._numerical_fault("gradient", figures, x_batch, position)
        updated_finite = self.optimizer.apply_gradients(self.layers)
        if updated_finite is None:  # an optimizer that does not report it: look at the weights
            updated_finite = self._arrays_are_finite(layer.params for layer in self.layers)
        if not updated_finite:
            # A finite gradient times a huge learning rate can still overflow; the next forward pass may not show
            # it (max pooling never picks a NaN), so the weights are checked after every update too.
            raise self._numerical_fault("update", figures, x_batch, position)
        return figures

    # ----------------------------------------------------------------------------------- numerical faults
    def _gradients_are_finite(self) -> bool:
        return self._arrays_are_finite(layer.grads for layer in self.layers)

    @staticmethod
    def _arrays_are_finite(dicts: Iterable[dict[str, np.ndarray]]) -> bool:
        # One sum per array is cheap; NaN and Inf survive it. A sum that overflows though every element is finite
        # is confirmed element-wise before it counts as a fault.
        for arrays in dicts:
            for array in arrays.values():
                if not np.isfinite(array.sum()) and not np.isfinite(array).all():
                    return False
        return True

    def _numerical_fault(self, quantity: str, figures: dict[str, float], x_batches: Any,
                         position: tuple[int, int, int | None, int] | None) -> NumericalFaultError:
        """Find where the NaN/Inf first showed and describe it (only runs once training has already failed).

        ``x_batches`` is the batch that failed, or (for the validation loss) an iterable of batches."""
        layer, detail = self._locate_fault(quantity, [x_batches] if isinstance(x_batches, np.ndarray) else x_batches)
        self._clear_caches()
        if position is None:
            where = "in train_on_batch"
            epoch = batch = None
        else:
            epoch, epochs, batch, steps = position
            where = (f"at epoch {epoch + 1}/{epochs}, " + (
                f"batch {batch + 1}/{steps} (0-based: epoch={epoch}, batch={batch})" if batch is not None
                else f"in the validation pass after its last batch (0-based: epoch={epoch})"))
        what = {"loss": f"the loss is {figures['loss']}", "gradient": "a gradient is NaN or infinite",
                "update": "the update made a weight NaN or infinite",
                "validation": f"the validation loss is {figures['loss']}"}[quantity]
        applied = "The update was not applied" if quantity in ("loss", "gradient") else \
            "The weights in memory are spoiled; the checkpoints saved before are not"
        message = (f"{self.name}: training diverged {where}: {what}; first non-finite values in layer "
                   f"{layer!r}: {detail}. {applied}. Lower the learning rate, check the data and the initial "
                   "weights, or pass callbacks=[TerminateOnNaN()] to stop without an error.")
        return NumericalFaultError(message, epoch=epoch, batch=batch, layer=layer, quantity=quantity,
                                   figures=figures)

    def _locate_fault(self, quantity: str, x_batches: Iterable[np.ndarray]) -> tuple[str | None, str]:
        for layer in self.layers:  # a weight that is already NaN/Inf is the root of everything after it
            for name in layer.weight_names:
                if not np.isfinite(layer._weight(name)).all():
                    return layer.name, f"its weight {name!r} holds NaN or Inf"
        if quantity == "gradient":
            for layer in reversed(self.layers):  # backward runs last to first: the first fault is the last layer
                for name, grad in layer.grads.items():
                    if not np.isfinite(grad).all():
                        return layer.name, f"the gradient of its {name!r} holds NaN or Inf"
            return None, "no layer's gradient could be singled out"
        # Replay the forward pass with dropout off (no random draws) and report the first non-finite output.
        with np.errstate(all="ignore"):
            for x_batch in x_batches:
                values = x_batch
                for layer in self.layers:
                    values = layer.forward(values, training=False)
                    if not np.isfinite(values).all():
                        return layer.name, "its output holds NaN or Inf though its input was finite"
        return self.layers[-1].name, "the outputs are finite but the loss of them is not"

    # --------------------------------------------------------------------------------------- data checks
    def _input_dtype(self) -> np.dtype:
        return self.layers[0].dtype

    def _check_x(self, x: Any, entry_point: str, argument: str = "x") -> np.ndarray:
        if not self.layers:
            raise ValueError(f"{self.name}.{entry_point}: the model has no layers")
        if isinstance(x, list | tuple):
            x = _as_rectangular_array(x, f"{self.name}.{entry_point}: {argument}")
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self.name}.{entry_point}: {argument} must be a NumPy array, got {type(x).__name__}")
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}.{entry_point}: {argument} must be numeric, got dtype {x.dtype}")
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"{self.name}.{entry_point}: {argument} must be a non-empty batch (samples, ...), "
                             f"got shape {x.shape}")
        if not self.built:
            self.build((None, *x.shape[1:]))
        expected = self.layers[0].input_shape
        if x.shape[1:] != expected:
            raise ValueError(f"{self.name}.{entry_point}: {argument} must have shape (samples, "
                             f"{', '.join(map(str, expected))}) for this model, got {x.shape}")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError(f"{self.name}.{entry_point}: {argument} contains NaN or infinite values")
        return x

    def _check_xy(self, x: Any, y: Any, entry_point: str, suffix: str = "") -> tuple[np.ndarray, np.ndarray]:
        x = self._check_x(x, entry_point, "x" + suffix)
        if y is None:
            raise ValueError(f"{self.name}.{entry_point}: y{suffix} (the targets) is required")
        y = _as_rectangular_array(y, f"{self.name}.{entry_point}: y{suffix}")
        if y.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}.{entry_point}: y{suffix} must be numeric, got dtype {y.dtype}")
        if y.ndim == 0 or len(y) != len(x):
            raise ValueError(f"{self.name}.{entry_point}: x{suffix} and y{suffix} must hold the same number of "
                             f"samples, got {len(x)} and {0 if y.ndim == 0 else len(y)}")
        y = self.loss.check_targets(y, self.layers[-1].output_shape, f"{self.name}.{entry_point}: y{suffix}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError(f"{self.name}.{entry_point}: y{suffix} contains NaN or infinite values")
        return x, y

    @staticmethod
    def _check_verbose(verbose: Any, entry_point: str) -> int:
        if isinstance(verbose, bool) or not isinstance(verbose, int | np.integer) or verbose not in (0, 1, 2):
            raise ValueError(f"{entry_point}: verbose must be 0, 1 or 2, got {verbose!r}")
        return int(verbose)

    @staticmethod
    def _check_batch_size(batch_size: Any, entry_point: str) -> int:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size <= 0:
            raise ValueError(f"{entry_point}: batch_size must be a positive int, got {batch_size!r}")
        return int(batch_size)

    def _gather(self, x: np.ndarray, indices: np.ndarray | slice) -> np.ndarray:
        """One batch, cast to the model's float type (the whole dataset is never copied to float)."""
        batch = x[indices]
        dtype = self._input_dtype()
        return batch if batch.dtype == dtype else batch.astype(dtype)

    # ------------------------------------------------------------------------------------------------ fit
    def fit(
        self,
        x: np.ndarray | None = None,
        y: np.ndarray | None = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: int = 1,
        callbacks: list[Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: tuple | None = None,
        shuffle: bool = True,
        initial_epoch: int = 0,
    ) -> History:
        """Train for ``epochs - initial_epoch`` epochs (Keras numbering: ``initial_epoch=1, epochs=10`` runs
        epochs printed 2/10 ... 10/10). Returns the :class:`History` (also kept as ``model.history``)."""
        self._require_compiled("fit")
        batch_size = self._check_batch_size(32 if batch_size is None else batch_size, f"{self.name}.fit")
        for argument, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{self.name}.fit: {argument} must be a non-negative int, got {value!r}")
        verbose = self._check_verbose(verbose, f"{self.name}.fit")
        if not isinstance(shuffle, bool | np.bool_):
            raise TypeError(f"{self.name}.fit: shuffle must be True or False, got {shuffle!r}")
        if callbacks is not None and not isinstance(callbacks, list | tuple):
            raise TypeError(f"{self.name}.fit: callbacks must be a list of tinynet.callbacks.Callback, "
                            f"got {type(callbacks).__name__}")
        if isinstance(validation_split, bool) or not isinstance(validation_split, int | float | np.floating):
            raise TypeError(f"{self.name}.fit: validation_split must be a float in [0, 1), got {validation_split!r}")
        if validation_data is not None and (not isinstance(validation_data, tuple | list)
                                            or len(validation_data) != 2):
            raise ValueError(f"{self.name}.fit: validation_data must be a tuple (x_val, y_val), got "
                             f"{type(validation_data).__name__}"
                             + (f" of length {len(validation_data)}" if isinstance(validation_data, tuple | list)
                                else ""))
        x, y = self._check_xy(x, y, "fit")
        if validation_data is None and validation_split:
            if not 0 < validation_split < 1:
                raise ValueError(f"{self.name}.fit: validation_split must be in (0, 1), got {validation_split!r}")
            # Keras takes the *last* fraction of the data, before any shuffling.
            split_at = int(len(x) * (1 - validation_split))
            if split_at == 0 or split_at == len(x):
                raise ValueError(f"{self.name}.fit: validation_split={validation_split} leaves an empty split "
                                 f"of {len(x)} samples")
            x, x_val, y, y_val = x[:split_at], x[split_at:], y[:split_at], y[split_at:]
            validation_data = (x_val, y_val)
        if validation_data is not None:
            if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
                raise ValueError(f"{self.name}.fit: validation_data must be a tuple (x_val, y_val)")
            x_val, y_val = self._check_xy(*validation_data, "fit", suffix="_val")

        samples = len(x)
        steps = math.ceil(samples / batch_size)
        shown = ["loss", "acc"] if self._accuracy is not None else ["loss"]
        if validation_data is not None:
            shown += [f"val_{key}" for key in shown]
        params = {"epochs": epochs, "samples": samples, "steps": steps, "verbose": verbose,
                  "batch_size": batch_size, "do_validation": validation_data is not None, "metrics": shown}
        self.history = History()
        all_callbacks = [self.history, *(callbacks or [])]
        if verbose:
            all_callbacks.append(ProgbarLogger(verbose=verbose))
        hooks = CallbackList(all_callbacks, self, params)

        if verbose and validation_data is not None:
            print(f"Train on {samples} samples, validate on {len(x_val)} samples")
        # With TerminateOnNaN among the callbacks a NaN/Inf stops training quietly (Keras's way) instead of raising.
        stop_quietly_on_fault = any(getattr(callback, "handles_numerical_faults", False) for callback in all_callbacks)
        self.stop_training = False
        hooks.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            hooks.on_epoch_begin(epoch)
            order = self._shuffle_generator.permutation(samples) if shuffle else np.arange(samples)
            totals: dict[str, float] = {}
            faulted = False
            for step in range(steps):
                indices = order[step * batch_size:(step + 1) * batch_size]
                logs: dict[str, Any] = {"batch": step, "size": len(indices)}
                hooks.on_batch_begin(step, logs)
                try:
                    figures = self._train_step(self._gather(x, indices), self._gather_targets(y, indices),
                                               position=(epoch, epochs, step, steps))
                except NumericalFaultError as fault:
                    if not stop_quietly_on_fault:
                        raise
                    figures, faulted = fault.figures, True
                    logs["numerical_fault"] = str(fault)
                logs.update(figures)
                for key, value in figures.items():
                    totals[key] = totals.get(key, 0.0) + value * len(indices)
                hooks.on_batch_end(step, logs)
                if self.stop_training:
                    break
            seen = sum(len(order[s * batch_size:(s + 1) * batch_size]) for s in range(step + 1))
            epoch_logs = {key: total / seen for key, total in totals.items()}
            if validation_data is not None:
                validation = self._evaluate_arrays(x_val, y_val, batch_size)
                for key, value in validation.items():
                    epoch_logs[f"val_{key}"] = value
                if not math.isfinite(validation["loss"]) and not stop_quietly_on_fault:
                    batches = (self._gather(x_val, slice(start, start + batch_size))
                               for start in range(0, len(x_val), batch_size))
                    raise self._numerical_fault("validation", validation, batches, (epoch, epochs, None, steps))
            if step == steps - 1 and not faulted:
                self.epochs_done = epoch + 1  # before the hooks, so a checkpoint saved there records it
            hooks.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        hooks.on_train_end()
        return self.history

    def _gather_targets(self, y: np.ndarray, indices: np.ndarray | slice) -> np.ndarray:
        batch = y[indices]
        if isinstance(self.loss, losses.SparseCategoricalCrossentropy):
            return batch  # integer labels stay integers
        dtype = self.layers[-1].dtype
        return batch if batch.dtype == dtype else batch.astype(dtype)

    # -------------------------------------------------------------------------------- evaluate / predict
    def _evaluate_arrays(self, x: np.ndarray, y: np.ndarray, batch_size: int,
                         progbar: Progbar | None = None) -> dict[str, float]:
        totals: dict[str, float] = {}
        for start in range(0, len(x), batch_size):
            stop = min(start + batch_size, len(x))
            outputs = self._forward(self._gather(x, slice(start, stop)), training=False)
            for key, value in self._batch_figures(self._gather_targets(y, slice(start, stop)), outputs).items():
                totals[key] = totals.get(key, 0.0) + value * (stop - start)
            if progbar is not None:
                progbar.update(stop)
        self._clear_caches()
        return {key: total / len(x) for key, total in totals.items()}

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int | None = None,
                 verbose: int = 1) -> float | list[float]:
        """Loss (and accuracy, when compiled with it) over ``x``, dropout off; partial batches weigh by size."""
        self._require_compiled("evaluate")
        batch_size = self._check_batch_size(32 if batch_size is None else batch_size, f"{self.name}.evaluate")
        verbose = self._check_verbose(verbose, f"{self.name}.evaluate")
        x, y = self._check_xy(x, y, "evaluate")
        progbar = Progbar(target=len(x)) if verbose == 1 else None  # Keras: a bar only at verbose=1
        figures = self._evaluate_arrays(x, y, batch_size, progbar)
        return self._as_keras_result(figures)

    def _as_keras_result(self, figures: dict[str, float]) -> float | list[float]:
        if self._accuracy is None:
            return figures["loss"]
        return [figures["loss"], figures["acc"]]

    def predict(self, x: np.ndarray, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        """The model's outputs for ``x``, computed in batches with dropout off."""
        batch_size = self._check_batch_size(32 if batch_size is None else batch_size, f"{self.name}.predict")
        verbose = self._check_verbose(verbose, f"{self.name}.predict")
        x = self._check_x(x, "predict")
        progbar = Progbar(target=len(x)) if verbose == 1 else None  # Keras: a bar only at verbose=1
        outputs = np.empty((len(x), *self.layers[-1].output_shape), dtype=self.layers[-1].dtype)
        for start in range(0, len(x), batch_size):
            stop = min(start + batch_size, len(x))
            outputs[start:stop] = self._forward(self._gather(x, slice(start, stop)), training=False)
            if progbar is not None:
                progbar.update(stop)
        self._clear_caches()
        return outputs

    def _clear_caches(self) -> None:
        for layer in self.layers:
            layer._cache = None
        for stage in self._stages() if self._plan is not None else []:
            stage._cache = None

    def train_on_batch(self, x: np.ndarray, y: np.ndarray) -> float | list[float]:
        """One update on one batch; returns that batch's loss (and accuracy) from the forward pass before the
        update."""
        self._require_compiled("train_on_batch")
        x, y = self._check_xy(x, y, "train_on_batch")
        figures = self._train_step(self._gather(x, slice(None)), self._gather_targets(y, slice(None)))
        return self._as_keras_result(figures)

    def test_on_batch(self, x: np.ndarray, y: np.ndarray) -> float | list[float]:
        """Loss (and accuracy) on one batch, dropout off, no update."""
        self._require_compiled("test_on_batch")
        x, y = self._check_xy(x, y, "test_on_batch")
        return self._as_keras_result(self._evaluate_arrays(x, y, len(x)))

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        """Outputs for one batch, dropout off."""
        x = self._check_x(x, "predict_on_batch")
        outputs = self._forward(self._gather(x, slice(None)), training=False)
        self._clear_caches()
        return outputs

    # ------------------------------------------------------------------------------------- saving, loading
    def save(self, filepath: Any) -> None:
        """Save everything needed to continue training exactly (architecture, weights, compile settings, optimizer
        and random state, epochs done) in one file at ``filepath``, atomically. See :mod:`tinynet.saving`;
        ``tinynet.models.load_model(filepath)`` reads it back."""
        from tinynet import saving

        saving.save_model(self, filepath)

    def save_weights(self, filepath: Any) -> None:
        """Save the weights alone as an ``.npz`` (atomically, at exactly ``filepath``)."""
        from tinynet import saving

        saving.save_weights(self, filepath)

    def load_weights(self, filepath: Any) -> None:
        """Set the weights from a file written by :meth:`save_weights`, matched by layer order."""
        from tinynet import saving

        saving.load_weights(self, filepath)

    # ------------------------------------------------------------------------------------ weights, summary
    def get_weights(self) -> list[np.ndarray]:
        """Every layer's weights in order, ``[kernel, bias]`` per layer, Keras layouts."""
        return [weight for layer in self.layers for weight in layer.get_weights()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Set every weight from a list shaped like :meth:`get_weights` (checked before anything changes)."""
        self._require_built("set_weights")
        if not isinstance(weights, list | tuple):
            raise TypeError(f"{self.name}.set_weights: expected a list of arrays as get_weights() returns, got "
                            f"{type(weights).__name__}")
        weights = [_as_rectangular_array(value, f"{self.name}.set_weights: each weight") for value in weights]
        expected = sum(len(layer.weight_names) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"{self.name}.set_weights: expected {expected} arrays, got {len(weights)}")
        position = 0
        pending = []
        for layer in self.layers:
            count = len(layer.weight_names)
            chunk = weights[position:position + count]
            for name, value in zip(layer.weight_names, chunk, strict=True):
                if np.shape(value) != layer._weight(name).shape:
                    raise ValueError(f"{self.name}.set_weights: {layer.name}.{name} expects shape "
                                     f"{layer._weight(name).shape}, got {np.shape(value)}")
            pending.append((layer, chunk))
            position += count
        for layer, chunk in pending:
            layer.set_weights(chunk)

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, line_length: int = 65, print_fn: Callable[[str], None] | None = None,
                batch_size: int | None = None) -> None:
        """Print each layer's name, type, output shape and parameter count, laid out as Keras 2 prints it.

        With ``batch_size``, two more columns follow (and two more total lines): each layer's forward FLOPs for
        a batch of that size (a multiply-add counts 2) and the memory its output activations take
        (see :mod:`tinynet.inspect`). Without it the output is exactly Keras's.
        """
        self._require_built("summary")
        print_fn = print_fn or (lambda line: print(line, file=sys.stdout))
        positions = [int(line_length * 0.45), int(line_length * 0.85), line_length]
        width = line_length
        if batch_size is not None:
            from tinynet.inspect import activation_bytes, format_bytes, forward_flops  # a learner's tool, on demand

            batch_size = self._check_batch_size(batch_size, f"{self.name}.summary")
            positions += [line_length + 17, line_length + 30]
            width = positions[-1]

        def print_row(fields: list[str]) -> None:
            line = ""
            for index, field in enumerate(fields):
                if index > 0:
                    line = line[:-1] + " "
                line = (line + str(field))[:positions[index]]
                line += " " * (positions[index] - len(line))
            print_fn(line)

        print_fn("_" * width)
        header = ["Layer (type)", "Output Shape", "Param #"]
        print_row(header if batch_size is None else [*header, "FLOPs", "Activations"])
        print_fn("=" * width)
        for index, layer in enumerate(self.layers):
            shape = str((None, *layer.output_shape))
            row = [f"{layer.name} ({type(layer).__name__})", shape, str(layer.count_params())]
            if batch_size is not None:
                row += [f"{forward_flops(layer) * batch_size:,}", format_bytes(activation_bytes(layer, batch_size))]
            print_row(row)
            print_fn("=" * width if index == len(self.layers) - 1 else "_" * width)
        trainable = sum(sum(p.size for p in layer.params.values()) for layer in self.layers if layer.trainable)
        total = self.count_params()
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")
        if batch_size is not None:
            flops = sum(forward_flops(layer) for layer in self.layers) * batch_size
            memory = sum(activation_bytes(layer, batch_size) for layer in self.layers)
            print_fn(f"Forward FLOPs for a batch of {batch_size}: {flops:,}")
            print_fn(f"Output activations for a batch of {batch_size}: {format_bytes(memory)}")
        print_fn("_" * width)


def _as_rectangular_array(value: Any, argument: str) -> np.ndarray:
    """``np.asarray`` that names the argument when nested lists have rows of different lengths."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{argument} must be a rectangular array; nested lists of different lengths or mixed "
                         f"types cannot become one ({error})") from None
