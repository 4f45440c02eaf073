"""The forward and backward passes of a model through what actually runs: its layers, or, with ``model.fuse``
on, the engine's stages standing in for them (:mod:`tinynet.engine`).

With ``model.fuse = False`` the stages are the layers themselves, and a pass is exactly the loop a learner reads
in :mod:`tinynet.models.sequential`'s docstring.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import numpy as np

from tinynet import engine
from tinynet.engine import blas
from tinynet.engine import compiled_inference as compiled_inference_module
from tinynet.engine import compiled_training as compiled_training_module
from tinynet.engine.compiled_inference import CompiledInference
from tinynet.engine.compiled_training import CompiledTraining, SgdInPass
from tinynet.layers.base import Layer

if TYPE_CHECKING:
    from tinynet.models.sequential import Sequential

# Largest slice of a batch that inference runs in one pass (see forward_in_scope).
INFERENCE_CHUNK = 1024


def stages(model: Sequential) -> list[engine.Stage]:
    """The layers, with fusable runs replaced by fused stages. The plan is cached on the model and made again
    whenever the layers, their built state or ``model.fuse`` change."""
    key = (model.fuse, tuple((id(layer), layer.built) for layer in model.layers))
    if model._stage_plan is None or model._stage_plan[0] != key:
        model._stage_plan = (key, engine.plan(model.layers) if model.fuse else list(model.layers))
    return model._stage_plan[1]


def uses_fused_softmax(model: Sequential) -> bool:
    """Whether the backward pass starts from ``(p - y) / N`` (times the sample weights) at the softmax's input (a
    softmax output layer and a cross-entropy loss), skipping the softmax's own Jacobian."""
    last_activation = getattr(model.layers[-1], "activation", None)
    return (model.loss is not None and model.loss.fuses_with_softmax
            and getattr(last_activation, "name", None) == "softmax"
            and hasattr(model.layers[-1], "backward_preactivation"))


def compute_scope(model: Sequential) -> AbstractContextManager[object]:
    """Held around a step or a prediction: the engine at work (started on first use) with ``fuse`` on; with it
    off, only OpenBLAS held to one thread, so that the layers' products round as the engine's do and a seeded run
    gives the same bits on any machine (:func:`tinynet.engine.blas.single_threaded`)."""
    return engine.engine_scope() if model.fuse else blas.single_threaded()


def forward(model: Sequential, x: np.ndarray, training: bool) -> np.ndarray:
    with compute_scope(model):
        return forward_in_scope(model, x, training)


def compiled_inference(model: Sequential) -> CompiledInference | None:
    """The whole-network compiled inference for the model's plan (:mod:`tinynet.engine.compiled_inference`),
    or ``None`` when the plan has another shape or ``model.fuse`` is off; made once per plan."""
    if not model.fuse:
        return None
    planned = stages(model)
    kept = model._compiled_inference
    switches = (compiled_inference_module.ENABLED, compiled_inference_module.TILE_F5_ENABLED)
    if kept is None or kept[0] is not planned or kept[1] != switches:
        kept = model._compiled_inference = (planned, switches, compiled_inference_module.compiled_inference(planned))
    return kept[2]


def compiled_training(model: Sequential) -> CompiledTraining | None:
    """The compiled training passes for the model's plan (:mod:`tinynet.engine.compiled_training`), or ``None``
    (then the stages train); made again whenever the plan, the loss or a layer's ``trainable`` changes."""
    network = compiled_inference(model)
    key = (compiled_training_module.ENABLED, uses_fused_softmax(model),
           tuple(layer.trainable for layer in model.layers))
    kept = model._compiled_training
    if kept is None or kept[0] is not network or kept[1] != key:
        kept = model._compiled_training = (network, key,
                                           compiled_training_module.compiled_training(network, key[1]))
    return kept[2]


def forward_in_scope(model: Sequential, x: np.ndarray, training: bool) -> np.ndarray:
    if training or len(x) <= INFERENCE_CHUNK:
        whole: CompiledInference | CompiledTraining | None = (compiled_training(model) if training
                                                               else compiled_inference(model))
        if whole is not None:
            return whole.forward(x)
        for stage in stages(model):
            x = stage.forward(x, training=training)
        return x
    # Inference treats every sample on its own, so a very large batch runs in chunks: they bound the memory the
    # layers' outputs take (the convolution blocks cut their slices finer still, for the cache). Chunks of 128 were
    # faster with session 3's kernels; with session 4's a whole batch of 1000 runs in 46-47 ms on one thread
    # against 51-52 ms in chunks of 128, so a chunk is now 1024 images (44 MB for the tutorial's first block).
    # The first slice gives the output's shape and dtype (the batch is not empty: the layers refuse that).
    first = forward_in_scope(model, x[:INFERENCE_CHUNK], training=False)
    outputs = np.empty((len(x), *first.shape[1:]), dtype=first.dtype)
    outputs[:len(first)] = first
    for start in range(INFERENCE_CHUNK, len(x), INFERENCE_CHUNK):
        chunk = forward_in_scope(model, x[start:start + INFERENCE_CHUNK], training=False)
        outputs[start:start + len(chunk)] = chunk
    return outputs


def update_in_backward(model: Sequential) -> SgdInPass | None:
    """The optimizer's update prepared for the compiled backward pass to apply as its last phase
    (:func:`tinynet.engine.compiled_training.sgd_in_pass`), or ``None``: no compiled training for this model, or
    an update that pass cannot run. Made before the step's forward pass; used only if that pass is compiled."""
    trainer = compiled_training(model)
    if trainer is None:
        return None
    return compiled_training_module.sgd_in_pass(trainer, model.optimizer, model.layers)


def backward(model: Sequential, targets: np.ndarray, outputs: np.ndarray,
             sample_weight: np.ndarray | None = None, update: SgdInPass | None = None) -> None:
    """From the gradient of the (weighted) loss back through every stage that leads to a parameter; fills
    ``layer.grads``. ``update`` (from :func:`update_in_backward`): the compiled pass applies it too, when this
    pass is the compiled one (``update.applied`` then says whether it did)."""
    planned = stages(model)
    # Stages before the first one with parameters need no backward pass at all, and the first stage with
    # parameters has no one to hand dx to (Caffe's propagate_down).
    stop = next((index for index, stage in enumerate(planned)
                 if any(layer.params and layer.trainable for layer in _layers_of(stage))),
                len(planned))
    for index, stage in enumerate(planned):
        stage.needs_input_gradient = index > stop
    last = len(planned) - 1
    loss = model.loss
    if loss is None:  # the public entry points refused an uncompiled model already, naming themselves
        raise RuntimeError(f"{model.name}: the model has no loss; compile it first")
    last_stage = planned[last]
    trainer = model._compiled_training[2] if model._compiled_training is not None else None
    if trainer is not None and trainer.pending():  # the forward pass was the compiled one: so is this pass
        trainer.backward(loss.softmax_gradient(targets, outputs, sample_weight), update)
        return
    # With a fused softmax the last stage is the softmax layer itself or its engine stand-in (no pattern ends in one).
    if uses_fused_softmax(model) and isinstance(last_stage, engine.SoftmaxOutputStage):
        gradient = last_stage.backward_preactivation(loss.softmax_gradient(targets, outputs, sample_weight))
    else:
        gradient = last_stage.backward(loss.gradient(targets, outputs, sample_weight))
    for index in range(last - 1, stop - 1, -1):
        if gradient is None:  # only the stage at ``stop`` may return none, and nothing runs below it
            raise RuntimeError(f"{model.name}: stage {index + 1} returned no input gradient")
        gradient = planned[index].backward(gradient)
    for stage in planned[:stop]:
        stage._cache = None  # never backpropagated into; drop what their forward kept


def _layers_of(stage: engine.Stage) -> tuple[Layer, ...]:
    """The layers a stage computes: a layer stands for itself, an engine stage lists its own in ``layers``."""
    return (stage,) if isinstance(stage, Layer) else tuple(getattr(stage, "layers", ()))


def gradients_finite(model: Sequential) -> bool | None:
    """Whether the gradients the last backward pass wrote are all finite, when that pass checked them as it wrote
    them (the compiled training passes do); ``None`` otherwise (then look at them)."""
    trainer = model._compiled_training[2] if model._compiled_training is not None else None
    return None if trainer is None else trainer.gradients_finite


def clear_caches(model: Sequential) -> None:
    """Drop what every layer and stage kept for a backward pass that will not come."""
    if model._compiled_training is not None and model._compiled_training[2] is not None:
        model._compiled_training[2].clear()
    for layer in model.layers:
        layer._cache = None
    for stage in stages(model) if model._stage_plan is not None else []:
        stage._cache = None
