"""A whole run, recorded: :class:`TrainingRecorder`, a ``fit`` callback that records what happens inside every
layer as a long table.

What the numbers tell you (the usual rules of thumb, not laws):

* gradient norms that shrink layer after layer towards the input mean vanishing gradients; norms that grow by
  orders of magnitude mean exploding ones;
* an update ratio near ``1e-3`` per step is the classic healthy value for SGD; ``1e-5`` means that layer hardly
  learns (learning rate too small for it), ``1e-1`` means each step rewrites it;
* a dead ReLU unit outputs 0 for every sample of the batch, so it passes no gradient and cannot recover; a
  dead fraction that climbs during training means the learning rate pushed units below zero for good.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinynet.callbacks import Callback
from tinynet.layers import Layer
from tinynet.learn.hooks import install_hooks, l2_norm, restore_fusion, run_layer_by_layer
from tinynet.learn.trace import dead_fraction, is_relu

#: The columns of :meth:`TrainingRecorder.to_dataframe`, a long table: one row per figure per recorded step.
COLUMNS = ["step", "epoch", "layer", "quantity", "value"]


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
        fuse = run_layer_by_layer(model)
        self._capturing = True
        try:
            model(x, training=True)
        finally:
            self._capturing = False
            restore_fusion(model, fuse)
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
                add((self.step, self.epoch, layer.name, f"grad_norm/{name}", l2_norm(layer.grads[name])))
                add((self.step, self.epoch, layer.name, f"weight_norm/{name}", l2_norm(param)))
                if before is not None:
                    before_norm = l2_norm(before)
                    ratio = l2_norm(param - before) / before_norm if before_norm > 0 else float("nan")
                    add((self.step, self.epoch, layer.name, f"update_ratio/{name}", ratio))
        if "loss" in logs:
            add((self.step, self.epoch, "model", "loss", float(logs["loss"])))

    def to_dataframe(self):
        """The records as a pandas DataFrame with columns ``step, epoch, layer, quantity, value``."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=COLUMNS)
