"""Which file format a model or its weights go to or come from, chosen by the file's name.

* ``model.save(path)``: tinynet's own file (:mod:`tinynet.models.saving`): architecture, weights, compile
  settings, optimizer and random state, epochs done; ``tinynet.models.load_model`` continues training from it
  exactly. A name ending in ``.keras`` or ``.h5`` writes Keras 3's format instead (:mod:`tinynet.interop`), which
  ``keras.saving.load_model`` reads: the architecture, weights, compile settings and optimizer state, but not
  tinynet's random streams or epoch count.
* ``model.save_weights(path)`` / ``load_weights(path)``: an ``.npz`` matched by ``<layer>/<weight>`` name (by
  position when the file comes from a twin whose layers were named differently); an ``.h5`` name is Keras's HDF5
  weights file (Keras 3's layout for ``.weights.h5``, the legacy one for other ``.h5``).
* ``model.export(path, format='onnx')``: an ONNX graph with a dynamic batch axis that takes NHWC inputs as the
  model does (:mod:`tinynet.interop.onnx_export`).
"""

from __future__ import annotations

import os
from typing import Any

from tinynet import interop
from tinynet.models import saving


def _is_keras_model_path(filepath: Any) -> bool:
    return isinstance(filepath, str | os.PathLike) and bool(interop.keras_format_of(filepath))


def _is_keras_weights_path(filepath: Any) -> bool:
    return isinstance(filepath, str | os.PathLike) and interop.is_keras_weights_path(filepath)


def save(model: Any, filepath: Any) -> None:
    if _is_keras_model_path(filepath):
        interop.save_keras_model(model, filepath)  # .keras / .h5: Keras 3's own formats
    else:
        saving.save_model(model, filepath)


def save_weights(model: Any, filepath: Any) -> None:
    if _is_keras_weights_path(filepath):
        interop.save_keras_weights(model, filepath)
    else:
        saving.save_weights(model, filepath)


def load_weights(model: Any, filepath: Any) -> None:
    if _is_keras_weights_path(filepath):
        interop.load_keras_weights(model, filepath)
    else:
        saving.load_weights(model, filepath)


def export(model: Any, filepath: Any, format: str = "onnx") -> None:
    from tinynet.interop.onnx_export import export_onnx  # needs the onnx package, imported only here

    if format != "onnx":
        raise ValueError(f"{model.name}.export: format must be 'onnx', got {format!r}")
    export_onnx(model, filepath)
