"""The compiled half of :mod:`tinynet.engine.compiled_training`: what each thread runs, without the GIL.

Each function takes whole-batch arrays. A pass is a sequence of phases (the kernel transform; the convolution
blocks with their rows of the dropout masks, one piece per slice of the batch; each dense layer, one piece per
block of its products; the final sums; the optimizer's update). Within a phase the threads *claim* pieces: each
takes the next unclaimed one (an atomic counter per phase) until none is left. So a thread that started late,
runs slower, or was descheduled by a busy machine leaves more pieces to the other. And a phase ends when its
*pieces* are finished, not when every thread has arrived: each finished piece adds one to the barrier's count
(:func:`tinynet.engine.barrier.arrive`), and a thread starting the next phase waits for the count to reach the
pieces of every phase so far (:func:`~tinynet.engine.barrier.wait_for`). A thread descheduled between two pieces
holds nothing anyone waits for; it catches up later, finding each phase done and its pieces taken. (With a busy
process on each core the batch-32 step went from 11.3-11.8 to 8.1-8.8 ms, Xeon guest.) Every piece computes the
same numbers whoever runs it (its own rows, its own block, or its own slice's part of a gradient, the parts summed
later in slice order), so the bits never depend on which thread took what. The dense pieces are blocks of the
layers' products cut as the stages cut them (:func:`tinynet.kernels.matmul.matmul_blocks`), each one the gemm
``numpy.matmul`` makes for that block, followed by the layers' elementwise arithmetic on the block. With one
thread holding every lane there is no waiting and it runs the pieces in order: the same bits.
"""

from __future__ import annotations

import numba
import numpy as np

from tinynet.engine.atomics import fetch_add
from tinynet.engine.barrier import WATCH, arrive, wait_for
from tinynet.engine.threads import open_gate, wait_for_closing
from tinynet.engine.winograd_slices import forward_slice, input_gradient_slice, kernel_gradient_slice
from tinynet.kernels.bias_relu_dropout import bias_relu_dropout_forward
from tinynet.kernels.direct_conv import (
    conv3x3_one_channel_pool_relu_dropout,
    conv3x3_one_channel_pooled_parameter_gradients,
)
from tinynet.kernels.fused import _backward_disjoint_batch, _forward_2x2_batch
from tinynet.kernels.pcg64 import pcg64_fill_words
from tinynet.kernels.sgd import _momentum, _plain
from tinynet.kernels.winograd_f4 import _kernel_transform_f4
from tinynet.kernels.winograd_f4_gradients import _kernel_gradient_transform_f4

__all__ = ["forward_lanes", "backward_lanes", "FORWARD", "DX", "DW", "TURN", "KERNEL_SUM", "SMALL_SUMS"]

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# What a piece computes (the first column of a pieces table): a block of a dense layer's forward product, of its
# dx or of its dW; the turned kernel's F(4x4, 3x3) transform for a range of channels (backward); the second
# convolution's kernel gradient for a range of channels (its slices' parts summed, brought back from the Winograd
# domain); every bias gradient and the first convolution's kernel gradient.
FORWARD, DX, DW, TURN, KERNEL_SUM, SMALL_SUMS = 0, 1, 2, 3, 4, 5


@numba.njit(cache=True, nogil=True)
def _gemm_at(gemm, trans_a, trans_b, rows, columns, inner, a, a_offset, lda, b, b_offset, ldb, c, c_offset, ldc):
    """``c[block] = op(a[block]) @ op(b[block])``: one row-major gemm on blocks that start ``*_offset`` elements
    into C-contiguous arrays (the call ``numpy.matmul`` makes for such views)."""
    one, zero = c.dtype.type(1), c.dtype.type(0)
    size = c.itemsize
    gemm(np.int32(_ROW_MAJOR), np.int32(_TRANS if trans_a else _NO_TRANS), np.int32(_TRANS if trans_b else _NO_TRANS),
         rows, columns, inner, one, a.ctypes.data + a_offset * size, lda, b.ctypes.data + b_offset * size, ldb, zero,
         c.ctypes.data + c_offset * size, ldc)


@numba.njit(cache=True, nogil=True)
def _bias_relu_dropout_block(z, rows, columns, bias, use_bias, words, use_dropout, threshold, scale, pass_mask):
    """:func:`tinynet.kernels.bias_relu_dropout.bias_relu_dropout_forward` on the block ``rows x columns``
    (``(start, stop)`` pairs) of ``z``: the same arithmetic, element by element."""
    block = (slice(rows[0], rows[1]), slice(columns[0], columns[1]))
    # (words[block] of a layer without dropout, a (1, 1) array never read, is clipped to what it has)
    bias_relu_dropout_forward(z[block], bias[block[1]], use_bias, words[block], use_dropout, threshold, scale,
                              pass_mask[block])


@numba.njit(cache=True, nogil=True)
def _mask_block(dz, rows, columns, pass_mask, scale):
    """:func:`relu_dropout_backward` in place on a block: ``dz * scale`` where ``pass_mask`` is set, else 0."""
    zero = dz.dtype.type(0)
    for n in range(rows[0], rows[1]):
        for u in range(columns[0], columns[1]):
            dz[n, u] = dz[n, u] * scale if pass_mask[n, u] else zero


@numba.njit(cache=True, nogil=True)
def _finite(values):
    """Whether every value is finite: ``v * 0`` is 0 for a finite ``v`` and NaN for NaN or an infinity."""
    total = values.dtype.type(0)
    for value in values.flat:
        total += value * values.dtype.type(0)
    return total == 0


@numba.njit(cache=True, nogil=True)
def _sum_rows(values, out):
    """``out = values[0] + values[1] + ...`` in that order (``np.sum(values, axis=0)``'s order and bits)."""
    out[:] = values[0]
    for index in range(1, values.shape[0]):
        out += values[index]


@numba.njit(cache=True, nogil=True)
def _sum_channel_parts(parts, start, stop, out):
    """``out[k] = parts[0, k, start:stop] + parts[1, k, start:stop] + ...`` in that order (:func:`_sum_rows`'s
    bits) for ``parts (parts, 36, C, F)`` and ``out (36, stop - start, F)``, both C-contiguous. The rows of
    channels ``start:stop`` are contiguous runs of the flattened parts: summed as whole runs, 5x faster than
    element by element through strided views (which also check every index for wrap-around)."""
    flat = parts.reshape(parts.shape[0], parts.shape[1], -1)
    low, high = start * parts.shape[3], stop * parts.shape[3]
    for k in range(flat.shape[1]):
        row = out[k].reshape(-1)
        row[:] = flat[0, k, low:high]
        for part in range(1, flat.shape[0]):
            row += flat[part, k, low:high]


@numba.njit(cache=True, nogil=True)
def _place_transposed(turned, target, start, stop, masked, pass_mask, scale):
    """``target[:, start:stop] = turned^T`` (``turned`` the flat ``(stop - start, rows)`` product), through the
    ReLU's and dropout's mask when ``masked`` (:func:`_mask_block`'s arithmetic)."""
    rows = target.shape[0]
    zero = target.dtype.type(0)
    for n in range(rows):
        for column in range(start, stop):
            value = turned[(column - start) * rows + n]
            if masked:
                value = value * scale if pass_mask[n, column] else zero
            target[n, column] = value


@numba.njit(cache=True, nogil=True)
def _block(by_columns, start, stop, rows, columns):
    """The rows and columns ``(start, stop)`` of a product's block: a range of columns or of rows."""
    return ((0, rows), (start, stop)) if by_columns else ((start, stop), (0, columns))


@numba.njit(cache=True, nogil=True)
def _conv_forward_slice(images, start, stop, kernel1, bias1, y1, argmax1, pass1, words1, dropout1, threshold1,
                        scale1, transformed2, bias2, use_bias2, tiles, products, z2, features, argmax2, pass2,
                        words2, dropout2, threshold2, scale2, tile_grid, gemm):
    """Both convolution blocks, training mode, for the images ``start:stop``."""
    channels, filters = transformed2.shape[1], transformed2.shape[2]
    tiles_h, tiles_w = tile_grid
    count = stop - start
    conv3x3_one_channel_pool_relu_dropout(images[start:stop], kernel1, bias1, y1[start:stop], argmax1[start:stop],
                                          pass1[start:stop], words1[start:stop], dropout1, threshold1, scale1, True)
    tile_count = count * tiles_h * tiles_w
    forward_slice(y1[start:stop], tiles[:36 * tile_count * channels].reshape((36, tile_count, channels)),
                  products[:36 * tile_count * filters].reshape((36, tile_count, filters)), transformed2, bias2,
                  use_bias2, z2[:count], 0, 0, tiles_h, tiles_w, gemm)
    _forward_2x2_batch(z2[:count], features[start:stop].reshape((count, argmax2.shape[1], argmax2.shape[2], filters)),
                       argmax2[start:stop], pass2[start:stop], words2[start:stop], dropout2, threshold2, scale2, True)


@numba.njit(cache=True, nogil=True)
def _conv_backward_slice(images, start, stop, part, dfeatures, argmax2, pass2, scale2, covers_plane, y1, pad2, tiles,
                         products, dz2, kernel_parts2, bias_parts2, use_bias2, turned2, no_bias, dy1, tile_grid,
                         input_tile_grid, argmax1, pass1, scale1, parts1, gemm):
    """Both convolution blocks' backward pass for the images ``start:stop``: their parts number ``part``."""
    filters, channels = turned2.shape[1], turned2.shape[2]
    tiles_h, tiles_w = tile_grid
    input_tiles_h, input_tiles_w = input_tile_grid
    count = stop - start
    slice_dz = dz2[:count]
    _backward_disjoint_batch(dfeatures[start:stop].reshape((count, argmax2.shape[1], argmax2.shape[2], filters)),
                             argmax2[start:stop], pass2[start:stop], scale2, slice_dz, 2, 2, 2, 2, 0, 0, covers_plane)
    tile_count = count * tiles_h * tiles_w
    kernel_gradient_slice(y1[start:stop], slice_dz,
                          tiles[:36 * tile_count * channels].reshape((36, tile_count, channels)),
                          products[:36 * tile_count * filters].reshape((36, tile_count, filters)),
                          kernel_parts2[part], pad2[0], pad2[1], tiles_h, tiles_w, gemm)
    if use_bias2:  # db_part = 1^T dz, summed in row order
        sums = bias_parts2[part]
        sums[:] = slice_dz.dtype.type(0)
        for n in range(count):
            for i in range(slice_dz.shape[1]):
                for j in range(slice_dz.shape[2]):
                    for f in range(filters):
                        sums[f] += slice_dz[n, i, j, f]
    input_count = count * input_tiles_h * input_tiles_w
    slice_dy1 = dy1[start:stop]
    input_gradient_slice(slice_dz, tiles[:36 * input_count * filters].reshape((36, input_count, filters)),
                         products[:36 * input_count * channels].reshape((36, input_count, channels)), turned2,
                         no_bias, slice_dy1, 2 - pad2[0], 2 - pad2[1], input_tiles_h, input_tiles_w, gemm)
    # (the rows and columns past the tiles: no output gradient reaches them, see the plan's input_tile_grid)
    zero = slice_dy1.dtype.type(0)
    slice_dy1[:, 4 * input_tiles_h:] = zero
    slice_dy1[:, :, 4 * input_tiles_w:] = zero
    conv3x3_one_channel_pooled_parameter_gradients(images[start:stop], slice_dy1, argmax1[start:stop],
                                                   pass1[start:stop], scale1, parts1[part, :9], parts1[part, 9])


@numba.njit(cache=True, nogil=True)
def _participants(first_lane, stop_lane, lanes):
    """How many threads run this region: 1 when this one holds every lane, else one per lane."""
    return 1 if stop_lane - first_lane == lanes else lanes


@numba.njit(cache=True, nogil=True, inline="always")
def _claim(claims, phase, taken, alone, barrier, done, system_call, waits):
    """The number of the next piece of ``phase`` this thread runs: ``taken`` (how many it ran in this phase)
    when it runs alone, else the next unclaimed one (past the last: the phase is done). Called once more than the
    pieces a thread runs, it first counts the piece taken before as finished (the barrier's ``done``: the phase's
    total of finished pieces, see the module docstring)."""
    if alone:
        return taken
    if taken > 0:
        arrive(barrier, done, system_call, waits)
    return fetch_add(claims, phase, 1)


@numba.njit(cache=True, nogil=True)
def _draw_rows(start, stop, streams, stream_words, row_words, masks):
    """Rows ``start:stop`` of each mask: the words of its PCG64 stream (``streams[m]``: state and increment as
    high and low halves) from word ``stream_words[m] + start * row_words[m]`` on."""
    for m in range(len(masks)):
        width = row_words[m]
        pcg64_fill_words(streams[m, 0], streams[m, 1], streams[m, 2], streams[m, 3], stream_words[m] + start * width,
                         masks[m][start * width:stop * width])


@numba.njit(cache=True, nogil=True)
def forward_lanes(gate, first_lane, stop_lane, lanes, barrier, abort, system_call, waits, claims, streams,
                  stream_words, row_words, masks, slices, images, kernel1, bias1, y1, argmax1, pass1,
                  words1, dropout1, threshold1, scale1, kernel2, channel_bounds, transformed2, bias2, use_bias2, tiles,
                  products, z2, features, argmax2, pass2, words2, dropout2, threshold2, scale2, tile_grid, pieces,
                  phase_bounds, kernels, biases, use_biases, activations, pass_masks, words, dropouts, thresholds,
                  scales, gemm):
    """This thread's share of the forward pass, phase by phase, each piece claimed: channels of the second
    convolution's F(4x4, 3x3) kernel; a slice of the batch's rows of every dropout mask and its convolution
    blocks; a block of a dense layer's product with its bias, ReLU and dropout (the last layer: bias only).
    ``claims``: one zeroed counter per phase. ``gate``: the region's, opened at once.

    The first phase is short (the calling thread usually takes all of it before the worker, which starts some
    40 us later, arrives); the masks are drawn with the slices, so that neither thread waits for the other's."""
    open_gate(gate)
    participants = _participants(first_lane, stop_lane, lanes)
    alone = participants == 1
    transforms = channel_bounds.shape[0] - 1
    done = transforms  # the pieces finished when this phase is: the barrier counts pieces, not threads
    for taken in range(transforms + 1):  # every piece at most, then a last claim that finds none
        piece = _claim(claims, 0, taken, alone, barrier, done, system_call, waits)
        if piece >= transforms:
            break
        low, high = channel_bounds[piece], channel_bounds[piece + 1]
        _kernel_transform_f4(kernel2[:, :, low:high, :], transformed2[:, low:high, :])
    if not alone:
        wait_for(barrier, done, abort, system_call, waits)
    done += slices.shape[0]
    for taken in range(slices.shape[0] + 1):
        s = _claim(claims, 1, taken, alone, barrier, done, system_call, waits)
        if s >= slices.shape[0]:
            break
        _draw_rows(slices[s, 0], slices[s, 1], streams, stream_words, row_words, masks)  # the slice's mask rows
        _conv_forward_slice(images, slices[s, 0], slices[s, 1], kernel1, bias1, y1, argmax1, pass1, words1, dropout1,
                            threshold1, scale1, transformed2, bias2, use_bias2, tiles, products, z2, features,
                            argmax2, pass2, words2, dropout2, threshold2, scale2, tile_grid, gemm)
    batch = features.shape[0]
    last_layer = len(kernels) - 1
    for phase in range(len(phase_bounds) - 1):
        if not alone:
            wait_for(barrier, done, abort, system_call, waits)
        count = phase_bounds[phase + 1] - phase_bounds[phase]
        done += count
        for taken in range(count + 1):
            index = phase_bounds[phase] + _claim(claims, 2 + phase, taken, alone, barrier, done, system_call, waits)
            if index >= phase_bounds[phase + 1]:
                break
            layer, by_columns, start, stop = pieces[index, 1], pieces[index, 2] != 0, pieces[index, 3], pieces[index, 4]
            kernel = kernels[layer]
            inner, units = kernel.shape[0], kernel.shape[1]
            source = features if layer == 0 else activations[layer - 1]
            out = activations[layer]
            rows, columns = _block(by_columns, start, stop, batch, units)
            _gemm_at(gemm, False, False, rows[1] - rows[0], columns[1] - columns[0], inner, source, rows[0] * inner,
                     inner, kernel, columns[0], units, out, rows[0] * units + columns[0], units)
            if layer < last_layer:
                _bias_relu_dropout_block(out, rows, columns, biases[layer], use_biases[layer], words[layer],
                                         dropouts[layer], thresholds[layer], scales[layer], pass_masks[layer])
            elif use_biases[layer]:
                bias = biases[layer]
                for n in range(rows[0], rows[1]):
                    for u in range(columns[0], columns[1]):
                        out[n, u] += bias[u]
    if first_lane > 0:  # a worker: back to Python once the calling thread has let go of the GIL
        wait_for_closing(gate, waits[WATCH])


@numba.njit(cache=True, nogil=True)
def backward_lanes(gate, first_lane, stop_lane, lanes, barrier, abort, system_call, waits, claims, slices, pieces,
                   phase_bounds, kernels, kernel_gradients, activations, features, gradients, pass_masks, scales,
                   dfeatures, images, argmax2, pass2, scale2, covers_plane, y1, pad2, tiles, products, dz2,
                   kernel_parts2, bias_parts2, use_bias2, kernel2, turned2, no_bias, dy1, tile_grid, input_tile_grid,
                   argmax1, pass1, scale1, parts1, final_pieces, summed_parts, kernel_gradient2, bias_gradient2,
                   kernel_gradient1, bias_gradient1, use_bias1, bias_gradients, use_biases, nonfinite, dx_scratch,
                   gemm, update, update_allowed, params, velocities, grads, update_pieces, update_scalars,
                   momentum_on, nesterov, update_non_finite):
    """This thread's share of the backward pass, phase by phase, each piece claimed: from the last dense layer
    down, blocks of ``dx = dz W^T`` (masked by the layer below's ReLU and dropout) and of ``dW = h^T dz`` (and, in
    the first phase, channels of the turned kernel's transform); then the convolution blocks' parts for a slice;
    then the final sums; then, when ``update`` and ``update_allowed`` and every gradient is finite, SGD's update
    of runs of the (flat) ``params`` (:mod:`tinynet.kernels.sgd`'s loops, ``update_scalars`` the learning rate
    and the momentum), adding the count of non-finite results to ``update_non_finite[first_lane]``.
    ``nonfinite[first_lane]`` is set when a gradient this thread wrote holds a NaN or an infinity. ``claims``: one
    zeroed counter per phase. ``gate``: the region's, opened at once."""
    open_gate(gate)
    participants = _participants(first_lane, stop_lane, lanes)
    alone = participants == 1
    batch = features.shape[0]
    dense_phases = len(phase_bounds) - 1
    done = 0  # the pieces finished when the current phase is: the barrier counts pieces, not threads
    for phase in range(dense_phases):
        if phase > 0 and not alone:
            wait_for(barrier, done, abort, system_call, waits)
        count = phase_bounds[phase + 1] - phase_bounds[phase]
        done += count
        for taken in range(count + 1):  # every piece at most, then a last claim that finds none
            index = phase_bounds[phase] + _claim(claims, phase, taken, alone, barrier, done, system_call, waits)
            if index >= phase_bounds[phase + 1]:
                break
            kind, layer, by_columns = pieces[index, 0], pieces[index, 1], pieces[index, 2] != 0
            start, stop = pieces[index, 3], pieces[index, 4]
            if kind == TURN:  # channels start:stop of the transform of the kernel turned half a turn, axes swapped
                turned = kernel2[::-1, ::-1].transpose(0, 1, 3, 2)
                _kernel_transform_f4(turned[:, :, :, start:stop], turned2[:, :, start:stop])
                continue
            kernel, dz = kernels[layer], gradients[layer]
            inner, units = kernel.shape[0], kernel.shape[1]
            if kind == DX:  # (batch, inner) = dz @ W^T, into the layer below's dz (then masked) or dfeatures
                target = dfeatures if layer == 0 else gradients[layer - 1]
                rows, columns = _block(by_columns, start, stop, batch, inner)
                if by_columns:  # as (W[block] @ dz^T)^T: a tall product, which OpenBLAS makes faster
                    _gemm_at(gemm, False, True, stop - start, batch, units, kernel, start * units, units, dz, 0,
                             units, dx_scratch, 0, batch)
                    _place_transposed(dx_scratch, target, start, stop, layer > 0, pass_masks[max(layer - 1, 0)],
                                      scales[max(layer - 1, 0)])
                    continue
                _gemm_at(gemm, False, True, rows[1] - rows[0], columns[1] - columns[0], units, dz, rows[0] * units,
                         units, kernel, columns[0] * units, units, target, rows[0] * inner + columns[0], inner)
                if layer > 0:
                    _mask_block(target, rows, columns, pass_masks[layer - 1], scales[layer - 1])
            else:  # (inner, units) = h^T @ dz, h the layer's input
                source = features if layer == 0 else activations[layer - 1]
                rows, columns = _block(by_columns, start, stop, inner, units)
                gradient = kernel_gradients[layer]
                _gemm_at(gemm, True, False, rows[1] - rows[0], columns[1] - columns[0], batch, source, rows[0], inner,
                         dz, columns[0], units, gradient, rows[0] * units + columns[0], units)
                if not _finite(gradient[rows[0]:rows[1], columns[0]:columns[1]]):
                    nonfinite[first_lane] = 1
    if not alone:
        wait_for(barrier, done, abort, system_call, waits)
    done += slices.shape[0]
    for taken in range(slices.shape[0] + 1):
        s = _claim(claims, dense_phases, taken, alone, barrier, done, system_call, waits)
        if s >= slices.shape[0]:
            break
        _conv_backward_slice(images, slices[s, 0], slices[s, 1], s, dfeatures, argmax2, pass2, scale2, covers_plane,
                             y1, pad2, tiles, products, dz2, kernel_parts2, bias_parts2, use_bias2, turned2, no_bias,
                             dy1, tile_grid, input_tile_grid, argmax1, pass1, scale1, parts1, gemm)
    if not alone:
        wait_for(barrier, done, abort, system_call, waits)
    done += final_pieces.shape[0]
    for taken in range(final_pieces.shape[0] + 1):
        index = _claim(claims, dense_phases + 1, taken, alone, barrier, done, system_call, waits)
        if index >= final_pieces.shape[0]:
            break
        kind, start, stop = final_pieces[index, 0], final_pieces[index, 3], final_pieces[index, 4]
        if kind == KERNEL_SUM:  # channels start:stop: the slices' parts summed in slice order, then G^T dU G
            filters = kernel_parts2.shape[3]
            # (a contiguous block of the flat scratch: the transform reads it 4x faster than a strided view)
            summed = summed_parts[36 * start * filters:36 * stop * filters].reshape(36, stop - start, filters)
            _sum_channel_parts(kernel_parts2, start, stop, summed)
            _kernel_gradient_transform_f4(summed, kernel_gradient2[:, :, start:stop, :])
            if not _finite(kernel_gradient2[:, :, start:stop, :]):
                nonfinite[first_lane] = 1
            continue
        finite = True  # SMALL_SUMS: every bias, in row or slice order, and the first convolution's kernel
        for layer in range(len(bias_gradients)):
            if use_biases[layer]:
                _sum_rows(gradients[layer], bias_gradients[layer])
                finite = finite and _finite(bias_gradients[layer])
        if use_bias2:
            _sum_rows(bias_parts2, bias_gradient2)
            finite = finite and _finite(bias_gradient2)
        _sum_rows(parts1[:, :9], kernel_gradient1)
        finite = finite and _finite(kernel_gradient1)
        if use_bias1:
            _sum_rows(parts1[:, 9], bias_gradient1)
            finite = finite and _finite(bias_gradient1)
        if not finite:
            nonfinite[first_lane] = 1
    if update:
        if not alone:  # every gradient written, and every thread's finding in nonfinite
            wait_for(barrier, done, abort, system_call, waits)
        if update_allowed and not nonfinite.any():
            learning_rate, momentum = update_scalars[0], update_scalars[1]
            for taken in range(update_pieces.shape[0]):  # at most every piece
                index = _claim(claims, dense_phases + 2, taken, alone, barrier, done, system_call, waits)
                if index >= update_pieces.shape[0]:
                    break
                k, start, stop = update_pieces[index, 0], update_pieces[index, 1], update_pieces[index, 2]
                if momentum_on:
                    update_non_finite[first_lane] += _momentum(params[k][start:stop], velocities[k][start:stop],
                                                               grads[k][start:stop], learning_rate, momentum,
                                                               nesterov)
                else:
                    update_non_finite[first_lane] += _plain(params[k][start:stop], grads[k][start:stop],
                                                            learning_rate)
    if first_lane > 0:  # a worker: back to Python once the calling thread has let go of the GIL
        wait_for_closing(gate, waits[WATCH])
