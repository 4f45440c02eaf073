"""The matrix product of Dense and Conv2D, cut into blocks by a rule that depends only on the shapes.

OpenBLAS rounds an entry of ``a @ b`` differently depending on the shape of the call it is computed in. The
engine (:mod:`tinynet.engine`) computes large products as two blocks on two threads; if the layers computed
them as one call, a model would give other bits with the engine on than off, and a run's bits would depend
on the machine. So both cut a large product the same way, here: into halves of the result's rows, or of its
columns when it is wider than tall (a dense layer's batch of 32 rows against 512 units), each half one BLAS
call into its part of ``out``. :func:`blocked_matmul` runs the blocks one after the other (the layers);
the engine hands the same blocks to its threads. Products smaller than ``MIN_SPLIT_MULTIPLY_ADDS`` are one
call in both. Every block's entries are the same dot products as in ``a @ b``: only the rounding can differ.
"""

from __future__ import annotations

import numpy as np

__all__ = ["blocked_matmul", "matmul_blocks", "split_range"]

# A product smaller than this (multiply-adds) is one call: handing half of it to another thread costs more.
MIN_SPLIT_MULTIPLY_ADDS = 1 << 20
# How many blocks a larger product is cut into: one per core of the 2-core machines tinynet is tuned on.
MATMUL_BLOCKS = 2


def split_range(count: int, parts: int) -> list[tuple[int, int]]:
    """``range(count)`` cut into ``parts`` contiguous, nearly equal ``(start, stop)`` pieces (none empty)."""
    parts = max(1, min(parts, count))
    base, extra = divmod(count, parts)
    bounds, start = [], 0
    for part in range(parts):
        stop = start + base + (1 if part < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def matmul_blocks(rows: int, inner: int, columns: int) -> tuple[bool, list[tuple[int, int]]]:
    """``(by_columns, blocks)``: how a ``(rows, inner) @ (inner, columns)`` product is cut.

    ``blocks`` are ``(start, stop)`` ranges of the result's columns when ``by_columns``, else of its rows; a
    single block means one call."""
    by_columns = columns > rows
    if min(rows, columns) < 1 or max(rows, columns) < MATMUL_BLOCKS or \
            rows * inner * columns < MIN_SPLIT_MULTIPLY_ADDS:
        return by_columns, [(0, columns if by_columns else rows)]
    return by_columns, split_range(columns if by_columns else rows, MATMUL_BLOCKS)


def new_product(a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``out``, or a new array of ``a @ b``'s shape and dtype."""
    return np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b)) if out is None else out


def multiply_block(a: np.ndarray, b: np.ndarray, out: np.ndarray, by_columns: bool, start: int, stop: int) -> None:
    """One block of ``out = a @ b``: columns ``[start, stop)`` of the result when ``by_columns``, else rows."""
    if by_columns:
        np.matmul(a, b[:, start:stop], out=out[:, start:stop])
    else:
        np.matmul(a[start:stop], b, out=out[start:stop])


def blocked_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for 2-D arrays, block after block as :func:`matmul_blocks` cuts it (on the calling thread).

    ``out``, when given, must be C-contiguous of the result's shape and dtype; it is filled and returned."""
    out = new_product(a, b, out)
    by_columns, blocks = matmul_blocks(a.shape[0], a.shape[1], b.shape[1])
    if len(blocks) == 1:
        return np.matmul(a, b, out=out)
    for start, stop in blocks:
        multiply_block(a, b, out, by_columns, start, stop)
    return out
