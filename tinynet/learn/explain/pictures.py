"""Arrays as pictures small enough to inline in one HTML page: indexed PNGs (written here with zlib, no
matplotlib: a page needs hundreds of them in a second or two) and histograms as SVG.

Colours: an array with negative entries (every gradient, most pre-activations) uses a diverging map, blue for
negative, white for 0, red for positive, scaled by the array's largest ``|value|`` so that 0 is always white and
two pictures of the same array on one page compare directly. A non-negative array (a ReLU's output, an image)
uses a dark-to-yellow sequential map from 0 to its maximum. One scale per array, never per tile: a feature map
that looks faint *is* small compared with its neighbours.

What is shown is sampled so the page stays small: the first sample of a batch (activations, gradients), at most
64 channels, at most 16 rows of a dense strip, rows and columns of a large matrix taken at an even stride. Each
picture's caption says what was kept.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass

import numpy as np

# Palette index 255 is the background between tiles; 0..254 are the colour map.
_LEVELS = 255
_BACKGROUND = (236, 236, 236)


def _ramp(anchors: list[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    """A ``(_LEVELS, 3)`` uint8 colour map interpolated linearly between ``(position, rgb)`` anchors."""
    positions = np.array([position for position, _ in anchors])
    colours = np.array([rgb for _, rgb in anchors], dtype=np.float64)
    steps = np.linspace(0.0, 1.0, _LEVELS)
    return np.stack([np.interp(steps, positions, colours[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


# Blue - white - red (ColorBrewer RdBu, reversed) and a viridis-like dark-blue - green - yellow.
DIVERGING = _ramp([(0.0, (5, 48, 97)), (0.25, (67, 147, 195)), (0.5, (255, 255, 255)), (0.75, (214, 96, 77)),
                   (1.0, (103, 0, 31))])
SEQUENTIAL = _ramp([(0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)), (0.75, (94, 201, 98)),
                    (1.0, (253, 231, 37))])


def _palette(colours: np.ndarray) -> bytes:
    return np.vstack([colours, np.array([_BACKGROUND], dtype=np.uint8)]).tobytes()


def encode_png(indices: np.ndarray, colours: np.ndarray) -> bytes:
    """An 8-bit indexed PNG of ``indices`` (uint8, ``(height, width)``) with ``colours`` plus the background."""
    height, width = indices.shape
    rows = np.concatenate([np.zeros((height, 1), dtype=np.uint8), indices.astype(np.uint8)], axis=1)  # filter 0

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"PLTE", _palette(colours))
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


@dataclass
class Picture:
    """One inline picture: its ``data:`` URI, its size in pixels, how to scale it on screen, what it shows."""

    uri: str
    width: int                 # pixels of the PNG
    height: int
    display_width: int         # pixels on screen (scaled up without smoothing)
    display_height: int
    caption: str
    signed: bool
    limit: float
    clipped: bool              # some values lie beyond +-limit and show in the end colours


class _Scale:
    """Maps values to palette indices with one scale for the whole array (see the module docstring).

    The scale ends at the 99.5th percentile of the non-zero magnitudes, not at the largest one: a gradient often
    has a few entries far larger than the rest (the true class's logit, a max-pool winner), and a scale set by them
    would paint everything else white. The few beyond show in the end colours, and the legend says so."""

    def __init__(self, array: np.ndarray) -> None:
        finite = np.asarray(array, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        self.signed = bool(finite.size) and float(finite.min()) < 0
        magnitudes = np.abs(finite[finite != 0])
        largest = float(magnitudes.max()) if magnitudes.size else 0.0
        self.limit = float(np.percentile(magnitudes, 99.5)) if magnitudes.size >= 200 else largest
        if self.limit <= 0:
            self.limit = largest
        self.clipped = largest > self.limit
        self.colours = DIVERGING if self.signed else SEQUENTIAL

    def indices(self, values: np.ndarray) -> np.ndarray:
        values = np.nan_to_num(np.asarray(values, dtype=np.float64))
        if self.limit <= 0:
            unit = np.full(values.shape, 0.5 if self.signed else 0.0)
        elif self.signed:
            unit = (values / self.limit + 1.0) / 2.0
        else:
            unit = values / self.limit
        return np.clip(np.round(unit * (_LEVELS - 1)), 0, _LEVELS - 1).astype(np.uint8)


def _picture(canvas: np.ndarray, scale: _Scale, caption: str, target: int = 360,
             row_height: int | None = None) -> Picture:
    """The PNG and its size on screen: ``target`` pixels wide at a whole zoom (at most 16x); a strip
    (``row_height``) gets that many screen pixels per row instead, whatever its width."""
    height, width = canvas.shape
    png = encode_png(canvas, scale.colours)
    zoom = max(1, min(16, target // max(width, 1)))
    display_width = width * zoom
    display_height = height * row_height if row_height else height * zoom
    return Picture("data:image/png;base64," + base64.b64encode(png).decode("ascii"), width, height, display_width,
                   display_height, caption, scale.signed, scale.limit, scale.clipped)


def _even_stride(size: int, limit: int) -> np.ndarray:
    """At most ``limit`` indices out of ``range(size)``, evenly spaced, first and last included."""
    if size <= limit:
        return np.arange(size)
    return np.arange(limit) * (size - 1) // (limit - 1)  # strictly increasing, since size > limit


def _tiles(tiles: np.ndarray, scale: _Scale, columns: int) -> np.ndarray:
    """``(count, h, w)`` tiles laid out ``columns`` across with a one-pixel background gap."""
    count, height, width = tiles.shape
    rows = -(-count // columns)
    canvas = np.full((rows * (height + 1) + 1, columns * (width + 1) + 1), _LEVELS, dtype=np.uint8)
    for index in range(count):
        top, left = 1 + (index // columns) * (height + 1), 1 + (index % columns) * (width + 1)
        canvas[top:top + height, left:left + width] = scale.indices(tiles[index])
    return canvas


def feature_maps(sample: np.ndarray, max_channels: int = 64) -> Picture:
    """One sample's ``(H, W, C)`` maps as a grid of ``H x W`` tiles, channel 0 at the top left, row by row."""
    channels = sample.shape[-1]
    kept = sample[..., :max_channels]
    scale = _Scale(kept)
    shown = kept.shape[-1]
    columns = int(np.ceil(np.sqrt(shown))) if shown > 1 else 1
    canvas = _tiles(np.moveaxis(kept, -1, 0), scale, columns)
    target = 480 if shown > 1 else 300  # a single map (an input image) needs less room than a grid of them
    caption = f"sample 0, {shown} channel{'s' if shown != 1 else ''}" + (
        f" (first {shown} of {channels})" if shown < channels else "") + ", one tile each"
    return _picture(canvas, scale, caption, target=target)


def strip(rows: np.ndarray, max_rows: int = 16, max_columns: int = 1024) -> Picture:
    """A ``(N, D)`` batch as a strip: one pixel row per sample (first ``max_rows``), one column per unit."""
    kept_rows = rows[:max_rows]
    columns = _even_stride(rows.shape[1], max_columns)
    kept = kept_rows[:, columns]
    scale = _Scale(kept)
    caption = f"samples 0-{len(kept) - 1} (one row each) x {rows.shape[1]} units" + (
        f" ({len(columns)} shown, evenly spaced)" if len(columns) < rows.shape[1] else "")
    return _picture(scale.indices(kept), scale, caption, target=720, row_height=10)


def matrix(values: np.ndarray, row_name: str, column_name: str, limit: int = 192) -> Picture:
    """A 2-D array (a Dense kernel ``(in, units)``) with rows and columns evenly sampled down to ``limit``."""
    rows, columns = _even_stride(values.shape[0], limit), _even_stride(values.shape[1], limit)
    kept = values[np.ix_(rows, columns)]
    scale = _Scale(kept)
    caption = f"{values.shape[0]} {row_name} (down) x {values.shape[1]} {column_name} (across)"
    if kept.shape != values.shape:
        caption += f"; {kept.shape[0]} x {kept.shape[1]} shown, evenly spaced"
    picture = _picture(scale.indices(kept), scale, caption)
    # The longer side 360 pixels on screen, the shorter one at least 120: a (256, 10) kernel is a readable column
    # of wide cells, not a 3000-pixel ribbon.
    stretch = 360 / max(kept.shape)
    picture.display_height = max(120, round(kept.shape[0] * stretch))
    picture.display_width = max(120, round(kept.shape[1] * stretch))
    return picture


def kernel_grid(kernel: np.ndarray, max_in: int = 16, max_out: int = 64) -> Picture:
    """A convolution kernel ``(kh, kw, C, F)`` as a grid of ``kh x kw`` tiles: input channel down, filter across."""
    kept = kernel[:, :, :max_in, :max_out]
    scale = _Scale(kept)
    kh, kw, channels, filters = kept.shape
    tiles = np.transpose(kept, (2, 3, 0, 1)).reshape(channels * filters, kh, kw)
    if channels < 4:  # a single row of tiles would be a thin line: wrap the filters into a square instead
        columns = int(np.ceil(np.sqrt(channels * filters)))
        caption = f"{kh}x{kw} tiles, one per (input channel, filter), filters of channel 0 first, row by row " \
                  f"({channels} channel{'s' if channels > 1 else ''} x {filters} filters)"
    else:
        columns = filters
        caption = f"{kh}x{kw} tiles: input channel down ({channels} of {kernel.shape[2]}), filter across " \
                  f"({filters} of {kernel.shape[3]})"
    return _picture(_tiles(tiles, scale, columns), scale, caption, target=480)


def vector(values: np.ndarray, max_columns: int = 1024) -> Picture:
    """A 1-D array (a bias) as one strip."""
    columns = _even_stride(values.size, max_columns)
    kept = values.reshape(-1)[columns][None, :]
    scale = _Scale(kept)
    return _picture(scale.indices(kept), scale, f"{values.size} entries" + (
        f" ({len(columns)} shown)" if len(columns) < values.size else ""), target=480, row_height=24)


def batch_picture(batch: np.ndarray) -> Picture:
    """An activation or gradient with its batch axis: feature maps for ``(N, H, W, C)``, a strip otherwise."""
    if batch.ndim == 4:
        return feature_maps(batch[0])
    if batch.ndim == 3:
        return feature_maps(batch[0][..., None]) if batch.shape[-1] > 64 else feature_maps(batch[0][None])
    return strip(batch.reshape(len(batch), -1))


def parameter_picture(values: np.ndarray) -> Picture:
    """A parameter (or its gradient or update) in the layout that shows its structure."""
    if values.ndim == 4:
        return kernel_grid(values)
    if values.ndim == 2:
        return matrix(values, "inputs", "units")
    return vector(values)


# ---------------------------------------------------------------------------------------------- statistics
def statistics(array: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation, extremes, L2 norm and fraction of exact zeros, in float64."""
    values = np.asarray(array, dtype=np.float64)
    if values.size == 0:
        return {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0, "norm": 0.0, "zeros": 0.0}
    return {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
            "max": float(values.max()), "norm": float(np.sqrt(np.sum(values * values))),
            "zeros": float(np.mean(values == 0))}


def histogram_svg(array: np.ndarray, bins: int = 40, width: int = 300, height: int = 90,
                  max_values: int = 200_000) -> str:
    """An inline SVG histogram of the array's values (at most ``max_values`` of them, evenly spaced), with its
    range under the axis and a mark at 0 when 0 is inside the range."""
    values = np.asarray(array, dtype=np.float64).reshape(-1)
    if values.size > max_values:
        values = values[_even_stride(values.size, max_values)]
    values = values[np.isfinite(values)]
    note = ""
    zeros = float(np.mean(values == 0)) if values.size else 0.0
    if zeros > 0.3:  # a spike of exact zeros (ReLU, max pooling, dropout) would flatten every other bar
        values = values[values != 0]
        note = f" ({zeros:.0%} exact zeros not drawn)"
    if values.size == 0:
        return f'<svg class="hist" width="{width}" height="{height}"><text x="0" y="20">all zero</text></svg>'
    low, high = float(values.min()), float(values.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    counts, _ = np.histogram(values, bins=bins, range=(low, high))
    plot_height = height - 18  # bars from 14 px down to the axis; the range is written under it
    top = 14
    bar_width = width / bins
    tallest = max(int(counts.max()), 1)
    # All bars as one path (a few hundred bytes; a page holds hundreds of histograms).
    path = []
    for index, count in enumerate(counts):
        if count == 0:
            continue
        bar_height = max(1.0, (plot_height - top) * count / tallest)
        path.append(f"M{index * bar_width:.1f} {plot_height}v-{bar_height:.1f}h{max(bar_width - 1, 1):.1f}"
                    f"v{bar_height:.1f}z")
    bars = [f'<path d="{"".join(path)}"/>']
    zero = ""
    if low < 0 < high:
        x = width * (0 - low) / (high - low)
        zero = f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{plot_height}" class="zero"/>'
    return (f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'<g class="bars">{"".join(bars)}</g>{zero}'
            f'<line x1="0" y1="{plot_height}" x2="{width}" y2="{plot_height}" class="axis"/>'
            f'<text x="0" y="{height - 4}">{low:.3g}</text>'
            f'<text x="{width}" y="{height - 4}" text-anchor="end">{high:.3g}</text>'
            f'<text x="{width}" y="10" text-anchor="end">{values.size:,} values{note}</text></svg>')


def image_batch(batch: np.ndarray, count: int = 16) -> Picture:
    """The first ``count`` input images of a batch ``(N, H, W, C)`` side by side (channel 0 of each)."""
    kept = np.asarray(batch[:count], dtype=np.float64)[..., 0]
    scale = _Scale(kept)
    canvas = _tiles(kept, scale, min(len(kept), 8))
    return _picture(canvas, scale, f"samples 0-{len(kept) - 1} of the batch of {len(batch)}", target=480)
