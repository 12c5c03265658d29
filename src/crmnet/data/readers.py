"""Readers for every real input format (one stack: training, prediction and evaluation all read here).

Formats (:data:`FORMATS`; ``"auto"`` detects from the first non-blank line, gzip from the magic bytes):

* ``txt``: headerless tab-separated lines. The first record fixes the layout: ``sequence<TAB>value``
  (Vaishnav et al.'s training files, ``HQ_testdata_complex.txt``; LegNet's prediction TSVs, where the
  value is a prediction: say ``value="predicted"``), ``id<TAB>sequence`` (the second field is DNA and the
  first is not a number), or a bare ``sequence`` per line.
* ``tsv`` / ``csv``: tab- or comma-separated with a header line. The sequence column is
  :attr:`Columns.sequence` when named, else the first of :data:`SEQUENCE_COLUMNS` present (exact name,
  then ignoring case); ``Measured Expression`` / ``Predicted Expression`` (or the named columns, e.g.
  Vaishnav's ``meanEL`` / ``edvPred``) are read when present; the id is an ``id``/``name``/``identifier``
  column or an unnamed first column (a pandas index). ``SequenceTable.sequence_column`` says which was used.
* ``fasta``: ``>id`` headers (the id is the first word) and sequence lines.

:func:`iter_records` streams any format in chunks of records (what ``crmnet predict`` uses, never holding
more than one chunk); :func:`read_records` reads a whole file and checks the alphabet.

Policies, the same for every format and for the fast path of ``prepare``: line ends may be LF or CRLF (a
lone CR, old Mac line ends, is an error naming the line); a UTF-8 byte-order mark at the start is dropped
(UTF-16/32 text is refused); NUL and other control bytes are binary data, an error; **blank lines are
skipped** (a trailing blank line is common and harmless) but still counted, so every error and ``lines``
entry names the true 1-based line of the file. A value is an ASCII decimal number (``-1.5``, ``.5``,
``2e-3``): Python-only syntax such as ``1_000`` is not a number. Input may be ``-`` (standard input) or a
pipe: :func:`iter_records` reads it once. Sequences are checked against the encoding contract (A, C, G,
T, N in either case); anything else is an :class:`~crmnet.errors.InputError` naming file and line unless
``invalid="N"`` maps it to N (``SequenceTable.mapped`` counts the characters). A missing, NaN, infinite
or non-numeric value, an empty sequence, a wrong number of columns, an empty file and a truncated or
corrupt gzip stream are errors naming file and line. Duplicate sequences are kept (they are data; the
store's ``duplicates`` policy decides what training does with them).

The fast path of ``crmnet prepare`` for large txt files (arrow parsing, encoding straight from its
buffers) is :class:`crmnet.data.txtblocks.TxtBlocks`; it falls back to :func:`parse_txt_line` here.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from crmnet.config import Config
from crmnet.data.encoding import (
    CRMNET,
    Encoding,
    InvalidPolicy,
    encode_spans,
    invalid_character_error,
    invalid_positions,
)
from crmnet.data.formats import FORMATS, describe
from crmnet.data.streams import (
    CHUNK_BYTES,
    background,
    check_file,
    display_name,
    text_lines,
)
from crmnet.errors import InputError
from crmnet.fsutil import atomic_file

__all__ = [
    "CHUNK_BYTES", "FORMATS", "Columns", "SequenceTable", "background", "check_alphabet", "detect_format",
    "iter_records", "join_sequences", "parse_txt_line", "parse_value", "read_fasta", "read_records", "write_fasta",
]

Format = Literal["auto", "txt", "tsv", "csv", "fasta"]  # the names of crmnet.data.formats.FORMATS, for type checkers
DELIMITERS = {"txt": "\t", "tsv": "\t", "csv": ","}
SEQUENCE_COLUMNS = ("sequence", "seq", "0", "seq110")  # in order of preference
ID_COLUMNS = ("id", "name", "identifier")
MEASURED_COLUMN = "Measured Expression"
PREDICTED_COLUMN = "Predicted Expression"
_NOT_BASE = re.compile(r"[^ACGTNacgtn]")
_DNA = frozenset("ACGTNacgtn")
# The number syntax of these files (what pyarrow, R and spreadsheets write): ASCII decimal with optional
# exponent. Python's float() also takes 1_000, non-ASCII digits and "infinity"; those are refused.
_NUMBER = re.compile(r" *[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *")


@dataclass(frozen=True)
class Columns(Config):
    """Header columns of a tsv/csv file: which holds the sequence, measured and predicted values, the id.

    None: the defaults (see the module docstring). A named column that the header lacks is an error.
    """

    sequence: str | None = None
    measured: str | None = None
    predicted: str | None = None
    id: str | None = None


@dataclass
class SequenceTable:
    """Records read from one file.

    sequences: n strings as written in the file (case kept; characters outside ACGTN mapped to N only
    under ``invalid="N"``). measured, predicted: (n,) float64 or None when the file has no such column.
    ids: FASTA ids or the CSV index column, else None. lines: (n,) int64 1-based source line of each
    record. sequence_column: the CSV column the sequences came from.
    """

    sequences: list[str]
    measured: np.ndarray | None
    predicted: np.ndarray | None
    ids: list[str] | None
    lines: np.ndarray
    source: str
    format: str = "txt"
    sequence_column: str | None = None
    mapped: int = 0
    blank_lines: int = 0

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def lengths(self) -> np.ndarray:
        """(n,) int64 sequence lengths."""
        return np.fromiter((len(s) for s in self.sequences), dtype=np.int64, count=len(self.sequences))

    def encode(self, enc: Encoding = CRMNET) -> np.ndarray:
        """(n, enc.length) uint8 codes of the sequences (already checked when read)."""
        data, starts, lengths = join_sequences(self.sequences)
        codes, _ = encode_spans(data, starts, lengths, enc, invalid="N", source=self.source, lines=self.lines)
        return codes


def join_sequences(seqs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequences → one byte buffer (nbytes,) uint8 and (n,) int64 starts, lengths.

    Parameters
    ----------
    seqs : sequence of str. n ASCII sequences.

    Returns
    -------
    buffer : ndarray, shape (nbytes,), uint8: The sequences' bytes, back to back.
    starts, lengths : ndarray, shape (n,), int64: Where each sequence starts in ``buffer`` and how long it is.
    """
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    starts = np.zeros(len(seqs), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    data = np.frombuffer("".join(seqs).encode("latin-1", "replace"), dtype=np.uint8)
    return data, starts, lengths


def check_alphabet(
    seqs: list[str], lines: np.ndarray, source: str, invalid: InvalidPolicy = "error"
) -> tuple[list[str], int]:
    """Check sequences against the alphabet; returns (sequences, characters mapped to N).

    Parameters
    ----------
    seqs : list of str. n sequences.
    lines : ndarray, shape (n,), int. Their 1-based lines in ``source``.
    source : str. The file, named in errors.
    invalid : {"error", "N"}
        Another character than ACGTN (either case) is an error, or is replaced by N and counted.

    Returns
    -------
    sequences : list of str: ``seqs``, with invalid characters replaced by N under ``invalid="N"``.
    mapped : int: Characters replaced.

    Raises
    ------
    InputError: Naming the line of the first invalid character under ``invalid="error"``.
    """
    if invalid not in ("error", "N"):
        raise ValueError(f"invalid policy must be 'error' or 'N', not {invalid!r}")
    data, starts, _ = join_sequences(seqs)
    bad = invalid_positions(data.tobytes())
    if not len(bad):
        return seqs, 0
    rows = np.searchsorted(starts, bad, side="right") - 1
    if invalid == "error":
        row, pos = int(rows[0]), int(bad[0] - starts[rows[0]])
        raise invalid_character_error(source, seqs[row][pos], pos + 1, int(lines[row]))
    out = list(seqs)
    for row in np.unique(rows):
        out[row] = _NOT_BASE.sub("N", out[row])
    return out, len(bad)


def parse_value(text: str | bytes, what: str, source: str, line: int) -> float:
    """One expression value: a decimal number (``-1.5``, ``.5``, ``2e-3``; spaces around it allowed).

    Missing, NaN, infinite (or too large for float64) and anything else (Python-only syntax such as
    ``1_000``, non-ASCII digits, hexadecimal) → InputError at ``line``.

    Parameters
    ----------
    text : str or bytes. The cell.
    what : str. What the value is (``"value"``, ``"Measured Expression"``), named in errors.
    source : str. The file, named in errors.
    line : int. Its 1-based line number.

    Returns
    -------
    float
    """
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if not text.strip():
        raise InputError(source, f"missing {what}", line=line)
    word = text.strip(" ").lower().lstrip("+-")
    if word == "nan":
        raise InputError(source, f"{what} is NaN (missing)", line=line)
    if word in ("inf", "infinity"):
        raise InputError(source, f"{what} {text!r} is not finite", line=line)
    if not _NUMBER.fullmatch(text):
        raise InputError(source, f"{what} {text!r} is not a number", line=line)
    value = float(text)
    if math.isinf(value):
        raise InputError(source, f"{what} {text!r} is not finite (too large)", line=line)
    return value


def _looks_like_dna(text: str) -> bool:
    return bool(text) and set(text) <= _DNA


def _find_column(names: list[str], wanted: Sequence[str]) -> int | None:
    """Index of the first of ``wanted`` in ``names`` (exact name first, then ignoring case and spaces)."""
    for exact in (True, False):
        folded = names if exact else [n.strip().lower() for n in names]
        for w in wanted:
            key = w if exact else w.strip().lower()
            if key in folded:
                return folded.index(key)
    return None


def _sniff(first: str, columns: Columns | None = None) -> str | None:
    """The format a first non-blank line implies, or None when it cannot tell."""
    if first.startswith(">"):
        return "fasta"
    named = (columns.sequence,) if columns and columns.sequence else SEQUENCE_COLUMNS
    if "\t" in first:
        fields = first.split("\t")
        if any(_looks_like_dna(f.strip()) for f in fields[:2]) or _find_column(fields, named) is None:
            return "txt"  # data, not a header (the txt parser names what is wrong with it)
        return "tsv"
    if "," in first:
        return "csv"
    if _looks_like_dna(first.strip()):
        return "txt"
    return "tsv" if _find_column([first], named) is not None else None


def detect_format(path: str | os.PathLike, columns: Columns | None = None) -> str:
    """``"txt"``, ``"tsv"``, ``"csv"`` or ``"fasta"`` from the first non-blank line (gzip is looked through).

    A line with a tab is ``txt`` when its first or second field is DNA, else a ``tsv`` header; a line
    without tab or comma is a bare ``txt`` sequence, or a one-column ``tsv`` header naming a sequence column.

    Parameters
    ----------
    path : path-like. The file (plain or gzip).
    columns : Columns, optional
        Named header columns (a one-column header naming ``columns.sequence`` is a ``tsv``).

    Returns
    -------
    str: A name in :data:`crmnet.data.formats.INPUT_FORMATS`.
    """
    return _detect(text_lines(path, chunk_bytes=1 << 16), display_name(path), columns)


def _detect(lines: Iterable[tuple[int, str]], source: str, columns: Columns | None) -> str:
    for number, text in lines:
        if text.strip():
            fmt = _sniff(text, columns)
            if fmt is None:
                raise InputError(source, "cannot tell the format from the first line (no tab, comma or '>', and "
                                 "not a DNA sequence); pass the format explicitly", line=number)
            return fmt
    raise InputError(source, "empty file: no records")


@dataclass
class _Row:
    seq: str
    line: int
    ident: str | None = None
    measured: float | None = None
    predicted: float | None = None


class _NonBlank:
    """The numbered non-blank lines of a file, read once; ``blank`` counts the blank ones seen so far.

    ``peek()`` returns the first non-blank line without consuming it (format detection), so a pipe or
    standard input, which can be read only once, is read like a file.
    """

    def __init__(self, path: Path, on_raw, chunk_bytes: int):
        self.lines = text_lines(path, on_raw, chunk_bytes)
        self.blank = 0
        self._peeked: list[tuple[int, str]] = []

    def peek(self) -> list[tuple[int, str]]:
        if not self._peeked:
            self._peeked = list(itertools.islice(self._read(), 1))
        return self._peeked

    def __iter__(self) -> Iterator[tuple[int, str]]:
        while self._peeked:
            yield self._peeked.pop()
        yield from self._read()

    def _read(self) -> Iterator[tuple[int, str]]:
        for number, text in self.lines:
            if text.strip():
                yield number, text
            else:
                self.blank += 1


_TXT_LAYOUTS = {1: ("sequence",), 2: ("sequence", "value")}


def _txt_layout(fields: list[str], source: str, line: int) -> tuple[str, ...]:
    """The layout of a headerless file from its first record: (sequence), (sequence, value), (id, sequence)."""
    if len(fields) == 2 and not _is_number(fields[1]) and _looks_like_dna(fields[1]) and not _looks_like_dna(fields[0]):
        return ("id", "sequence")
    if len(fields) == 1 and not _looks_like_dna(fields[0]):
        return _TXT_LAYOUTS[2]  # the error below names the expected layout
    return _TXT_LAYOUTS.get(len(fields), _TXT_LAYOUTS[2])


def _is_number(text: str) -> bool:
    return bool(_NUMBER.fullmatch(text))


def _txt_row(fields: list[str], layout: tuple[str, ...], value: str, source: str, line: int) -> _Row:
    if len(fields) != len(layout):
        raise InputError(source, f"expected {len(layout)} tab-separated columns ({', '.join(layout)}), "
                         f"found {len(fields)}", line=line)
    rec = dict(zip(layout, fields))
    if not rec["sequence"]:
        raise InputError(source, "empty sequence", line=line)
    row = _Row(rec["sequence"], line, rec.get("id"))
    if "value" in rec:
        setattr(row, value, parse_value(rec["value"], "value", source, line))
    return row


def parse_txt_line(text: str, source: str, line: int) -> tuple[str, float]:
    """One ``sequence<TAB>value`` line (no line end) → (sequence, value); InputError naming ``line`` otherwise.

    Parameters
    ----------
    text : str. The line.
    source : str. The file, named in errors.
    line : int. Its 1-based line number.

    Returns
    -------
    sequence : str
    value : float
    """
    row = _txt_row(text.split("\t"), _TXT_LAYOUTS[2], "measured", source, line)
    return row.seq, row.measured


def _txt_rows(lines: _NonBlank, source: str, value: str, columns: Columns | None) -> Iterator[_Row]:
    if columns is not None and any(getattr(columns, k) for k in ("sequence", "measured", "predicted", "id")):
        raise InputError(source, "the file has no header line, so columns cannot be named (a txt file is "
                                 "sequence<TAB>value)")
    layout = None
    for number, text in lines:
        fields = text.split("\t")
        layout = layout or _txt_layout(fields, source, number)
        yield _txt_row(fields, layout, value, source, number)


def _header_rows(lines: _NonBlank, source: str, delimiter: str, columns: Columns | None) -> Iterator[_Row]:
    columns = columns or Columns()
    kind = "comma" if delimiter == "," else "tab"
    rows = iter(lines)
    first = next(rows, None)
    if first is None:
        return
    header_line, header = first
    names = next(csv.reader([header], delimiter=delimiter))
    where: dict[str, int | None] = {}
    for key, default in (("sequence", SEQUENCE_COLUMNS), ("measured", (MEASURED_COLUMN,)),
                         ("predicted", (PREDICTED_COLUMN,)), ("id", ID_COLUMNS)):
        named = getattr(columns, key)
        where[key] = _find_column(names, (named,) if named else default)
        if named and where[key] is None:
            raise InputError(source, f"no {key} column {named!r}; the header has {names}", line=header_line)
    if where["sequence"] is None:
        raise InputError(source, f"no sequence column: expected one of {', '.join(SEQUENCE_COLUMNS)}; found "
                                 f"{names}", line=header_line)
    if where["id"] is None and names[0] == "" and where["sequence"] != 0:
        where["id"] = 0  # pandas' unnamed index column
    yield _Row(names[where["sequence"]], header_line)  # the header itself, as a marker (see iter_records)
    for number, text in rows:
        fields = next(csv.reader([text], delimiter=delimiter))
        if len(fields) != len(names):
            raise InputError(source, f"expected {len(names)} {kind}-separated columns (as in the header), found "
                                     f"{len(fields)}", line=number)
        seq = fields[where["sequence"]].strip()
        if not seq:
            raise InputError(source, f"empty sequence in column {names[where['sequence']]!r}", line=number)
        row = _Row(seq, number, None if where["id"] is None else fields[where["id"]].strip())
        for key in ("measured", "predicted"):
            if where[key] is not None:
                setattr(row, key, parse_value(fields[where[key]], f"{names[where[key]]!r} value", source, number))
        yield row


def _fasta_rows(lines: _NonBlank, source: str) -> Iterator[_Row]:
    row: _Row | None = None
    parts: list[str] = []
    for number, text in lines:
        text = text.strip()
        if text.startswith(">"):
            if row is not None:
                yield _fasta_done(row, parts, source)
            words = text[1:].split()
            if not words:
                raise InputError(source, "empty FASTA header (no identifier after '>')", line=number)
            row, parts = _Row("", number, words[0]), []
        elif row is None:
            raise InputError(source, "sequence text before the first FASTA header ('>'): not FASTA?", line=number)
        else:
            parts.append(text)
    if row is not None:
        yield _fasta_done(row, parts, source)


def _fasta_done(row: _Row, parts: list[str], source: str) -> _Row:
    if not parts:
        raise InputError(source, f"FASTA record {row.ident!r} has no sequence", line=row.line)
    row.seq = "".join(parts)
    return row


def _table(rows: list[_Row], source: str, fmt: str, column: str | None, blank: int) -> SequenceTable:
    def values(key: str) -> np.ndarray | None:
        if not rows or getattr(rows[0], key) is None:
            return None
        return np.fromiter((getattr(r, key) for r in rows), dtype=np.float64, count=len(rows))

    ids = [r.ident for r in rows] if rows and rows[0].ident is not None else None
    return SequenceTable([r.seq for r in rows], values("measured"), values("predicted"), ids,
                         np.fromiter((r.line for r in rows), dtype=np.int64, count=len(rows)), source, fmt,
                         sequence_column=column, blank_lines=blank)


def iter_records(
    path: str | os.PathLike,
    fmt: Format = "auto",
    *,
    value: Literal["measured", "predicted"] = "measured",
    columns: Columns | None = None,
    chunk_size: int = 65536,
    on_raw: Callable[[int], None] | None = None,
    chunk_bytes: int = 1 << 20,
) -> Iterator[SequenceTable]:
    """Stream the records of any format as :class:`SequenceTable` chunks of up to ``chunk_size`` records.

    Parameters
    ----------
    path : a plain or gzip file.
    fmt : one of :data:`FORMATS`.
    value : what the value column of a headerless txt file holds.
    columns : header columns to use (tsv/csv), see :class:`Columns`.
    chunk_size : records per chunk.
    chunk_bytes : bytes of the file read at a time.
    on_raw : called with the stored bytes read (progress bars).

    Returns
    -------
    Iterator of SequenceTable, each with ``lines`` (k,) int64 and values (k,) float64 or None. The
    alphabet is not checked here (:func:`read_records` and the encoders do it); ``blank_lines`` of a
    chunk counts the blank lines before its last record.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {describe()}, not {fmt!r}")
    if value not in ("measured", "predicted"):
        raise ValueError(f"value must be 'measured' or 'predicted', not {value!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    check_file(path)
    source = display_name(path)
    lines = _NonBlank(Path(path), on_raw, chunk_bytes)
    if fmt == "auto":
        fmt = _detect(lines.peek(), source, columns)
    column = header_line = None
    if fmt == "fasta":
        rows = _fasta_rows(lines, source)
    elif fmt == "txt":
        rows = _txt_rows(lines, source, value, columns)
    else:
        rows = _header_rows(lines, source, DELIMITERS[fmt], columns)
        marker = next(rows, None)  # the header: its line, and the name of the sequence column
        column, header_line = (None, None) if marker is None else (marker.seq, marker.line)
    seen_blank = 0
    empty = True
    for batch in iter(lambda: list(itertools.islice(rows, chunk_size)), []):
        empty = False
        yield _table(batch, source, fmt, column, lines.blank - seen_blank)
        seen_blank = lines.blank
    if empty:
        raise InputError(source, "empty file: no records" if column is None else "no records after the header",
                         line=header_line)


def read_records(
    path: str | os.PathLike,
    fmt: Format = "auto",
    *,
    value: Literal["measured", "predicted"] = "measured",
    invalid: InvalidPolicy = "error",
    columns: Columns | None = None,
) -> SequenceTable:
    """Read every record of a file (any of :data:`FORMATS`, plain or gzip) and check the alphabet.

    Parameters
    ----------
    path : path-like. The file, ``-`` for standard input.
    fmt : str
        One of :data:`crmnet.data.formats.FORMATS`; ``"auto"`` detects it from the first non-blank line.
    value : {"measured", "predicted"}
        What the value column of a headerless txt file is ("measured" for training and HQ test files,
        "predicted" for LegNet's prediction TSVs).
    invalid : {"error", "N"}
        A character outside ACGTN is an error naming its line, or is read as N (see the module docstring).
    columns : Columns, optional. Header columns to use (tsv/csv); None: the defaults.

    Returns
    -------
    SequenceTable
        The whole file: n ``sequences``, their ``ids`` (None when the file has none), 1-based ``lines``
        (n,), and ``measured`` / ``predicted`` (n,) float64 arrays where the file has them (else None).
    """
    chunks = list(iter_records(path, fmt, value=value, columns=columns, chunk_size=1 << 30, chunk_bytes=CHUNK_BYTES))
    table = chunks[0]
    table.sequences, table.mapped = check_alphabet(table.sequences, table.lines, table.source, invalid)
    return table


def read_fasta(path: str | os.PathLike, *, invalid: InvalidPolicy = "error") -> SequenceTable:
    """Read a FASTA file (plain or gzip): ids (first word of each header) and sequences.

    Parameters
    ----------
    path : path-like. The file, ``-`` for standard input.
    invalid : {"error", "N"}
        A character outside ACGTN is an error naming its line, or is read as N and counted.

    Returns
    -------
    SequenceTable: ``ids``, ``sequences`` and their 1-based ``lines``; no values.
    """
    return read_records(path, "fasta", invalid=invalid)


def write_fasta(
    path: str | os.PathLike, ids: Sequence[str], sequences: Sequence[str], *, overwrite: bool = False, width: int = 0
) -> None:
    """Write records atomically; ``width`` > 0 wraps sequence lines at that many characters.

    Parameters
    ----------
    path : path-like. The FASTA file to write; refused if it exists unless ``overwrite``.
    ids : sequence of str. n record ids (the header's first word).
    sequences : sequence of str. n sequences.
    overwrite : bool. Replace an existing file.
    width : int. Characters per sequence line; 0: one line per sequence.

    Returns
    -------
    None
    """
    if len(ids) != len(sequences):
        raise ValueError(f"{len(ids)} ids but {len(sequences)} sequences")
    with atomic_file(path, overwrite=overwrite) as fh:
        for name, seq in zip(ids, sequences):
            fh.write(f">{name}\n")
            step = width if width > 0 else max(len(seq), 1)
            fh.write("".join(seq[i : i + step] + "\n" for i in range(0, len(seq), step)))
