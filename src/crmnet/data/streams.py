"""Streams of bytes and lines from plain or gzip files, and a background-thread prefetcher.

:class:`ByteStream` yields a file's decompressed bytes in blocks (gzip detected from its magic bytes,
multi-member and zero-padded gzip accepted) while hashing the stored bytes; :func:`iter_line_chunks` cuts
them into chunks of whole lines; :func:`text_lines` yields numbered text lines. The record formats built
on them are in :mod:`crmnet.data.readers`. :func:`background` runs any iterator a few items ahead in a
thread (readers, the store and the batch loader use it).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import queue
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crmnet.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 16 << 20


STDIN = "-"  # the input name that means standard input
_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16/32: not a text encoding these formats are written in
# Bytes a text line may hold besides printable ones: anything else (NUL, other control bytes) is binary data.
_CONTROL = bytes([*range(9), 11, 12, *range(14, 32), 127])
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL)


def is_stdin(path: str | os.PathLike) -> bool:
    """True when ``path`` is ``-``, the name of standard input."""
    return str(path) == STDIN


def display_name(path: str | os.PathLike) -> str:
    """How errors name an input: its path, or ``<stdin>``."""
    return "<stdin>" if is_stdin(path) else str(path)


def check_file(path: str | os.PathLike) -> None:
    """Raise InputError unless ``path`` can be read as a stream: a file, a pipe or ``-`` (standard input)."""
    if is_stdin(path):
        return
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a directory, not a file")
    if not path.exists():
        raise InputError(path, "no such file")


def check_line(raw: bytes, source: str, line: int) -> str:
    """One line of a file without its LF → its text (CRLF accepted).

    Lone CR line ends and binary data (NUL or other control bytes) are InputError naming ``line``.
    """
    text = raw[:-1] if raw.endswith(b"\r") else raw
    if has_control(text):
        byte = text.translate(None, _NOT_CONTROL)[0]
        raise InputError(source, f"binary data (byte 0x{byte:02x} at column {text.index(bytes([byte])) + 1}): "
                                 "not a text file", line=line)
    if b"\r" in text:
        raise InputError(source, "a carriage return (CR) inside the line: the file has lone-CR (old Mac) line ends; "
                                 "convert it to LF or CRLF line ends", line=line)
    return text.decode("latin-1")


def has_control(data: bytes | memoryview) -> bool:
    """True when ``data`` holds a control byte other than tab, LF and CR (binary data, see :func:`check_line`)."""
    return bool(bytes(data).translate(None, _NOT_CONTROL))


class ByteStream:
    """Decompressed bytes of a plain or gzip file in raw blocks, hashing the bytes as stored on disk.

    After iteration: ``sha256`` (hex digest of the file as stored), ``bytes_read`` (stored bytes).
    ``on_raw(n)`` is called with the number of stored bytes after each block (progress bars).
    """

    def __init__(self, path: str | os.PathLike, block_bytes: int = 8 << 20, on_raw: Callable[[int], None] | None = None):
        check_file(path)
        self.path = Path(path)
        self.name = display_name(path)
        self.block_bytes = block_bytes
        self.on_raw = on_raw
        self.sha256 = ""
        self.bytes_read = 0
        self.lines_done = 0  # complete lines decompressed so far (gzip), for error messages
        self._started = False  # the first bytes of text were seen (the byte-order mark is looked for there)

    def __iter__(self) -> Iterator[bytes]:
        digest = hashlib.sha256()
        hashing = None
        # The file is opened once and its first block decides gzip or not, so a pipe or standard input
        # (read once) works like a file.
        with self._open() as fh, ThreadPoolExecutor(max_workers=1) as pool:
            first = fh.read(self.block_bytes)
            inflater = zlib.decompressobj(wbits=31) if first[:2] == GZIP_MAGIC else None
            in_member = False  # inside a gzip member whose end has not been seen yet
            # gzip inflates about 4x: smaller raw blocks keep each decompressed block near block_bytes
            size = self.block_bytes if inflater is None else max(self.block_bytes // 4, 1 << 16)
            for raw in itertools.chain([first] if first else [], iter(lambda: fh.read(size), b"")):
                if hashing is not None:
                    hashing.result()
                hashing = pool.submit(digest.update, raw)
                self.bytes_read += len(raw)
                if self.on_raw:
                    self.on_raw(len(raw))
                if inflater is None:
                    yield self._text_start(raw)
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
                        raise InputError(self.name, f"corrupt gzip data ({exc})", line=self.lines_done + 1) from None
                    if out:
                        out = self._text_start(out)
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
                self.name,
                f"gzip stream is truncated after {self.lines_done} complete lines (incomplete download?)",
                line=self.lines_done + 1,
            )
        self.sha256 = digest.hexdigest()

    def _open(self):
        if is_stdin(self.path):
            return contextlib.nullcontext(sys.stdin.buffer)
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise InputError(self.name, f"cannot read ({exc.strerror})") from None

    def _text_start(self, data: bytes) -> bytes:
        """The text start of ``data``: a UTF-8 byte-order mark removed, UTF-16/32 refused.

        ``data`` without a UTF-8 byte-order mark when it is the start of the text (the BOM is not
        part of the first line, for every reader alike); UTF-16/32 text is refused.
        """
        if self._started or not data:
            return data
        self._started = True
        if data.startswith(_UTF8_BOM):
            return data[len(_UTF8_BOM) :]
        if data.startswith(_OTHER_BOMS):
            raise InputError(self.name, "UTF-16 or UTF-32 text (byte-order mark): save the file as UTF-8 or ASCII",
                             line=1)
        return data


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
        """The number of lines (newlines in ``data``), counted once."""
        if self._n_lines is None:
            self._n_lines = int(np.count_nonzero(np.frombuffer(self.data, dtype=np.uint8) == 10))
        return self._n_lines


def iter_line_chunks(stream: ByteStream, chunk_bytes: int = CHUNK_BYTES) -> Iterator[LineChunk]:
    """Cut a byte stream into chunks of whole lines of about ``chunk_bytes``.

    Cut a byte stream into chunks of whole lines of about ``chunk_bytes`` (a last line without a
    newline is given one). Chunk data is a zero-copy view where possible.
    """
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


def text_lines(
    path: str | os.PathLike, on_raw: Callable[[int], None] | None = None, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tuple[int, str]]:
    """Every line of a plain or gzip file, a pipe or ``-``, with its 1-based number.

    (1-based line number, text without its line end) for every line of a plain or gzip file, a pipe or
    ``-`` (standard input), read ``chunk_bytes`` at a time; ``on_raw(n)`` gets the stored bytes read
    (progress bars). Lines are checked by :func:`check_line`.
    """
    stream = ByteStream(path, block_bytes=min(8 << 20, chunk_bytes), on_raw=on_raw)
    for chunk in iter_line_chunks(stream, chunk_bytes):
        for i, raw in enumerate(bytes(chunk.data).split(b"\n")[:-1]):
            yield chunk.first_line + i, check_line(raw, stream.name, chunk.first_line + i)


def background(items: Iterator, depth: int = 2) -> Iterator:
    """Run the iterator ``items`` in a background thread, at most ``depth`` items ahead.

    Worth it when the producer's work releases the GIL (file reads, arrow parsing, numpy gathers).
    An exception in the producer is raised in the consumer; closing the consumer stops the producer.

    Parameters
    ----------
    items : iterator
        The producer.
    depth : int
        Items produced ahead of the consumer.

    Yields
    ------
    object
        The items of ``items``, in order.
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
