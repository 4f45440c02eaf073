"""The training runs tests/test_distributed.py compares: one process, or each rank under ``mpiexec -n N``.

``python distributed_worker.py MODE OUT [CHECKPOINT]`` (see :func:`main`); every case trains a reduced
tutorial-shaped CNN on tiny data whose last global batch does not split evenly over 2 or 4 ranks, and writes its
weights, history and optimizer slots to ``OUT/rank<r>.npz`` (rank 0 alone when run without mpiexec). Ranks other
than 0 seed differently, so that only the broadcast of rank 0's weights and generators can make them agree.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

import tinynet
from tinynet import backend
from tinynet.callbacks import CSVLogger, ModelCheckpoint
from tinynet.layers import Activation, BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tinynet.models import Sequential, load_model
from tinynet.optimizers import SGD, Adam

CLASSES = 3


def data(count: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % CLASSES
    images = rng.normal(0, 0.3, size=(count, 12, 12, 1))
    for index, label in enumerate(labels):
        images[index, 2 + 3 * label:4 + 3 * label, 2:10, 0] += 1.0
    return images, np.eye(CLASSES)[labels]


def cnn(dropout: float = 0.25, batch_norm: bool = False) -> Sequential:
    """The tutorial's shape (conv, pool, relu, dropout twice; dense, relu, dropout; dense, relu; softmax), small."""
    layers = [Conv2D(6, (3, 3), input_shape=(12, 12, 1)), MaxPooling2D((2, 2)), Activation("relu"), Dropout(dropout),
              Conv2D(5, (3, 3)), MaxPooling2D((2, 2)), Activation("relu"), Dropout(dropout), Flatten(),
              Dense(16), Activation("relu"), Dropout(dropout), Dense(8), Activation("relu")]
    if batch_norm:
        layers.append(BatchNormalization())
    return Sequential([*layers, Dense(CLASSES, activation="softmax")])


def seeded(seed: int, floatx: str) -> None:
    backend.clear_session()
    backend.set_floatx(floatx)
    rank = distributed_rank()
    tinynet.utils.set_random_seed(seed + 1000 * rank)  # only rank 0's streams may count


def distributed_rank() -> int:
    return int(os.environ.get("PMI_RANK", "0"))


def compiled(model: Sequential, optimizer, wrap: bool, exchange: str = "gather") -> Sequential:
    if wrap:
        from tinynet.distributed import DistributedOptimizer

        optimizer = DistributedOptimizer(optimizer, exchange=exchange)
    model.compile(optimizer, "categorical_crossentropy", ["accuracy"])
    return model


def record(results: dict, prefix: str, model: Sequential, history) -> None:
    for index, weight in enumerate(model.get_weights()):
        results[f"{prefix}/weight{index}"] = weight
    for key, values in history.history.items():
        results[f"{prefix}/history/{key}"] = np.asarray(values)
    for kind, named in model.optimizer.get_slots(model.layers).items():
        for (layer, name), value in sorted(named.items()):
            results[f"{prefix}/slot/{kind}/{layer}/{name}"] = value


def run_cases(out: Path, wrap: bool) -> dict:
    results: dict = {}
    rank = distributed_rank()
    x, y = data(38)  # batches 12, 12, 12, 2: the last one leaves two of four ranks without a row
    x_val, y_val = data(11, seed=8)

    # float64, SGD with Nesterov momentum, dropout on: 13 epochs of 4 steps (52 steps), validation each epoch; a
    # checkpoint named after the rank, so that only rank 0's may exist.
    seeded(1, "float64")
    model = compiled(cnn(), SGD(lr=0.05, momentum=0.9, nesterov=True), wrap)
    history = model.fit(x, y, batch_size=12, epochs=13, verbose=0, validation_data=(x_val, y_val),
                        callbacks=[ModelCheckpoint(str(out / f"checkpoint_rank{rank}.tnz"), save_best_only=False),
                                   CSVLogger(str(out / f"log_rank{rank}.csv"))])
    record(results, "sgd64", model, history)

    # float32, one step on a batch of 10 (4 ranks: 2, 3, 2, 3 rows), with each way of summing the gradients.
    for exchange in ("gather", "allreduce"):
        seeded(2, "float32")
        model = compiled(cnn(), SGD(lr=0.05, momentum=0.9, nesterov=True), wrap, exchange)
        history = model.fit(x[:10], y[:10], batch_size=10, epochs=1, verbose=0)
        record(results, "sgd32" if exchange == "gather" else "allreduce32", model, history)

    # float64, Adam, sample weights (one zero), BatchNormalization: 3 epochs.
    seeded(3, "float64")
    model = compiled(cnn(batch_norm=True), Adam(lr=0.01), wrap)
    weights = np.linspace(0.5, 2.0, len(x))
    weights[5] = 0.0
    history = model.fit(x, y, batch_size=12, epochs=3, verbose=0, sample_weight=weights,
                        validation_data=(x_val, y_val))
    record(results, "adam64", model, history)

    # The first half of a resumable run: 2 epochs, checkpointed (by rank 0 alone) after each.
    seeded(4, "float64")
    model = compiled(cnn(), SGD(lr=0.05, momentum=0.9, nesterov=True), wrap)
    model.fit(x, y, batch_size=12, epochs=2, verbose=0,
              callbacks=[ModelCheckpoint(str(out / "resume.tnz"), save_best_only=False)])
    # ... and the uninterrupted run it is compared with (the reference only).
    if not wrap:
        seeded(4, "float64")
        model = compiled(cnn(), SGD(lr=0.05, momentum=0.9, nesterov=True), wrap)
        history = model.fit(x, y, batch_size=12, epochs=4, verbose=0)
        record(results, "uninterrupted", model, history)
    return results


def resume(checkpoint: Path, wrap: bool) -> dict:
    backend.set_floatx("float64")
    x, y = data(38)
    model = load_model(checkpoint)
    if wrap:
        from tinynet.distributed import DistributedOptimizer

        model.compile(DistributedOptimizer(model.optimizer), model.loss, ["accuracy"])
    history = model.fit(x, y, batch_size=12, epochs=4, initial_epoch=model.epochs_done, verbose=0)
    results: dict = {}
    record(results, "resumed", model, history)
    return results


def fail(how: str) -> None:
    """Rank 1 raises (or dies) in the third step; the others would wait for it forever without the abort."""
    from tinynet.callbacks import LambdaCallback
    from tinynet.distributed import DistributedOptimizer, init

    world = init()
    seeded(5, "float32")
    x, y = data(38)

    def third_step(batch, logs):
        if batch == 2 and world.rank == 1:
            if how == "raise":
                raise RuntimeError("rank 1 failed on purpose")
            os.kill(os.getpid(), 9)

    model = compiled(cnn(), SGD(lr=0.05), wrap=False)
    model.compile(DistributedOptimizer(model.optimizer), model.loss, ["accuracy"])
    model.fit(x, y, batch_size=12, epochs=50, verbose=0, callbacks=[LambdaCallback(on_batch_begin=third_step)])


def main() -> None:
    """``reference OUT``: one process, no wrapper. ``distributed OUT [CHECKPOINT]``: the cases under mpiexec, then,
    given a checkpoint, its resumption. ``resume OUT CHECKPOINT``: the resumption alone."""
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "fail":
        fail(sys.argv[2])
        return
    wrap = mode != "reference"
    if wrap:
        from tinynet.distributed import init
        from tinynet.engine import blas, num_threads

        world = init()
        # Each rank gets its share of the cores by default: no oversubscription.
        expected = max(1, len(os.sched_getaffinity(0)) // world.local_size) if blas.controllable() else 1
        if num_threads() != expected:
            raise AssertionError(f"rank {world.rank}: {num_threads()} engine threads, expected {expected}")
    rank = distributed_rank()
    if mode != "resume":
        np.savez(out / f"rank{rank}.npz", **run_cases(out, wrap))
    if len(sys.argv) > 3:
        np.savez(out / f"resumed_rank{rank}.npz", **resume(Path(sys.argv[3]), wrap))


if __name__ == "__main__":
    main()
