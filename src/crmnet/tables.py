"""Tables as text, written one way: Markdown, TSV, CSV or aligned console columns; p-values as text.

Every table crmnet prints or writes (the evaluation summary, reports, ``crmnet models``, ``crmnet zoo``)
goes through :func:`render`, so cells are escaped the same way everywhere; tables of mixed values (the
interpretation stage's) go through :func:`write_tsv` and :func:`markdown_table`, which format floats
(6 significant digits in TSV files, 3 in Markdown) and missing values (an empty cell, ``–``) the same way
every time. :func:`format_p` is the one
p-value formatter: a p-value that underflowed to 0 in float64 is printed as the bound ``< 1e-300``, never
as ``0``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from crmnet.fsutil import atomic_file

STYLES = ("markdown", "tsv", "csv", "text")


def format_p(p: float | None, label: str | None = "p") -> str:
    """A p-value as text: ``p = 0.012``, ``p < 1e-300`` (underflow), ``p = n/a``; without ``label``: the value.

    Parameters
    ----------
    p : the p-value (None or non-finite: not available).
    label : the name in front (``"p"``), or None for the value alone (table cells).

    Returns
    -------
    str
    """
    if p is None or not math.isfinite(p):
        text = "n/a"
    elif p == 0.0:
        text = "< 1e-300"
    else:
        text = f"{p:.2g}"
    if label is None:
        return text
    return f"{label} {text}" if text.startswith("<") else f"{label} = {text}"


def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(header: Sequence[str], rows: Sequence[Sequence], style: str = "markdown") -> str:
    """A table as text, ending with a newline.

    Parameters
    ----------
    header : k column names.
    rows : rows of k cells each (any values; written with ``str``).
    style : ``markdown`` (a pipe table, ``|`` escaped), ``tsv`` (tabs and newlines in cells become spaces),
        ``csv`` (RFC 4180 quoting) or ``text`` (columns padded to align, for a console).

    Returns
    -------
    str
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, not {style!r}")
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells for {len(header)} columns: {row}")
    if style == "markdown":
        lines = ["| " + " | ".join(map(_md_cell, header)) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    if style == "tsv":
        clean = [[str(c).replace("\t", " ").replace("\n", " ") for c in r] for r in [header, *rows]]
        return "".join("\t".join(r) + "\n" for r in clean)
    if style == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerows([header, *rows])
        return buf.getvalue()
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in cells)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float | np.floating) and not math.isfinite(float(v)))


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
    with atomic_file(path, overwrite=overwrite) as fh:
        fh.write(tsv_row(columns))
        for row in rows:
            fh.write(tsv_row([row.get(c) for c in columns], columns))
    return Path(path)


def _tsv_cell(column: str, v) -> str:
    if _missing(v):
        return ""
    if isinstance(v, float | np.floating):
        if v == 0.0 and _is_p_column(column):
            return "< 1e-300"
        return f"{float(v):.6g}"
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    return str(v).replace("\t", " ").replace("\n", " ")


def tsv_row(cells: Sequence, columns: Sequence[str] | None = None) -> str:
    """One line of a TSV file, cells formatted as :func:`write_tsv` formats them (for tables written row by row).

    Parameters
    ----------
    cells : sequence
        k values: floats get 6 significant digits, a missing value (None, NaN) an empty cell, a list
        comma-joined; tabs and newlines inside a text cell become spaces.
    columns : sequence of str, optional
        The k column names, when a p-value column's exact 0 should read ``< 1e-300``; None: no p columns.

    Returns
    -------
    str
        The tab-joined cells and a newline.
    """
    names = columns if columns is not None else [""] * len(cells)
    return "\t".join(_tsv_cell(c, v) for c, v in zip(names, cells, strict=True)) + "\n"


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
        missing values ``–``; p columns as :func:`format_p` writes them; strings are written as they are.
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
                cells.append(format_p(v, None))
            elif _missing(v):
                cells.append("–")
            elif isinstance(v, float | np.floating):
                cells.append(f"{float(v):.3g}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return lines
