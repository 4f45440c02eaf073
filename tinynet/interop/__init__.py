"""Interoperability: Keras's model files (``.keras``, ``.h5``, ``.weights.h5``) both ways, and ONNX export.

tinynet's layers already keep Keras's layouts (Conv2D ``(kh, kw, in, filters)``, Dense ``(in, units)``,
BatchNormalization's ``gamma, beta, moving_mean, moving_variance``), so moving a model between the two is a matter
of translating configurations and naming arrays as each file format does. One concept per file:

``dependencies.py``    the optional packages (``h5py`` for HDF5, ``onnx``), imported only when used
``keras_layers.py``    layer configurations: Keras 2 and Keras 3 to tinynet, tinynet to Keras 3
``keras_compile.py``   compile settings (loss, metrics, optimizer and its state) both ways
``h5_reading.py``      reading an HDF5 file from a stranger: links, attributes and datasets checked before use
``building.py``        a tinynet Sequential from translated layers and the file's arrays (checked, then allocated)
``keras_h5.py``        the legacy full-model ``.h5`` file (Keras 2 and Keras 3's ``legacy_h5_format``)
``keras_weights.py``   the weights files: Keras 3's ``.weights.h5`` and the legacy ``.h5`` weights layout
``keras_zip.py``       Keras 3's ``.keras`` zip (``metadata.json``, ``config.json``, ``model.weights.h5``)
``onnx_export.py``     ``model.export(path, format='onnx')``: a standard ONNX graph, NHWC input, dynamic batch

Nothing in a file is ever run: Keras's ``Lambda`` layers and custom objects (anything outside Keras's own
modules, any ``registered_name``) are refused with a ``ValueError`` naming the file and the field.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tinynet.models.sequential import Sequential

_Result = TypeVar("_Result")

#: Extensions that mean "a Keras file": ``model.save`` writes Keras's formats for these, tinynet's for the rest.
KERAS_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def keras_format_of(path: str | os.PathLike[str]) -> str | None:
    """``'keras'`` for a ``.keras`` path, ``'h5'`` for ``.h5``/``.hdf5``, else None (tinynet's own format)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".keras":
        return "keras"
    if suffix in (".h5", ".hdf5"):
        return "h5"
    return None


def is_keras_weights_path(path: str | os.PathLike[str]) -> bool:
    """``save_weights``/``load_weights`` speak Keras's HDF5 for ``.h5`` names (``.weights.h5`` included)."""
    return Path(path).suffix.lower() in (".h5", ".hdf5")


def load_keras_model(path: str | os.PathLike[str]) -> Sequential:
    """A tinynet Sequential from a Keras ``.keras`` or ``.h5`` file; a ValueError naming the file otherwise."""
    from tinynet.interop.keras_h5 import load_h5_model
    from tinynet.interop.keras_zip import load_keras_model as load_zip

    load = load_zip if keras_format_of(path) == "keras" else load_h5_model
    return _naming_the_file("load_model", path, lambda: load(path))


def save_keras_model(model: object, path: str | os.PathLike[str]) -> None:
    from tinynet.interop.keras_h5 import save_h5_model
    from tinynet.interop.keras_zip import save_keras_model as save_zip

    (save_zip if keras_format_of(path) == "keras" else save_h5_model)(model, path)


def save_keras_weights(model: object, path: str | os.PathLike[str]) -> None:
    from tinynet.interop.keras_weights import save_weights

    save_weights(model, path)


def load_keras_weights(model: object, path: str | os.PathLike[str]) -> None:
    from tinynet.interop.keras_weights import load_weights

    _naming_the_file("load_weights", path, lambda: load_weights(model, path))


def _naming_the_file(entry_point: str, path: str | os.PathLike[str], action: Callable[[], _Result]) -> _Result:
    from tinynet.fileio import NotARegularFileError
    from tinynet.interop.errors import KerasFormatError

    try:
        return action()
    except FileNotFoundError:
        raise FileNotFoundError(f"{entry_point}: no such file: {path}") from None
    except (KerasFormatError, NotARegularFileError) as error:
        raise ValueError(f"{entry_point}: {path}: {error}") from None
    except RecursionError:
        raise ValueError(f"{entry_point}: {path}: the file nests its config too deeply") from None
    except ValueError as error:  # set_weights' own refusals
        raise ValueError(f"{entry_point}: {path}: {error}") from None
