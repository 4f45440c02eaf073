"""The optional packages interop needs, imported when first used, with an error that says how to install them.

``h5py`` (HDF5: ``.h5`` files and the weights inside ``.keras``) is the ``keras`` extra, ``onnx`` the ``onnx``
extra: tinynet trains and saves its own files without either, so neither is a runtime dependency.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def _require(module: str, extra: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{purpose} needs the {module!r} package, which is not installed ({error}); install it "
                          f"with: pip install 'tinynet[{extra}]'") from None


def h5py() -> ModuleType:
    """The ``h5py`` module, or an ImportError naming ``pip install 'tinynet[keras]'``."""
    return _require("h5py", "keras", "Reading and writing Keras .h5/.keras files")


def onnx() -> ModuleType:
    """The ``onnx`` module, or an ImportError naming ``pip install 'tinynet[onnx]'``."""
    return _require("onnx", "onnx", "Exporting to ONNX")
