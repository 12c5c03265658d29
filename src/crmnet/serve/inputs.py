"""Form fields → sequences, through the same readers as ``crmnet predict`` (:mod:`crmnet.data.readers`).

Pasted text and uploads are written to a private temporary file, read with
:func:`~crmnet.data.readers.iter_records` (FASTA, headerless txt, TSV/CSV with a header; format detected
from the first line unless chosen) and checked against the alphabet. Every problem is an
:class:`~crmnet.errors.InputError` naming ``pasted text`` or the upload's file name (never the temporary
path) with the line, which the page shows as it is.
"""

from __future__ import annotations

import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from crmnet.errors import InputError

PASTED = "pasted text"


@dataclass
class Sequences:
    """Sequences read from a form: ids (the file's, else the 1-based line), sequences, 1-based lines."""

    ids: list[str]
    sequences: list[str]
    lines: list[int]
    source: str
    #: what was done to the sequences before any model saw them (shown with the results)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sequences)


def _named(exc: InputError, source: str) -> InputError:
    return InputError(source, exc.problem, line=exc.line)


def _records(path: Path, fmt: str, limit: int, source: str) -> tuple[list[str], list[str], list[int]]:
    """(ids, sequences, 1-based lines) of the file at ``path``, up to ``limit`` records.

    With ``fmt="auto"``, a first line that is neither a header, FASTA nor DNA (a sequence with a typo)
    makes the text one sequence per line, so the alphabet check names the bad character and its line.
    """
    from crmnet.data.readers import detect_format, iter_records
    from crmnet.data.streams import text_lines

    if fmt == "auto":
        try:
            fmt = detect_format(path)
        except InputError as exc:
            if not exc.problem.startswith("cannot tell the format"):
                raise
            rows = [(str(n), t.strip(), n) for n, t in text_lines(path) if t.strip()]
            if len(rows) > limit:
                raise InputError(source, f"more than {limit:,} sequences: the limit of this page") from None
            return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
    ids: list[str] = []
    seqs: list[str] = []
    lines: list[int] = []
    for chunk in iter_records(path, fmt, chunk_size=limit + 1):
        seqs += chunk.sequences
        lines += [int(v) for v in chunk.lines]
        ids += chunk.ids or [str(v) for v in chunk.lines]
        if len(seqs) > limit:
            raise InputError(source, f"more than {limit:,} sequences: the limit of this page")
    return ids, seqs, lines


def _inflated(data: bytes, limit: int | None, source: str) -> bytes:
    """``data`` itself, or the decompressed bytes of gzip ``data``: inflated at most ``limit`` + 1 bytes."""
    if data[:2] != b"\x1f\x8b" or limit is None:
        return data
    out, rest = bytearray(), data
    try:
        while rest.strip(b"\0"):  # members back to back (cat a.gz b.gz), then padding
            inflater = zlib.decompressobj(wbits=31)
            out += inflater.decompress(rest, limit + 1 - len(out))
            if len(out) > limit:
                raise InputError(source, f"decompresses to more than {limit / 1048576:.3g} MB: the limit of this "
                                         "server (upload fewer sequences)")
            if not inflater.eof:
                raise InputError(source, "gzip data is truncated")
            rest = inflater.unused_data
    except zlib.error as exc:
        raise InputError(source, f"corrupt gzip data ({exc})") from None
    return bytes(out)


def read_sequences(text: str, upload: bytes | None, filename: str | None, *, fmt: str = "auto",
                   max_sequences: int, max_length: int, invalid: str = "error",
                   max_bytes: int | None = None) -> Sequences:
    """The sequences of a form: ``text`` (pasted) or ``upload`` (the bytes of an uploaded file).

    Parameters
    ----------
    text : pasted text ('' when none)
    upload, filename : an uploaded file's bytes and name (None or b'' when none)
    fmt : one of :data:`crmnet.data.formats.FORMATS`
    max_sequences, max_length : limits (more sequences or a longer one is an error)
    invalid : characters outside ACGTN are an error (``"error"``) or left for the encoder to map to N (``"N"``)
    max_bytes : the largest upload after decompression (a gzip upload is inflated up to it, no further)

    Returns
    -------
    Sequences
    """
    from crmnet.data.formats import FORMATS, describe
    from crmnet.data.readers import check_alphabet

    if fmt not in FORMATS:
        raise InputError(None, f"format must be one of {describe()}, not {fmt!r}")
    text = (text or "").strip()
    if text and upload:
        raise InputError(None, "paste sequences or upload a file, not both")
    if not text and not upload:
        raise InputError(None, "no sequences: paste some or upload a FASTA, TSV or CSV file")
    source = PASTED if text else f"upload {Path(filename or 'file').name!r}"
    data = text.encode("utf-8") + b"\n" if text else _inflated(upload, max_bytes, source)
    with tempfile.TemporaryDirectory(prefix="crmnet-serve-") as tmp:
        path = Path(tmp) / "input"
        path.write_bytes(data)
        try:
            ids, seqs, lines = _records(path, fmt, max_sequences, source)
            if invalid == "error":  # under "N" the sequences stay as given; the encoder maps and counts
                check_alphabet(seqs, lines, source)
        except InputError as exc:
            raise _named(exc, source) from None
        except UnicodeDecodeError:
            raise InputError(source, "not a text file (FASTA, TSV or CSV, plain or gzip)") from None
    for seq, line in zip(seqs, lines):
        if len(seq) > max_length:
            raise InputError(source, f"sequence of {len(seq):,} nt: longer than the limit of {max_length:,} nt",
                             line=line)
    return Sequences(ids, seqs, lines, source)


#: how the page names the flanks checkbox in its notes
FLANKS_BOX = "untick 'complete a sequence of exactly 80 nt' to pad them with N"
#: the same, as the option of :func:`crmnet.data.construct.flank_note` ("...; OPTION pads them with N instead")
FLANKS_OPTION = "unticking 'complete a sequence of exactly 80 nt'"


def complete_flanks(seqs: Sequences, encodings) -> Sequences:
    """``seqs`` with every bare 80-nt variable region completed by the construct's flanks, noted once.

    Parameters
    ----------
    seqs : Sequences
        As read from the form.
    encodings : iterable of crmnet.data.encoding.Encoding
        The chosen models' encodings; the regions are completed when every one reads whole constructs.

    Returns
    -------
    Sequences
    """
    from crmnet.data.construct import add_flanks, expects_construct, flank_note

    encodings = list(encodings)
    if not encodings or not all(expects_construct(e) for e in encodings):
        return seqs
    completed, n = add_flanks(seqs.sequences, encodings[0])
    if not n:
        return seqs
    note = flank_note(n, None).removeprefix("note: ").removesuffix(".") + f" ({FLANKS_BOX})"
    return Sequences(seqs.ids, completed, seqs.lines, seqs.source, [*seqs.notes, note])
