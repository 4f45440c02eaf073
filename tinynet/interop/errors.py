"""The one error interop raises for a file's content: a ``ValueError`` the loaders prefix with the file's name."""

from __future__ import annotations


class KerasFormatError(ValueError):
    """A field of a Keras file that tinynet cannot or will not use; the message names the field and why."""
