"""Atomic reads and writes of one array element, for compiled code that the engine's threads run side by side.

Numba has no atomics of its own; these are LLVM's, as Numba intrinsics (called from ``@njit`` code only):

- :func:`load_acquire`: read an element that another thread writes; the compiler may not hoist it out of a
  loop, and what that thread wrote before its release store is seen after it;
- :func:`store_release`: write a flag after the data it announces;
- :func:`fetch_add`: add to an element and get its old value in one sequentially consistent step (a counter
  that several threads bump: barrier arrivals, claimed pieces).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba
import numpy as np
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["load_acquire", "store_release", "fetch_add"]


def _element_pointer(context, builder, array_type, array, index):
    """The address of ``array[index]`` in generated code."""
    array_struct = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, array_struct, [index])


if TYPE_CHECKING:
    # What compiled code calls: Numba supplies ``typingctx`` itself, and the Python-level objects only raise.
    def load_acquire(array: np.ndarray, index: int) -> int: ...
    def store_release(array: np.ndarray, index: int, value: int) -> None: ...
    def fetch_add(array: np.ndarray, index: int, value: int) -> int: ...
else:
    @intrinsic
    def load_acquire(typingctx, array, index):  # noqa: ARG001 (Numba's intrinsic signature)
        """``array[index]`` read with an atomic acquire load."""

        def codegen(context, builder, signature, args):
            array_type = signature.args[0]
            pointer = _element_pointer(context, builder, array_type, args[0], args[1])
            return builder.load_atomic(pointer, "acquire", array_type.dtype.bitwidth // 8)

        return array.dtype(array, index), codegen

    @intrinsic
    def store_release(typingctx, array, index, value):  # noqa: ARG001 (Numba's intrinsic signature)
        """``array[index] = value`` as an atomic release store: every write before it is seen before it."""

        def codegen(context, builder, signature, args):
            array_type = signature.args[0]
            pointer = _element_pointer(context, builder, array_type, args[0], args[1])
            stored = context.cast(builder, args[2], signature.args[2], array_type.dtype)
            builder.store_atomic(stored, pointer, "release", array_type.dtype.bitwidth // 8)
            return context.get_dummy_value()

        return numba.types.none(array, index, value), codegen

    @intrinsic
    def fetch_add(typingctx, array, index, value):  # noqa: ARG001 (Numba's intrinsic signature)
        """``array[index] += value`` as one sequentially consistent read-modify-write; returns the old value.
        Sequentially consistent, not only acquire-release: the barrier's arrival adds and then reads the
        sleepers, a sleeper adds itself and then reads the arrivals, and neither pair may pass each other, or a
        wake-up could be missed (:mod:`tinynet.engine.barrier`)."""

        def codegen(context, builder, signature, args):
            array_type = signature.args[0]
            pointer = _element_pointer(context, builder, array_type, args[0], args[1])
            added = context.cast(builder, args[2], signature.args[2], array_type.dtype)
            return builder.atomic_rmw("add", pointer, added, "seq_cst")

        return array.dtype(array, index, value), codegen
