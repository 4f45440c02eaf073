"""What the 2-D pooling layers share: Keras's arguments, the window geometry, the config."""

from __future__ import annotations

from typing import Any

from tinynet.layers._geometry import check_padding, window_geometry
from tinynet.layers.base import Layer, normalize_tuple


class Pooling2D(Layer):
    """Base of MaxPooling2D and AveragePooling2D: ``pool_size``, ``strides`` (``None`` means the pool size),
    ``padding`` ('valid' or 'same') and channels-last data; ``build`` sets ``out_h, out_w, pad_top, pad_left``.
    """

    def __init__(
        self,
        pool_size: int | tuple[int, int] = (2, 2),
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        data_format: str | None = "channels_last",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size", self.name)
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, 2, "strides", self.name)
        self.padding = check_padding(padding, self.name)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{self.name}: only data_format='channels_last' (N, H, W, C) is supported, "
                             f"got {data_format!r}")

    def build(self, input_shape: tuple[int, ...]) -> None:
        input_shape = self._validate_shape(input_shape, "input_shape")
        self.out_h, self.out_w, self.pad_top, self.pad_left = window_geometry(
            input_shape, self.pool_size, self.strides, self.padding, self.name
        )
        super().build(input_shape)

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.out_h, self.out_w, input_shape[-1])

    @property
    def window(self) -> tuple[int, int, int, int, int, int, int, int]:
        """``(ph, pw, sh, sw, pad_top, pad_left, out_h, out_w)``: the window arguments of the pooling kernels."""
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        return (ph, pw, sh, sw, self.pad_top, self.pad_left, self.out_h, self.out_w)

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {
            "pool_size": self.pool_size, "strides": self.strides, "padding": self.padding,
        }
