"""Readers for every real input format, and FASTA output.

Formats (``fmt``; ``"auto"`` detects from the first non-blank line, gzip from the magic bytes):

* ``txt``: headerless ``sequence<TAB>value`` lines, plain or gzip: Vaishnav et al.'s training files and
  ``HQ_testdata_complex.txt`` (value = measured expression) and LegNet's prediction TSVs (value =
  prediction; say ``value="predicted"``).
* ``csv``: the pandas CSVs of the Vaishnav test sets. An unnamed first header field is the index column
  (kept as ``ids``). The sequence column is ``sequence``, else ``0`` (the raw sequence of
  ``Random_complex_raw.csv``), else ``seq110`` (``Random_defined.csv``); ``SequenceTable.sequence_column``
  says which was used. ``Measured Expression`` / ``Predicted Expression`` are read when present.
* ``fasta``: ``>id`` headers (the id is the first word) and sequence lines, for prediction input.

Policies, the same for every format: line ends may be LF or CRLF; **blank lines are skipped** (a
trailing blank line is common and harmless) but still counted, so every error and ``lines`` entry
names the true 1-based line of the file. Sequences are checked against the encoding contract (A, C, G,
T, N in either case); anything else is an :class:`~crmnet.errors.InputError` naming file and line unless
``invalid="N"`` maps it to N (``SequenceTable.mapped`` counts the characters). A missing, NaN, infinite
or non-numeric value, an empty sequence, a wrong number of columns, an empty file and a truncated or
corrupt gzip stream are errors naming file and line. Duplicate sequences are kept (they are data; the
store's ``duplicates`` policy decides what training does with them).

:class:`TxtBlocks` is the fast path used by ``crmnet prepare``: it streams a txt file in large chunks,
parses each with pyarrow's CSV reader and encodes the sequences straight from arrow's byte buffer with
:func:`crmnet.data.encoding.encode_spans`, so no Python object is made per row. When a chunk fails the fast
parse, it is parsed again line by line, which finds the exact line and problem.
"""

from __future__ import annotations

import hashlib
import math
import os
import queue
import re
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from crmnet.data.encoding import CRMNET, Encoding, InvalidPolicy, encode_spans, invalid_positions
from crmnet.errors import InputError
from crmnet.fsutil import atomic_file

Format = Literal["auto", "txt", "csv", "fasta"]
FORMATS = ("auto", "txt", "csv", "fasta")
GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 16 << 20
SEQUENCE_COLUMNS = ("sequence", "0", "seq110")  # in order of preference
MEASURED_COLUMN = "Measured Expression"
PREDICTED_COLUMN = "Predicted Expression"
_NOT_BASE = re.compile(r"[^ACGTNacgtn]")


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
        data, starts, lengths = _join(self.sequences)
        codes, _ = encode_spans(data, starts, lengths, enc, invalid="N", source=self.source, lines=self.lines)
        return codes


def _join(seqs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequences → one byte buffer (nbytes,) uint8 and (n,) int64 starts, lengths."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    starts = np.zeros(len(seqs), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    data = np.frombuffer("".join(seqs).encode("latin-1", "replace"), dtype=np.uint8)
    return data, starts, lengths


def check_alphabet(
    seqs: list[str], lines: np.ndarray, source: str, invalid: InvalidPolicy = "error"
) -> tuple[list[str], int]:
    """Check sequences against the alphabet; returns (sequences, characters mapped to N).

    Raises InputError naming the line of the first invalid character under ``invalid="error"``.
    """
    if invalid not in ("error", "N"):
        raise ValueError(f"invalid policy must be 'error' or 'N', not {invalid!r}")
    data, starts, _ = _join(seqs)
    bad = invalid_positions(data.tobytes())
    if not len(bad):
        return seqs, 0
    rows = np.searchsorted(starts, bad, side="right") - 1
    if invalid == "error":
        row, pos = int(rows[0]), int(bad[0] - starts[rows[0]])
        raise InputError(
            source,
            f"invalid character {seqs[row][pos]!r} at position {pos + 1} of the sequence (allowed: A, C, G, T, "
            "N in either case; use the invalid-to-N option to map other characters to N)",
            line=int(lines[row]),
        )
    out = list(seqs)
    for row in np.unique(rows):
        out[row] = _NOT_BASE.sub("N", out[row])
    return out, len(bad)


def parse_value(text: str | bytes, what: str, source: str, line: int) -> float:
    """One expression value; missing, NaN, infinite or non-numeric → InputError at ``line``."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if not text.strip():
        raise InputError(source, f"missing {what}", line=line)
    try:
        value = float(text)
    except ValueError:
        raise InputError(source, f"{what} {text!r} is not a number", line=line) from None
    if math.isnan(value):
        raise InputError(source, f"{what} is NaN (missing)", line=line)
    if math.isinf(value):
        raise InputError(source, f"{what} {text!r} is not finite", line=line)
    return value


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, not a file")


def is_gzip(path: str | os.PathLike) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


class ByteStream:
    """Decompressed bytes of a plain or gzip file in raw blocks, hashing the bytes as stored on disk.

    After iteration: ``sha256`` (hex digest of the file as stored), ``bytes_read`` (stored bytes).
    ``on_raw(n)`` is called with the number of stored bytes after each block (progress bars).
    """

    def __init__(self, path: str | os.PathLike, block_bytes: int = 8 << 20, on_raw: Callable[[int], None] | None = None):
        self.path = Path(path)
        _check_file(self.path)
        self.block_bytes = block_bytes
        self.on_raw = on_raw
        self.sha256 = ""
        self.bytes_read = 0
        self.lines_done = 0  # complete lines decompressed so far (gzip), for error messages

    def __iter__(self) -> Iterator[bytes]:
        digest = hashlib.sha256()
        inflater = zlib.decompressobj(wbits=31) if is_gzip(self.path) else None
        in_member = False  # inside a gzip member whose end has not been seen yet
        hashing = None
        # gzip inflates about 4x: smaller raw blocks keep each decompressed block near block_bytes
        size = self.block_bytes if inflater is None else max(self.block_bytes // 4, 1 << 16)
        # hashlib releases the GIL: the checksum of one block is computed while the next is parsed.
        with open(self.path, "rb") as fh, ThreadPoolExecutor(max_workers=1) as pool:
            while raw := fh.read(size):
                if hashing is not None:
                    hashing.result()
                hashing = pool.submit(digest.update, raw)
                self.bytes_read += len(raw)
                if self.on_raw:
                    self.on_raw(len(raw))
                if inflater is None:
                    yield raw
                    continue
                while raw:
                    if not in_member and not raw.strip(b"\0"):
                        # A gzip file may hold several members back to back (e.g. made by ``cat``); zero
                        # bytes after the last one are padding some tools write (it may span raw blocks).
                        break
                    in_member = True
                    try:
                        out = inflater.decompress(raw)
                    except zlib.error as exc:
                        raise InputError(self.path, f"corrupt gzip data ({exc})", line=self.lines_done + 1) from None
                    if out:
                        self.lines_done += out.count(b"\n")
                        yield out
                    raw = b""
                    if inflater.eof:  # the member ended: what follows is another member or padding
                        in_member = False
                        raw = inflater.unused_data
                        inflater = zlib.decompressobj(wbits=31)
            if hashing is not None:
                hashing.result()
        if in_member:
            raise InputError(
                self.path,
                f"gzip stream is truncated after {self.lines_done} complete lines (incomplete download?)",
                line=self.lines_done + 1,
            )
        self.sha256 = digest.hexdigest()


@dataclass
class LineChunk:
    """Whole lines of a file: ``data`` ends with a newline; its first line is ``first_line`` (1-based).

    ``n_lines`` (newlines in ``data``) is counted once, when first asked for.
    """

    data: bytes | memoryview
    first_line: int
    _n_lines: int | None = None

    @property
    def n_lines(self) -> int:
        if self._n_lines is None:
            self._n_lines = int(np.count_nonzero(np.frombuffer(self.data, dtype=np.uint8) == 10))
        return self._n_lines


def iter_line_chunks(stream: ByteStream, chunk_bytes: int = CHUNK_BYTES) -> Iterator[LineChunk]:
    """Cut a byte stream into chunks of whole lines of about ``chunk_bytes`` (a last line without a
    newline is given one). Chunk data is a zero-copy view where possible."""
    carry = b""
    first_line = 1
    pending: list[bytes] = []
    size = 0
    for block in stream:
        pending.append(block)
        size += len(block)
        if size < chunk_bytes:
            continue
        buf = b"".join([carry, *pending])
        pending, size = [], 0
        cut = buf.rfind(b"\n") + 1
        if not cut:  # one line longer than a chunk: keep reading
            carry = buf
            continue
        carry = buf[cut:]
        chunk = LineChunk(memoryview(buf)[:cut], first_line)
        yield chunk
        first_line += chunk.n_lines
    buf = b"".join([carry, *pending])
    if buf:
        if not buf.endswith(b"\n"):
            buf += b"\n"
        yield LineChunk(buf, first_line)


def parse_txt_lines(chunk: LineChunk, source: str) -> tuple[list[str], list[float], list[int], int]:
    """The exact, line-by-line txt parser: (sequences, values, lines, blank lines) of one chunk.

    Raises InputError naming the line of the first problem (alphabet not checked here).
    """
    seqs: list[str] = []
    values: list[float] = []
    lines: list[int] = []
    blank = 0
    for i, raw in enumerate(bytes(chunk.data).split(b"\n")[:-1]):
        line = chunk.first_line + i
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw:
            blank += 1
            continue
        fields = raw.split(b"\t")
        if len(fields) != 2:
            raise InputError(
                source, f"expected 2 tab-separated columns (sequence, value), found {len(fields)}", line=line
            )
        seq, value = fields
        if not seq:
            raise InputError(source, "empty sequence", line=line)
        values.append(parse_value(value, "value", source, line))
        seqs.append(seq.decode("latin-1"))
        lines.append(line)
    return seqs, values, lines, blank


def background(items: Iterator, depth: int = 2) -> Iterator:
    """Run the iterator ``items`` in a background thread, at most ``depth`` items ahead.

    Worth it when the producer's work releases the GIL (file reads, arrow parsing, numpy gathers).
    An exception in the producer is raised in the consumer; closing the consumer stops the producer.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(done)
        except Exception as exc:  # noqa: BLE001 (any error is handed to the consumer and raised there)
            offer(exc)

    worker = threading.Thread(target=produce, name="crmnet-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


@dataclass
class EncodedBlock:
    """Encoded rows of one chunk. codes: (n, W) uint8; lengths, lines: (n,) int64; values: (n,) float64."""

    codes: np.ndarray
    lengths: np.ndarray
    values: np.ndarray
    lines: np.ndarray
    mapped: int


class _ArrowTxt:
    """pyarrow's CSV reader set up for ``sequence<TAB>value`` lines (no quoting, no header)."""

    def __init__(self, chunk_bytes: int):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        self.pa, self.pcsv = pa, pcsv
        self.read = pcsv.ReadOptions(column_names=["sequence", "value"], block_size=chunk_bytes + (1 << 20),
                                     use_threads=False)
        self.convert = pcsv.ConvertOptions(column_types={"sequence": pa.string(), "value": pa.float64()},
                                           null_values=[], strings_can_be_null=False)
        self.options = {skip: pcsv.ParseOptions(delimiter="\t", quote_char=False, ignore_empty_lines=skip)
                        for skip in (False, True)}

    def parse_lines(self, chunk: LineChunk):
        """(table, strict) or None: first without blank lines (strict: row i is line ``first_line + i``);
        a chunk that has some is parsed again skipping them (strict False)."""
        for skip_blank in (False, True):
            table = self.parse(chunk.data, skip_blank)
            if table is not None:
                if not skip_blank and table.num_rows != chunk.n_lines:
                    return None  # arrow also ends a line at a lone CR: the exact parser decides
                return table, not skip_blank
        return None

    def parse(self, data: bytes | memoryview, skip_blank: bool):
        """An arrow Table (sequence: string, value: float64), or None when arrow rejects the chunk."""
        try:
            return self.pcsv.read_csv(self.pa.py_buffer(data), self.read, self.options[skip_blank], self.convert)
        except self.pa.ArrowInvalid:
            return None


@dataclass
class TxtBlocks:
    """Stream a txt file as :class:`EncodedBlock` s (the fast path of ``prepare``).

    After iteration: ``rows``, ``blank_lines``, ``mapped``, ``sha256``, ``bytes`` (stored size).
    """

    path: str | os.PathLike
    enc: Encoding = CRMNET
    invalid: InvalidPolicy = "error"
    chunk_bytes: int = CHUNK_BYTES
    on_raw: Callable[[int], None] | None = None
    rows: int = field(default=0, init=False)
    blank_lines: int = field(default=0, init=False)
    mapped: int = field(default=0, init=False)
    sha256: str = field(default="", init=False)
    bytes: int = field(default=0, init=False)

    def __iter__(self) -> Iterator[EncodedBlock]:
        arrow = _ArrowTxt(self.chunk_bytes)
        source = str(self.path)
        stream = ByteStream(self.path, block_bytes=self.chunk_bytes, on_raw=self.on_raw)
        # Reading and arrow's parse (which release the GIL) run a chunk ahead of the encoding.
        parsed = ((chunk, arrow.parse_lines(chunk)) for chunk in iter_line_chunks(stream, self.chunk_bytes))
        for chunk, table in background(parsed, 2):
            block = None if table is None else self._fast(chunk, *table, source)
            if block is None:
                block = self._slow(chunk, source)
            self.rows += len(block.values)
            self.mapped += block.mapped
            if len(block.values):
                yield block
        self.sha256, self.bytes = stream.sha256, stream.bytes_read
        if self.rows == 0:
            raise InputError(source, "empty file: no records")

    def _fast(self, chunk: LineChunk, table, strict: bool, source: str) -> EncodedBlock | None:
        """Encode straight from arrow's buffers; None when the chunk needs the exact parser."""
        n = table.num_rows
        values = table.column("value").to_numpy()
        if not np.isfinite(values).all():
            return None
        if strict:
            lines = np.arange(chunk.first_line, chunk.first_line + n, dtype=np.int64)
            blank = 0
        else:
            lines = _nonblank_lines(chunk)
            if len(lines) != n:  # arrow split lines differently (e.g. a lone CR): let the exact parser decide
                return None
            blank = chunk.n_lines - n
        parts, lengths, mapped, at = [], [], 0, 0
        for arr in table.column("sequence").chunks:
            offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
            starts = offsets[:-1].astype(np.int64)
            lens = np.diff(offsets).astype(np.int64)
            if (lens == 0).any():
                return None
            data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
            codes, m = encode_spans(data, starts, lens, self.enc, invalid=self.invalid, source=source,
                                    lines=lines[at : at + len(arr)])
            parts.append(codes)
            lengths.append(lens)
            mapped += m
            at += len(arr)
        self.blank_lines += blank
        return EncodedBlock(
            np.concatenate(parts) if len(parts) != 1 else parts[0],
            np.concatenate(lengths) if lengths else np.zeros(0, np.int64),
            values,
            lines,
            mapped,
        )

    def _slow(self, chunk: LineChunk, source: str) -> EncodedBlock:
        seqs, values, lines, blank = parse_txt_lines(chunk, source)
        self.blank_lines += blank
        data, starts, lengths = _join(seqs)
        line_arr = np.asarray(lines, dtype=np.int64)
        codes, mapped = encode_spans(data, starts, lengths, self.enc, invalid=self.invalid, source=source,
                                     lines=line_arr)
        return EncodedBlock(codes, lengths, np.asarray(values, dtype=np.float64), line_arr, mapped)


def _nonblank_lines(chunk: LineChunk) -> np.ndarray:
    """(k,) int64 1-based numbers of the non-blank lines of a chunk (blank: empty or a lone CR)."""
    buf = np.frombuffer(chunk.data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    size = ends - starts
    crlf = size > 0
    crlf[crlf] = buf[ends[crlf] - 1] == 13
    return chunk.first_line + np.flatnonzero(size - crlf > 0).astype(np.int64)


def detect_format(path: str | os.PathLike) -> str:
    """``"txt"``, ``"csv"`` or ``"fasta"`` from the first non-blank line (gzip is looked through)."""
    path = Path(path)
    stream = ByteStream(path, block_bytes=1 << 16)
    head = b""
    for block in stream:
        head += block
        if head.strip() and b"\n" in head.lstrip():
            break
    first = next((ln for ln in head.splitlines() if ln.strip()), b"")
    if not first:
        raise InputError(path, "empty file: no records")
    if first.startswith(b">"):
        return "fasta"
    if b"\t" in first:
        return "txt"
    if b"," in first:
        return "csv"
    raise InputError(
        path, "cannot tell the format from the first line (no tab, comma or '>'); pass the format explicitly",
        line=head.splitlines().index(first) + 1,
    )


def _text_lines(
    path: Path, on_raw: Callable[[int], None] | None = None, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without its line end) for every line of a plain or gzip file, read
    ``chunk_bytes`` at a time; ``on_raw(n)`` gets the stored bytes read (progress bars)."""
    stream = ByteStream(path, block_bytes=min(8 << 20, chunk_bytes), on_raw=on_raw)
    for chunk in iter_line_chunks(stream, chunk_bytes):
        for i, raw in enumerate(bytes(chunk.data).split(b"\n")[:-1]):
            yield chunk.first_line + i, raw.rstrip(b"\r").decode("latin-1")


def _read_txt(path: Path, value: str) -> SequenceTable:
    seqs: list[str] = []
    values: list[float] = []
    lines: list[int] = []
    blank = 0
    for chunk in iter_line_chunks(ByteStream(path)):
        s, v, ln, b = parse_txt_lines(chunk, str(path))
        seqs += s
        values += v
        lines += ln
        blank += b
    arr = np.asarray(values, dtype=np.float64)
    return SequenceTable(
        seqs,
        arr if value == "measured" else None,
        arr if value == "predicted" else None,
        None,
        np.asarray(lines, dtype=np.int64),
        str(path),
        "txt",
        blank_lines=blank,
    )


def _read_csv(path: Path, value: str) -> SequenceTable:
    import csv

    source = str(path)
    rows = _text_lines(path)
    header_line, header = next(((n, t) for n, t in rows if t.strip()), (0, ""))
    if not header:
        raise InputError(path, "empty file: no records")
    names = next(csv.reader([header]))
    seq_col = next((c for c in SEQUENCE_COLUMNS if c in names), None)
    if seq_col is None:
        raise InputError(
            path, f"no sequence column: expected one of {', '.join(SEQUENCE_COLUMNS)}; found {names}", line=header_line
        )
    has_index = names[0] == ""
    want = {"seq": names.index(seq_col)}
    for key, col in (("measured", MEASURED_COLUMN), ("predicted", PREDICTED_COLUMN)):
        if col in names:
            want[key] = names.index(col)
    seqs: list[str] = []
    ids: list[str] = []
    lines: list[int] = []
    vals: dict[str, list[float]] = {k: [] for k in want if k != "seq"}
    blank = 0
    for line, text in rows:
        if not text:
            blank += 1
            continue
        row = next(csv.reader([text]))
        if len(row) != len(names):
            raise InputError(source, f"expected {len(names)} comma-separated columns (as in the header), "
                             f"found {len(row)}", line=line)
        seq = row[want["seq"]]
        if not seq:
            raise InputError(source, f"empty sequence in column {seq_col!r}", line=line)
        seqs.append(seq)
        lines.append(line)
        if has_index:
            ids.append(row[0])
        for key, values in vals.items():
            col = MEASURED_COLUMN if key == "measured" else PREDICTED_COLUMN
            values.append(parse_value(row[want[key]], f"{col!r} value", source, line))
    if not seqs:
        raise InputError(path, "no records after the header", line=header_line)
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in vals.items()}
    return SequenceTable(
        seqs,
        arrays.get("measured"),
        arrays.get("predicted"),
        ids if has_index else None,
        np.asarray(lines, dtype=np.int64),
        source,
        "csv",
        sequence_column=seq_col,
        blank_lines=blank,
    )


def _read_fasta(path: Path, value: str) -> SequenceTable:
    source = str(path)
    ids: list[str] = []
    lines: list[int] = []
    parts: list[list[str]] = []
    blank = 0
    for line, text in _text_lines(path):
        text = text.strip()
        if not text:
            blank += 1
        elif text.startswith(">"):
            if parts and not parts[-1]:
                raise InputError(source, f"record {ids[-1]!r} has no sequence", line=lines[-1])
            words = text[1:].split()
            if not words:
                raise InputError(source, "empty FASTA header (no id after '>')", line=line)
            ids.append(words[0])
            lines.append(line)
            parts.append([])
        elif not parts:
            raise InputError(source, "sequence line before the first '>' header: not FASTA?", line=line)
        else:
            parts[-1].append(text)
    if not ids:
        raise InputError(path, "empty file: no records")
    if not parts[-1]:
        raise InputError(source, f"record {ids[-1]!r} has no sequence", line=lines[-1])
    return SequenceTable(
        ["".join(p) for p in parts], None, None, ids, np.asarray(lines, dtype=np.int64), source, "fasta",
        blank_lines=blank,
    )


_READERS = {"txt": _read_txt, "csv": _read_csv, "fasta": _read_fasta}


def read_records(
    path: str | os.PathLike,
    fmt: Format = "auto",
    *,
    value: Literal["measured", "predicted"] = "measured",
    invalid: InvalidPolicy = "error",
) -> SequenceTable:
    """Read every record of a txt, csv or FASTA file (plain or gzip) into memory.

    value: what the second column of a txt file is ("measured" for training and HQ test files,
    "predicted" for LegNet's prediction TSVs). invalid: "error" or "N" (see the module docstring).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    if value not in ("measured", "predicted"):
        raise ValueError(f"value must be 'measured' or 'predicted', not {value!r}")
    path = Path(path)
    _check_file(path)
    if fmt == "auto":
        fmt = detect_format(path)
    table = _READERS[fmt](path, value)
    if not len(table):
        raise InputError(path, "empty file: no records")
    table.sequences, table.mapped = check_alphabet(table.sequences, table.lines, table.source, invalid)
    return table


def read_fasta(path: str | os.PathLike, *, invalid: InvalidPolicy = "error") -> SequenceTable:
    """Read a FASTA file (plain or gzip): ids (first word of each header) and sequences."""
    return read_records(path, "fasta", invalid=invalid)


def write_fasta(
    path: str | os.PathLike, ids: Sequence[str], sequences: Sequence[str], *, overwrite: bool = False, width: int = 0
) -> None:
    """Write records atomically; ``width`` > 0 wraps sequence lines at that many characters."""
    if len(ids) != len(sequences):
        raise ValueError(f"{len(ids)} ids but {len(sequences)} sequences")
    with atomic_file(path, overwrite=overwrite) as fh:
        for name, seq in zip(ids, sequences):
            fh.write(f">{name}\n")
            step = width if width > 0 else max(len(seq), 1)
            fh.write("".join(seq[i : i + step] + "\n" for i in range(0, len(seq), step)))
