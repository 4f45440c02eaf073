"""The engines the ``peers`` suite compares, each built from the same tinynet weights, each optional.

An engine is a name, a column label and two factories: ``training(batch)`` and ``inference(batch)`` return the
zero-argument call the suite times (a training step, or the softmax probabilities of a batch, always waited for:
JAX's and PyTorch's calls return a host value, so no asynchronous work is left running outside the timing).
Moving the batch into the engine's own arrays happens in the factory, outside the timed call, for every engine.

Building an engine can fail (the package is missing, a compiler is missing, a version refuses the model): then
:func:`build_engines` records the reason instead, and that engine's column says why; the others still run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.tutorial import one_hot, synthetic_images, synthetic_labels

Call = Callable[[], Any]


@dataclass
class Engine:
    """One column of the comparison."""

    name: str
    label: str
    version: str
    inference: Callable[[int], Call]
    training: Callable[[int], Call] | None = None  # None: inference only (ONNX Runtime)
    probabilities: Callable[[np.ndarray], np.ndarray] | None = None  # for the cross-check against tinynet
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Unavailable:
    """An engine that could not be built, and why."""

    name: str
    label: str
    reason: str


LABELS = {
    "tinynet": "tinynet",
    "torch_eager": "PyTorch eager",
    "torch_channels_last": "PyTorch channels_last",
    "torch_compile": "torch.compile",
    "jax": "JAX jit (XLA)",
    "onnxruntime": "ONNX Runtime",
}
"""Engine name -> column label, in column order; every name but ``tinynet`` is a peer."""

PEERS = tuple(name for name in LABELS if name != "tinynet")


def batch_arrays(batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same synthetic images, integer labels and one-hot targets for every engine."""
    labels = synthetic_labels(batch)
    return synthetic_images(batch), labels, one_hot(labels)


def tinynet_engine(model: Any) -> Engine:
    """tinynet through its public API: ``model.train_step(x, y)`` and ``model.predict(x, batch_size=batch)``."""
    import tinynet

    def training(batch: int) -> Call:
        images, _, targets = batch_arrays(batch)
        return lambda: model.train_step(images, targets)

    def inference(batch: int) -> Call:
        images = synthetic_images(batch)
        return lambda: model.predict(images, batch_size=batch, verbose=0)

    return Engine("tinynet", LABELS["tinynet"], tinynet.__version__, inference, training,
                  lambda images: model.predict(images, batch_size=len(images), verbose=0))


def torch_engine(name: str, weights: list[np.ndarray], threads: int) -> Engine:
    """PyTorch eager (``torch_eager``), eager with channels-last tensors (``torch_channels_last``) or
    ``torch.compile`` with the default inductor backend (``torch_compile``), all from tinynet's weights."""
    from benchmarks.torch_port import TorchTutorial

    ported = TorchTutorial(threads=threads, weights=weights, channels_last=name == "torch_channels_last",
                           compiled=name == "torch_compile")

    def training(batch: int) -> Call:
        images, labels, _ = batch_arrays(batch)
        x, y = ported.tensors(images, labels)
        return lambda: ported.train_step(x, y)

    def inference(batch: int) -> Call:
        images = synthetic_images(batch)
        x, _ = ported.tensors(images, synthetic_labels(batch))
        return lambda: ported.predict(x)

    def probabilities(images: np.ndarray) -> np.ndarray:
        return ported.predict(ported.tensors(images, synthetic_labels(len(images)))[0])

    torch = ported.torch
    return Engine(name, LABELS[name], torch.__version__, inference, training, probabilities,
                  {"torch_threads": torch.get_num_threads(), "memory_format": str(ported.memory_format)})


def jax_engine(weights: list[np.ndarray], threads: int) -> Engine:
    """The jitted JAX step and inference of :mod:`benchmarks.jax_port`, from tinynet's weights."""
    from benchmarks.jax_port import JaxTutorial

    ported = JaxTutorial(weights, threads)

    def training(batch: int) -> Call:
        images, _, targets = batch_arrays(batch)
        x, y = ported.arrays(images, targets)
        return lambda: ported.train_step(x, y)

    def inference(batch: int) -> Call:
        (x,) = ported.arrays(synthetic_images(batch))
        return lambda: ported.predict(x)

    return Engine("jax", LABELS["jax"], ported.version, inference, training,
                  lambda images: ported.predict(*ported.arrays(images)), {"threads": ported.thread_setup})


def onnxruntime_engine(model: Any, threads: int) -> Engine:
    """ONNX Runtime's CPU provider on the graph tinynet exports (``model.export(path, format='onnx')``):
    ``threads`` intra-op threads, sequential execution (the graph is a chain), every graph optimisation on."""
    from benchmarks.suites.onnxruntime_compare import import_error

    reason = import_error()
    if reason is not None:
        raise ImportError(reason)
    import onnxruntime

    session = onnxruntime_session(model, threads)
    input_name = session.get_inputs()[0].name

    def inference(batch: int) -> Call:
        images = synthetic_images(batch)
        return lambda: session.run(None, {input_name: images})[0]

    return Engine("onnxruntime", LABELS["onnxruntime"], onnxruntime.__version__, inference, None,
                  lambda images: session.run(None, {input_name: images})[0])


def onnxruntime_session(model: Any, threads: int) -> Any:
    """An ONNX Runtime session on the graph ``model.export`` writes: ``threads`` intra-op threads, sequential
    execution (the graph is a chain), every graph optimisation on, the CPU provider. ONNX Runtime must be
    importable (see :func:`benchmarks.suites.onnxruntime_compare.import_error`)."""
    import onnxruntime

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tutorial.onnx"
        model.export(path, format="onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def build_engines(model: Any, threads: int) -> tuple[list[Engine], list[Unavailable]]:
    """tinynet and every peer that builds, all starting from ``model``'s current weights.

    Call before ``model`` trains: the peers copy its weights (and ONNX Runtime its exported graph) now.
    """
    weights = [np.array(weight) for weight in model.get_weights()]
    builders: dict[str, Callable[[], Engine]] = {
        "torch_eager": lambda: torch_engine("torch_eager", weights, threads),
        "torch_channels_last": lambda: torch_engine("torch_channels_last", weights, threads),
        "torch_compile": lambda: torch_engine("torch_compile", weights, threads),
        "jax": lambda: jax_engine(weights, threads),
        "onnxruntime": lambda: onnxruntime_engine(model, threads),
    }
    engines, unavailable = [tinynet_engine(model)], []
    for name, build in builders.items():
        try:
            engines.append(build())
        except Exception as error:  # ImportError, or any failure of a peer's own build: report it, go on
            unavailable.append(Unavailable(name, LABELS[name], f"{type(error).__name__}: {error}"))
    return engines, unavailable
