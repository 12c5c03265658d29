"""Shared figure helpers: a headless ``Figure``, p-value text, atomic PNG/PDF saving."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from crmnet.fsutil import atomic_file

FORMATS = ("png", "pdf")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def format_p(p: float) -> str:
    """A p-value as text; one that underflowed to 0 in float64 is shown as a bound, not as 0."""
    if not np.isfinite(p):
        return "p = n/a"
    if p == 0.0:
        return "p < 1e-300"
    return f"p = {p:.2g}"


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
