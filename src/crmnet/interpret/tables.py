"""The interpretation stage's one table writer: TSV files, Markdown tables and p-value text.

Every table of ``crmnet interpret`` and ``crmnet motifs`` goes through here, so missing values, floats
and p-values that underflowed look the same everywhere:

* a missing value (``None`` or NaN) is an empty TSV cell and ``–`` in Markdown (rows that have nothing
  to report, such as a motif without hits, say so in their own ``note`` column instead of showing NaN);
* floats carry 6 significant digits in TSV files and 3 in Markdown;
* a p- or q-value that underflowed to 0 in float64 is written as the bound ``< 1e-300``, never ``0``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from crmnet.fsutil import atomic_file

SMALLEST_P = "< 1e-300"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float | np.floating) and not math.isfinite(float(v)))


def format_p(p: float | None, name: str | None = None) -> str:
    """A p- or q-value as text, as a bound when it underflowed to 0.

    Parameters
    ----------
    p : float or None
        The probability.
    name : str, optional
        Prefix it: ``format_p(0.03, "q")`` is ``"q = 0.03"``, ``format_p(0.0, "q")`` is ``"q < 1e-300"``.

    Returns
    -------
    str
        Two significant digits (``"0.034"``, ``"2.1e-09"``), ``"< 1e-300"`` for 0, ``"–"`` if missing.
    """
    if _missing(p):
        text = "–" if name is None else "n/a"
    else:
        text = SMALLEST_P if float(p) == 0.0 else f"{float(p):.2g}"
    if name is None:
        return text
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def write_tsv(path: str | os.PathLike, rows: list[dict], overwrite: bool = False) -> Path:
    """Write dict rows as a tab-separated table, atomically.

    Parameters
    ----------
    path : path-like
        Output file; refused if it exists unless ``overwrite``.
    rows : list of dict
        One dict per row; the columns are the union of the keys in first-seen order. Floats get 6
        significant digits, a missing value (None, NaN) an empty cell, a p-value column (name ending in
        ``p_value``, ``_p`` or ``q_value``) of exactly 0 the text ``< 1e-300``.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        ``path``.
    """
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)

    def cell(column: str, v) -> str:
        if _missing(v):
            return ""
        if isinstance(v, float | np.floating):
            if v == 0.0 and _is_p_column(column):
                return SMALLEST_P
            return f"{float(v):.6g}"
        if isinstance(v, list | tuple):
            return ",".join(str(x) for x in v)
        return str(v)

    with atomic_file(path, overwrite=overwrite) as fh:
        fh.write("\t".join(columns) + "\n")
        for row in rows:
            fh.write("\t".join(cell(c, row.get(c)) for c in columns) + "\n")
    return Path(path)


def _is_p_column(name: str) -> bool:
    return name.endswith(("p_value", "_p", "q_value", "p_top", "p_bottom")) or name in ("p", "q")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], p_columns: Sequence[str] = ()) -> list[str]:
    """Lines of a Markdown table.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : sequence of sequences
        Cell values, one sequence per row, as long as ``header``. Floats get 3 significant digits,
        missing values ``–``; strings are written as they are.
    p_columns : sequence of str
        Titles of the p- and q-value columns, formatted by :func:`format_p`.

    Returns
    -------
    list of str
        The header line, the separator line and one line per row.
    """
    is_p = [h in p_columns for h in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = []
        for v, p_col in zip(row, is_p):
            if isinstance(v, str):
                cells.append(v)
            elif p_col:
                cells.append(format_p(v))
            elif _missing(v):
                cells.append("–")
            elif isinstance(v, float | np.floating):
                cells.append(f"{float(v):.3g}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return lines
