"""The one error interop raises for a file's content: a ``ValueError`` the loaders prefix with the file's name."""

from __future__ import annotations


class KerasFormatError(ValueError):
    """A field of a Keras file that tinynet cannot or will not use; the message names the field and why."""


def require_built(model: object, what: str) -> None:
    """Raise ``RuntimeError`` when ``model`` is not built yet (its shapes, and so its weights, are unknown)."""
    if not getattr(model, "built", False):
        raise RuntimeError(f"{getattr(model, 'name', 'model')}: {what} needs a built model (give the first layer "
                           "input_shape=, call build(), or fit/predict on data)")
