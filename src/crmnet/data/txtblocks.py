"""The fast path of ``crmnet prepare``: a ``sequence<TAB>value`` txt file as encoded blocks.

:class:`TxtBlocks` streams a txt file in large chunks, parses each with pyarrow's CSV reader and encodes
the sequences straight from arrow's byte buffer with :func:`crmnet.data.encoding.encode_spans`, so no
Python object is made per row. When a chunk fails the fast parse, it is parsed again line by line
(:func:`parse_txt_lines`, built on :func:`crmnet.data.readers.parse_txt_line`), which finds the exact line
and problem. The policies are those of :mod:`crmnet.data.readers`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from crmnet.data.encoding import CRMNET, Encoding, InvalidPolicy, encode_spans
from crmnet.data.readers import join_sequences, parse_txt_line
from crmnet.data.streams import (
    CHUNK_BYTES,
    ByteStream,
    LineChunk,
    background,
    check_line,
    has_control,
    iter_line_chunks,
)
from crmnet.errors import InputError


def parse_txt_lines(chunk: LineChunk, source: str) -> tuple[list[str], list[float], list[int], int]:
    """The exact, line-by-line parser of ``sequence<TAB>value`` lines.

    (sequences, values, lines, blank lines) of one chunk. Raises InputError naming the line of the first
    problem (alphabet not checked here).
    """
    seqs: list[str] = []
    values: list[float] = []
    lines: list[int] = []
    blank = 0
    for i, raw in enumerate(bytes(chunk.data).split(b"\n")[:-1]):
        text = check_line(raw, source, chunk.first_line + i)
        if not text:
            blank += 1
            continue
        seq, value = parse_txt_line(text, source, chunk.first_line + i)
        seqs.append(seq)
        values.append(value)
        lines.append(chunk.first_line + i)
    return seqs, values, lines, blank


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
        """(table, strict) or None.

        First without blank lines (strict: row i is line ``first_line + i``); a chunk that has some is parsed
        again skipping them (strict False).
        """
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
        stream = ByteStream(self.path, block_bytes=self.chunk_bytes, on_raw=self.on_raw)
        # Reading and arrow's parse (which release the GIL) run a chunk ahead of the encoding.
        source = stream.name
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
        if not np.isfinite(values).all() or (self.invalid == "N" and has_control(chunk.data)):
            return None  # the exact parser names the line (binary data is an error, not N, under either policy)
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
        data, starts, lengths = join_sequences(seqs)
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
