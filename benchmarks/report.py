"""Output: plain-text tables, JSON files written atomically, and PNG charts (matplotlib's Agg backend)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def format_number(value: Any, digits: int = 3) -> str:
    """Readable cell text: ``None`` -> ``n/a``, floats to ``digits`` significant figures (no exponent
    below a million), ints with thousands separators."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == 0:
            return "0"
        magnitude = math.floor(math.log10(abs(value)))
        decimals = max(0, digits - 1 - magnitude)
        return f"{value:,.{decimals}f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    """A left-aligned first column and right-aligned numbers, separated by two spaces."""
    cells = [[format_number(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(values: Sequence[str]) -> str:
        parts = [values[0].ljust(widths[0])] + [value.rjust(width) for value, width in zip(values[1:], widths[1:],
                                                                                        strict=True)]
        return "  ".join(parts).rstrip()

    out = [] if title is None else [title]
    out.append(line(list(headers)))
    out.append("  ".join("-" * width for width in widths))
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def format_markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as GitHub Markdown, for docs/performance.md."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    out.extend("| " + " | ".join(format_number(value) for value in row) + " |" for row in rows)
    return "\n".join(out)


def _json_default(value: Any) -> Any:
    # NumPy scalars and arrays reach the reports through the timings; turn them into plain Python.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"write_json: cannot serialise {type(value).__name__}")


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON through a temporary file and a rename, so a reader never sees half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(data, stream, indent=2, default=_json_default)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def save_figure(figure: Any, path: Path) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(handle)
    try:
        figure.savefig(temporary, dpi=110, bbox_inches="tight")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        plt.close(figure)
    return path


def new_figure(width: float = 9.0, height: float = 4.5, columns: int = 1) -> tuple[Any, list[Any]]:
    """A figure and a row of ``columns`` axes, on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=(width, height), squeeze=False)
    return figure, list(axes[0])
