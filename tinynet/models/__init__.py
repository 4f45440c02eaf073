"""Models (Keras's ``keras.models``): :class:`Sequential`, :func:`load_model` and the error training raises.

The package, one concern per file:

``sequential.py``   the model: construction, compile, the public step (``compute_gradients``, ``train_step``),
                    evaluate/predict, weights
``passes.py``       the forward and backward passes through the layers or the engine's fused stages
``training.py``     the fit loop (epochs, batches, callbacks, validation)
``evaluation.py``   inference over a dataset in batches (evaluate, predict)
``batches.py``      an epoch's batches from arrays, a ``tinynet.utils.Sequence`` or a generator
``sample_weights.py``  ``sample_weight``/``class_weight`` as per-sample weights (Keras 2.2.4's rules)
``keras2_aliases.py``  ``fit_generator`` and the other Keras 2.2.4 spellings, ``predict_classes``/``predict_proba``
``numerics.py``     numerical faults: :class:`NumericalFaultError` and where a NaN first showed
``checks.py``       checks of what a user hands a model
``summary.py``, ``costs.py``   ``summary()`` and what each layer costs
``saving/``        model files and bare weights (``model.save``, :func:`load_model`, ``save_weights``), one concept
                    per file; imported when first used, and it imports ``sequential.py``, never this facade
"""

from __future__ import annotations

import os
from typing import Any

from tinynet.models.numerics import NumericalFaultError
from tinynet.models.sequential import Sequential

__all__ = ["NumericalFaultError", "Sequential", "load_model"]


def load_model(filepath: Any, custom_objects: dict[str, Any] | None = None) -> Sequential:
    """Read back a model saved with ``model.save`` (see :func:`tinynet.models.saving.load_model`), or a Keras ``.keras``
    / ``.h5`` model file of a Sequential made of tinynet's layers (see :mod:`tinynet.interop`)."""
    from tinynet import interop
    from tinynet.models.saving import load_model as load  # the loader builds a Sequential: imported when used

    if isinstance(filepath, str | os.PathLike) and interop.keras_format_of(filepath):
        if custom_objects:
            raise ValueError(f"load_model: {filepath}: custom_objects cannot be used with Keras files; tinynet "
                             "never runs code named by a file")
        return interop.load_keras_model(filepath)

    return load(filepath, custom_objects)
