"""Shared figure helpers: a headless ``Figure``, atomic PNG/PDF saving (p-value text: :func:`crmnet.tables.format_p`)."""

from __future__ import annotations

import os
from pathlib import Path

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
