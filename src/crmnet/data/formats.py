"""The input formats, named once: readers, ``prepare``, the commands' ``--format`` choices and the web page.

:data:`INPUT_FORMATS` maps each format's name to what it is and whether it can carry measured values
(only those can become a training store). :data:`FORMATS` adds ``"auto"`` (detected from the first
non-blank line, see :func:`crmnet.data.readers.detect_format`); :data:`STORE_FORMATS` is what
``prepare`` accepts. The readers themselves are :mod:`crmnet.data.readers`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FORMATS", "INPUT_FORMATS", "STORE_FORMATS", "InputFormat", "describe"]


@dataclass(frozen=True)
class InputFormat:
    """One input format (its name is its key in :data:`INPUT_FORMATS`, the ``--format`` value).

    description: what a file of it looks like, for people. measured: whether it can hold measured
    expression values (a headerless value column, or a ``Measured Expression`` or ``--measured-column``
    column), so ``prepare`` can build a training store from it.
    """

    description: str
    measured: bool


INPUT_FORMATS: dict[str, InputFormat] = {
    "txt": InputFormat("headerless tab-separated lines: `sequence<TAB>value` (Vaishnav et al.'s training files), "
                       "`id<TAB>sequence`, or one sequence per line", measured=True),
    "tsv": InputFormat("tab-separated with a header line naming a `sequence` column (and optionally `Measured "
                       "Expression`, `Predicted Expression`, an id)", measured=True),
    "csv": InputFormat("comma-separated with a header line, the same columns (the Vaishnav test CSVs)", measured=True),
    "fasta": InputFormat("`>id` header lines and sequence lines", measured=False),
}
FORMATS: tuple[str, ...] = ("auto", *INPUT_FORMATS)
STORE_FORMATS: tuple[str, ...] = ("auto", *(name for name, f in INPUT_FORMATS.items() if f.measured))


def describe(names: tuple[str, ...] = FORMATS) -> str:
    """The formats ``names`` as text for help and messages: ``"auto, txt, tsv, csv or fasta"``.

    Parameters
    ----------
    names : format names, in order (default: every format and ``auto``).

    Returns
    -------
    str
        The names joined with commas and a final "or".
    """
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
