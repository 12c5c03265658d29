"""Tables as text, written one way: Markdown, TSV, CSV or aligned console columns; p-values as text.

Every table crmnet prints or writes (the evaluation summary, reports, ``crmnet models``, ``crmnet zoo``)
goes through :func:`render`, so cells are escaped the same way everywhere. :func:`format_p` is the one
p-value formatter: a p-value that underflowed to 0 in float64 is printed as the bound ``< 1e-300``, never
as ``0``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

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
