"""The compiled half of :mod:`tinynet.engine.compiled_inference`: what each thread runs, without the GIL.

A prediction has two phases, and the threads *claim* their pieces (an atomic counter per phase), as the training
passes do (:mod:`tinynet.engine.training_lanes`):

1. the convolution blocks, one piece per slice of the batch (both halves' slices, the first half's first);
2. the dense layers, one piece per half of the batch: every layer in turn on the half's rows.

A half's dense piece needs only that half's slices, so there is no barrier between the phases: each half has its
own count of finished slices (:func:`tinynet.engine.barrier.arrive`), and the thread that takes a half's dense
piece waits for that count (:func:`~tinynet.engine.barrier.wait_for`). The first half's slices are claimed first,
so its dense piece is ready when the first thread runs out of slices; the other thread, finishing the last slice,
then takes the second half's. A thread that starts late (the worker, some 40 us after the calling thread) or
is descheduled leaves the other more slices instead of the end of its fixed half (batch 100 on a Xeon guest: the
worker's fixed half ended 270 us after the calling thread's).

Every piece computes the same numbers whoever runs it (its own images, its own rows): the bits never depend on
which thread took what, nor on how many threads ran. With one thread holding every lane there is no claiming and
no waiting: it runs the pieces in order.
"""

from __future__ import annotations

import numba
import numpy as np

from tinynet.engine.atomics import fetch_add
from tinynet.engine.barrier import WATCH, arrive, wait_for
from tinynet.engine.threads import open_gate, wait_for_closing
from tinynet.engine.winograd_slices import forward_slice, forward_slice_f5
from tinynet.kernels.bias_relu_dropout import bias_relu_dropout_forward
from tinynet.kernels.direct_conv import conv3x3_one_channel_pool_relu
from tinynet.kernels.dropout import NO_WORDS
from tinynet.kernels.fused import _forward_2x2_batch

__all__ = ["inference_lanes", "SLICES", "DENSE_HALVES"]

# The phases' claim counters (a zeroed int64 array of two).
SLICES, DENSE_HALVES = 0, 1

_ROW_MAJOR, _NO_TRANS = 101, 111


@numba.njit(cache=True, nogil=True)
def _dense_rows(h, kernel, bias, use_bias, relu, out, pass_mask, gemm):
    """``out = h @ kernel`` (the call ``numpy.matmul`` makes for two matrices), then ``+ bias`` and, when
    ``relu``, ReLU (:func:`bias_relu_dropout_forward` without dropout; ``pass_mask`` is its unread record)."""
    rows, inner, units = h.shape[0], h.shape[1], kernel.shape[1]
    one, zero = out.dtype.type(1), out.dtype.type(0)
    gemm(np.int32(_ROW_MAJOR), np.int32(_NO_TRANS), np.int32(_NO_TRANS), rows, units, inner, one, h.ctypes.data,
         inner, kernel.ctypes.data, units, zero, out.ctypes.data, units)
    if relu:
        bias_relu_dropout_forward(out, bias, use_bias, NO_WORDS.reshape(1, -1), False, np.uint16(0), one, pass_mask)
    elif use_bias:
        for n in range(rows):
            for u in range(units):
                out[n, u] += bias[u]


@numba.njit(cache=True, nogil=True)
def _conv_slice(images, start, stop, kernel1, bias1, pooled1, transformed2, bias2, use_bias2, tiles, products, z2,
                features, pooled_shape, tile, tile_grid, no_index, no_mask, gemm):
    """Both convolution blocks for the images ``start:stop``: their flattened, pooled, ReLU'd maps into
    ``features[start:stop]``. The second convolution by F(4x4, 3x3) over its whole map (``tile`` 4) or by
    F(5x5, 3x3) over the part the pooling reads (``tile`` 5; ``z2`` has that part's shape). ``pooled1``,
    ``tiles``, ``products`` and ``z2`` are this thread's work arrays (``tiles`` and ``products`` flat, shaped here
    for the slice's tile count). ``no_index`` and ``no_mask``: the pooling's records, which inference never writes."""
    count = stop - start
    positions, channels, filters = transformed2.shape[0], transformed2.shape[1], transformed2.shape[2]
    tiles_h, tiles_w = tile_grid
    block1 = pooled1[:count]
    conv3x3_one_channel_pool_relu(images[start:stop], kernel1, bias1, block1)
    tile_count = count * tiles_h * tiles_w
    slice_tiles = tiles[:positions * tile_count * channels].reshape((positions, tile_count, channels))
    slice_products = products[:positions * tile_count * filters].reshape((positions, tile_count, filters))
    if tile == 5:
        forward_slice_f5(block1, slice_tiles, slice_products, transformed2, bias2, use_bias2, z2[:count], tiles_h,
                         tiles_w, gemm)
    else:
        forward_slice(block1, slice_tiles, slice_products, transformed2, bias2, use_bias2, z2[:count], 0, 0,
                      tiles_h, tiles_w, gemm)
    pooled2 = features[start:stop].reshape((count, pooled_shape[0], pooled_shape[1], filters))
    _forward_2x2_batch(z2[:count], pooled2, no_index, no_mask, NO_WORDS, False, np.uint16(0), z2.dtype.type(1),
                       False)


@numba.njit(cache=True, nogil=True)
def inference_lanes(gate, first_lane, stop_lane, lanes, half_barriers, abort, system_call, waits, claims, slices,
                    half_bounds, images, kernel1, bias1, pooled1, transformed2, bias2, use_bias2, tiles, products, z2,
                    features, pooled_shape, tile, tile_grid, kernels, biases, use_biases, relus, outputs, pass_mask,
                    gemm):
    """This thread's share of a prediction (see the module docstring): claimed slices of the convolution blocks,
    then claimed halves of the dense layers, the last one's pre-activation into ``outputs[-1]``.

    ``slices``: ``(start, stop)`` image rows, half after half; ``half_bounds``: where each half's slices begin
    (and a last entry, their count). ``half_barriers``: one zeroed barrier a half (its finished slices).
    ``claims``: zeroed counters for :data:`SLICES` and :data:`DENSE_HALVES`. ``outputs``: each dense layer's
    whole-batch output. ``tile``: 4 or 5, the second convolution's F(tile x tile, 3x3) (see :func:`_conv_slice`).
    ``gate``: the region's, opened at once."""
    open_gate(gate)
    alone = stop_lane - first_lane == lanes
    slice_count = slices.shape[0]
    halves = half_bounds.shape[0] - 1
    no_index = np.empty((1, 1, 1, 1), dtype=np.int32)  # pooling records nothing in inference
    no_mask = np.empty((1, 1, 1, 1), dtype=np.uint8)
    taken = 0
    while True:
        piece = taken if alone else fetch_add(claims, SLICES, 1)
        if piece >= slice_count:
            break
        _conv_slice(images, slices[piece, 0], slices[piece, 1], kernel1, bias1, pooled1, transformed2, bias2,
                    use_bias2, tiles, products, z2, features, pooled_shape, tile, tile_grid, no_index, no_mask, gemm)
        if not alone:
            half = 0
            while half_bounds[half + 1] <= piece:
                half += 1
            arrive(half_barriers[half], half_bounds[half + 1] - half_bounds[half], system_call, waits)
        taken += 1
    taken = 0
    while True:
        half = taken if alone else fetch_add(claims, DENSE_HALVES, 1)
        if half >= halves:
            break
        if not alone:
            wait_for(half_barriers[half], half_bounds[half + 1] - half_bounds[half], abort, system_call, waits)
            if abort[0] != 0:
                break
        rows = slice(slices[half_bounds[half], 0], slices[half_bounds[half + 1] - 1, 1])
        h = features[rows]
        for layer in range(len(kernels)):
            out = outputs[layer][rows]
            _dense_rows(h, kernels[layer], biases[layer], use_biases[layer], relus[layer], out, pass_mask[rows],
                        gemm)
            h = out
        taken += 1
    if first_lane > 0:  # a worker: back to Python once the calling thread has let go of the GIL
        wait_for_closing(gate, waits[WATCH])
