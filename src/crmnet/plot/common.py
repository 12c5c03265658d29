"""Shared figure helpers: a headless ``Figure``, atomic PNG/PDF saving (p-value text: :func:`crmnet.tables.format_p`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from crmnet.fsutil import atomic_file
from crmnet.tables import format_p

__all__ = ["FORMATS", "format_p", "save_figure", "save_png"]

FORMATS = ("png", "pdf")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _palette(k: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(k)]


def save_figure(fig, stem: str | os.PathLike, overwrite: bool = False, dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``stem.png`` and ``stem.pdf`` (each atomically); returns the paths."""
    paths = []
    for fmt in FORMATS:
        path = Path(f"{stem}.{fmt}")
        with atomic_file(path, overwrite=overwrite, mode="wb") as fh:
            fig.savefig(fh, format=fmt, dpi=dpi)
        paths.append(path)
    return paths


def save_png(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (replacing an older one)."""
    path = Path(path)
    with atomic_file(path, overwrite=True, mode="wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi)
    return path


def one_based_ticks(ax, width: int, first: int = 0, step: int = 10) -> None:
    """Label an x axis drawn in 0-based array columns with 1-based sequence positions.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes whose x data coordinate ``j`` is array column ``j`` (0 .. width - 1).
    width : int
        Columns drawn.
    first : int
        0-based sequence position of column 0 (a window inside a longer sequence).
    step : int
        Tick every ``step`` positions: at position 1 and at the multiples of ``step``.
    """
    positions = np.arange(first + 1, first + width + 1)  # the 1-based position of each column
    keep = (positions == first + 1) | (positions % step == 0)
    columns = np.flatnonzero(keep)
    ax.set_xticks(columns, [str(p) for p in positions[keep]])
