"""The tutorial CNN in JAX: one ``jax.jit``-ted training step written with ``jax.lax``, for the ``peers`` suite.

The whole step is one XLA program: forward, loss, ``jax.value_and_grad``'s backward and the update, so XLA can
fuse across layers what an eager engine runs op by op; it is the strongest form a step can take in JAX.

* Layout: NHWC images and HWIO kernels (``lax.conv_general_dilated``), tinynet's and Keras's, so tinynet's
  weights load unchanged (:func:`params_from_tinynet`) and ``Flatten`` sees the same ``(h, w, c)`` order.
* Layers: ``VALID`` 3x3 convolutions plus bias, 2x2 max pooling with ``lax.reduce_window``, ReLU, inverted dropout
  (kept with probability ``1 - rate``, scaled by ``1 / (1 - rate)``) with a fresh key per step and per layer
  (``jax.random.split`` inside the step, the next step's key returned), dense layers, softmax.
* Loss: categorical cross-entropy on the logits through ``log_softmax`` (softmax fused into the loss, as tinynet
  and PyTorch fuse it), mean over the batch; the step also returns the batch's accuracy, as ``train_step`` does.
* Update: SGD with Nesterov momentum and time-based decay exactly as Keras 2 writes it
  (:class:`tinynet.optimizers.SGD`)::

      lr_t = lr / (1 + decay * t);  v = momentum * v - lr_t * g;  p = p + momentum * v - lr_t * g

  with ``t`` the number of updates already applied. Parameters, velocities and ``t`` are donated to the step, so
  XLA updates them in place instead of allocating new buffers each step.

JAX is optional and imported only by :func:`import_jax`, which first limits XLA to the run's thread count (see its
docstring): tinynet never imports it.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import numpy as np

from benchmarks.tutorial import BENCHMARK_MOMENTUM, LEARNING_RATE, LEARNING_RATE_DECAY

DROPOUT_RATE = 0.25
LAYER_NAMES = ("conv1", "conv2", "dense1", "dense2", "dense3")


def xla_thread_flags(threads: int) -> str:
    """The ``XLA_FLAGS`` words that keep XLA's CPU code to ``threads`` threads (Eigen's pool for the
    convolutions and matrix products; one thread means no Eigen pool at all)."""
    multi_thread = "true" if threads > 1 else "false"
    return f"--xla_cpu_multi_thread_eigen={multi_thread} intra_op_parallelism_threads={threads}"


def import_jax(threads: int) -> tuple[Any, dict[str, Any]]:
    """Import JAX with XLA limited to ``threads`` threads; returns the module and how the limit was applied.

    Two levers, because XLA reads neither after its CPU client exists: ``XLA_FLAGS`` (set before the import), and
    the CPU affinity of the thread that creates the client. XLA sizes its compute pool by the CPUs the creating
    thread may run on (``sched_getaffinity``), and the pool's threads inherit that mask, so while the client is
    created this thread is confined to ``threads`` CPUs, and its mask is restored afterwards (Linux affinity is
    per thread: the rest of the process, tinynet's threads included, keeps every CPU). When JAX was imported
    earlier in this process, neither can act and the result says so.
    """
    already_loaded = "jax" in sys.modules
    flags = xla_thread_flags(threads)
    if not already_loaded:
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()
    import jax

    applied: dict[str, Any] = {"xla_flags": os.environ.get("XLA_FLAGS"), "jax_imported_before": already_loaded}
    original = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    confine = original is not None and not already_loaded and threads < len(original)
    if confine:
        os.sched_setaffinity(0, sorted(original)[:threads])
    try:
        applied["devices"] = [str(device) for device in jax.devices("cpu")]  # creates the CPU client
    finally:
        if confine:
            os.sched_setaffinity(0, original)
    applied["affinity_confined_to"] = threads if confine else None
    return jax, applied


def params_from_tinynet(weights: list[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """tinynet's ``model.get_weights()`` (``[kernel, bias]`` per Conv2D/Dense, Keras layouts) as the JAX
    parameter tree; HWIO and ``(in, out)`` are already the layouts :func:`forward` uses."""
    if len(weights) != 2 * len(LAYER_NAMES):
        raise ValueError(f"params_from_tinynet: expected {2 * len(LAYER_NAMES)} arrays (kernel and bias of "
                         f"{', '.join(LAYER_NAMES)}), got {len(weights)}")
    return {name: {"kernel": np.array(weights[2 * index], dtype=np.float32),
                   "bias": np.array(weights[2 * index + 1], dtype=np.float32)}
            for index, name in enumerate(LAYER_NAMES)}


class JaxTutorial:
    """The jitted training step and inference of the tutorial CNN, with their state (parameters, velocities,
    iteration count, random key) held between calls."""

    def __init__(self, weights: list[np.ndarray], threads: int, seed: int = 0) -> None:
        jax, self.thread_setup = import_jax(threads)
        import jax.numpy as jnp
        from jax import lax

        self.jax = jax
        self.version = jax.__version__

        def convolution_block(x, layer, key, training):
            """Conv2D 3x3 VALID -> MaxPool 2x2 -> ReLU -> Dropout, the tutorial's order."""
            z = lax.conv_general_dilated(x, layer["kernel"], window_strides=(1, 1), padding="VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC")) + layer["bias"]
            pooled = lax.reduce_window(z, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
            return dropout(jax.nn.relu(pooled), key, training)

        def dropout(x, key, training):
            if not training:
                return x
            keep = jax.random.bernoulli(key, 1.0 - DROPOUT_RATE, x.shape)
            return jnp.where(keep, x / (1.0 - DROPOUT_RATE), 0.0)

        def logits_of(params, x, key, training):
            keys = jax.random.split(key, 3)
            x = convolution_block(x, params["conv1"], keys[0], training)
            x = convolution_block(x, params["conv2"], keys[1], training)
            x = x.reshape(x.shape[0], -1)  # NHWC flattened in (h, w, c) order, as tinynet's Flatten
            x = jax.nn.relu(x @ params["dense1"]["kernel"] + params["dense1"]["bias"])
            x = dropout(x, keys[2], training)
            x = jax.nn.relu(x @ params["dense2"]["kernel"] + params["dense2"]["bias"])
            return x @ params["dense3"]["kernel"] + params["dense3"]["bias"]

        def loss_of(params, x, targets, key):
            logits = logits_of(params, x, key, training=True)
            loss = -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1))
            return loss, logits

        def train_step(params, velocities, iterations, key, x, targets):
            key, step_key = jax.random.split(key)
            (loss, logits), grads = jax.value_and_grad(loss_of, has_aux=True)(params, x, targets, step_key)
            lr_t = LEARNING_RATE / (1.0 + LEARNING_RATE_DECAY * iterations.astype(jnp.float32))
            velocities = jax.tree.map(lambda v, g: BENCHMARK_MOMENTUM * v - lr_t * g, velocities, grads)
            params = jax.tree.map(lambda p, v, g: p + BENCHMARK_MOMENTUM * v - lr_t * g, params, velocities, grads)
            accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == jnp.argmax(targets, axis=-1))
            return params, velocities, iterations + 1, key, loss, accuracy

        def predict(params, x):
            return jax.nn.softmax(logits_of(params, x, jax.random.key(0), training=False), axis=-1)

        self._train_step = jax.jit(train_step, donate_argnums=(0, 1, 2, 3))
        self._predict = jax.jit(predict)
        self.params = jax.tree.map(jnp.asarray, params_from_tinynet(weights))
        self.velocities = jax.tree.map(jnp.zeros_like, self.params)
        self.iterations = jnp.zeros((), jnp.int32)
        self.key = jax.random.key(seed)

    def arrays(self, *arrays: np.ndarray) -> tuple[Any, ...]:
        """NumPy arrays as JAX arrays on the CPU device (moved once, outside the timed calls)."""
        return tuple(self.jax.device_put(array) for array in arrays)

    def train_step(self, x: Any, targets: Any) -> tuple[float, float]:
        """One update; returns the batch's loss and accuracy as floats (reading them waits for the step)."""
        with warnings.catch_warnings():
            # A backend that cannot reuse a donated buffer says so on every call; the step is still correct.
            warnings.filterwarnings("ignore", message=".*donated buffers were not usable.*")
            self.params, self.velocities, self.iterations, self.key, loss, accuracy = self._train_step(
                self.params, self.velocities, self.iterations, self.key, x, targets)
        return float(loss), float(accuracy)

    def predict(self, x: Any) -> np.ndarray:
        """Softmax probabilities for a batch, dropout off, as a NumPy array (waits for the result)."""
        return np.asarray(self._predict(self.params, x))
