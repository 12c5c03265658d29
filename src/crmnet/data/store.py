"""The store: a compact, memory-mapped directory that training reads from, and ``prepare`` that makes it.

Layout (format ``crmnet.data.store``, version 1), ``n`` rows, ``W = encoding.length``::

    codes.npy     (n, W) uint8    codes A=0 C=1 G=2 T=3 N=4, laid out by the store's Encoding
    lengths.npy   (n,)   uint8    true sequence lengths (uint16 if any exceeds 255), for ``relayout``
    targets.npy   (n,)   float32  measured expression
    medium.npy    (n,)   uint8    index into manifest["media"]
    split.npy     (n,)   uint8    0 train, 1 validation
    manifest.json                 sources (path, sha256, bytes, rows, medium), counts, encoding, split
                                  seed and fraction, duplicate policy and count, characters mapped to N,
                                  truncated rows, creation time (UTC), crmnet version
    .crmnet-output                the mark of a crmnet output (what ``--overwrite`` may replace)

That is ``W + 7`` bytes per row (119 at W = 112). Every array is a plain ``.npy`` file, so
``np.load(path, mmap_mode="r")`` reads it without crmnet.

``prepare`` streams its inputs: each chunk is parsed and encoded (:class:`crmnet.data.txtblocks.TxtBlocks`) and its
rows are appended to the arrays' files, whose ``.npy`` headers are written once the row count is known.
Memory is the chunks in flight (a few hundred MB) while streaming, and about 12 bytes per row
afterwards (64-bit row fingerprints sorted for duplicate detection, lengths, media): ~0.4 GB for the
31 M-row complex-medium file. The directory is written under a temporary name beside ``out`` and renamed
when complete.

Policies:

* **Split.** An exact, seeded, global random choice of ``round(n * val_fraction)`` validation rows
  (``numpy.random.default_rng([seed, 0])``), made after duplicates and balancing are resolved.
* **Media.** Several inputs may be mixed, each labelled with a medium (``media``); every row of every
  input is kept, so the paper's pre-training set is ``prepare([complex, defined], media=["complex",
  "defined"])`` (30,722,376 + 20,616,659 = 51,339,035 rows) and, because the split and the loader's
  shuffle are global, each batch samples both media in proportion. ``balance=True`` instead subsamples
  (seeded, ``default_rng([seed, 1])``) every medium to the size of the smallest.
* **Duplicates** are rows of the same medium with identical stored codes and length (what a model can
  see). ``keep`` (default) keeps them all and counts them; ``first`` keeps the first occurrence;
  ``mean`` keeps the first occurrence with the mean of the group's targets; ``error`` refuses the
  input, naming both lines. Detection hashes each row and confirms candidates byte for byte.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from crmnet.config import Config
from crmnet.data.catalogue import check_measurements
from crmnet.data.dream2022 import training_medium
from crmnet.data.encoding import CRMNET, Encoding, InvalidPolicy, decode
from crmnet.data.formats import STORE_FORMATS, describe
from crmnet.data.readers import CHUNK_BYTES, detect_format, read_records
from crmnet.data.streams import display_name
from crmnet.data.txtblocks import EncodedBlock, TxtBlocks
from crmnet.errors import InputError
from crmnet.fsutil import atomic_path, file_digest

FORMAT = "crmnet.data.store"
FORMAT_VERSION = 1
SPLITS = {"train": 0, "val": 1}
DUPLICATE_POLICIES = ("keep", "first", "mean", "error")
DEFAULT_MEDIUM = "default"
_HEADER_BYTES = 128  # a fixed .npy header size, so the header can be written after the data
_COPY_ROWS = 1 << 18  # rows per block when rewriting an array in place


@dataclass
class Store:
    """An opened store: memory-mapped arrays (see the module docstring) and the manifest."""

    path: Path
    manifest: dict
    encoding: Encoding
    codes: np.ndarray
    lengths: np.ndarray
    targets: np.ndarray
    medium: np.ndarray
    split: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def media(self) -> list[str]:
        """The names of the growth media, in the manifest's order."""
        return list(self.manifest["media"])

    def indices(self, split: Literal["train", "val", "all"] = "train") -> np.ndarray:
        """(k,) int64 ascending row indices of a split (``"all"``: every row)."""
        if split == "all":
            return np.arange(len(self), dtype=np.int64)
        if split not in SPLITS:
            raise ValueError(f"split must be 'train', 'val' or 'all', not {split!r}")
        return np.flatnonzero(np.asarray(self.split) == SPLITS[split]).astype(np.int64)

    def sequences(self, rows: np.ndarray) -> list[str]:
        """The stored bases of ``rows`` as strings (padding removed; truncated bases are not stored)."""
        rows = np.asarray(rows, dtype=np.int64)
        body = self.encoding.body_length
        text = decode(np.asarray(self.codes[rows])[:, len(self.encoding.prefix) :])
        keep = np.minimum(np.asarray(self.lengths[rows], dtype=np.int64), body)
        if self.encoding.pad == "end":
            return [t[:k] for t, k in zip(text, keep)]
        return [t[body - k :] for t, k in zip(text, keep)]


_ARRAYS = {  # name -> (allowed dtypes, trailing shape is (width,))
    "codes": (("uint8",), True),
    "lengths": (("uint8", "uint16"), False),
    "targets": (("float32",), False),
    "medium": (("uint8",), False),
    "split": (("uint8",), False),
}


def open_store(path: str | os.PathLike) -> Store:
    """Open a store directory read-only (arrays memory-mapped); a clear InputError when it is not one.

    Parameters
    ----------
    path : path-like. A directory written by :func:`prepare`.

    Returns
    -------
    Store
        ``codes`` (n, W) uint8, ``lengths`` (n,), ``targets`` (n,) float32, ``medium`` (n,) uint8, ``split``
        (n,) uint8 (0 train, 1 validation), all memory-mapped, and the ``manifest`` dict.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "not a store: no such directory" if not path.exists() else "not a store: not a directory")
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError:
        raise InputError(path, "not a store (or an incomplete one): manifest.json is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path / "manifest.json", f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(path / "manifest.json", f"not a crmnet store manifest (format is not {FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(
            path / "manifest.json",
            f"store format version {manifest.get('format_version')!r}; this crmnet reads version {FORMAT_VERSION}",
        )
    try:
        encoding = Encoding.from_dict(manifest["encoding"])
        n = int(manifest["n_rows"])
        media = list(manifest["media"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path / "manifest.json", f"incomplete or invalid manifest ({exc})") from None
    arrays = {}
    for name, (dtypes, wide) in _ARRAYS.items():
        file = path / f"{name}.npy"
        try:
            arr = np.load(file, mmap_mode="r")
        except FileNotFoundError:
            raise InputError(path, f"incomplete store: {name}.npy is missing") from None
        except ValueError as exc:
            raise InputError(file, f"not a readable .npy array ({exc})") from None
        want = (n, encoding.length) if wide else (n,)
        if arr.shape != want or arr.dtype.name not in dtypes:
            raise InputError(file, f"shape {arr.shape} dtype {arr.dtype}; the manifest implies {want} {'/'.join(dtypes)}")
        arrays[name] = arr
    if n and int(arrays["medium"].max()) >= len(media):
        raise InputError(path / "medium.npy", f"medium index out of range for {len(media)} media")
    _check_finite(arrays["targets"], path / "targets.npy")
    return Store(path, manifest, encoding, **arrays)


def _check_finite(targets: np.ndarray, file: Path, block: int = 1 << 24) -> None:
    """Refuse a store whose targets hold NaN or infinity.

    Refuse a store whose targets hold NaN or infinity (prepare never writes one; training on it would
    only show NaN losses an epoch later). Reads the targets in blocks: ~0.1 s per 50 M rows.
    """
    for first in range(0, len(targets), block):
        bad = np.flatnonzero(~np.isfinite(targets[first : first + block]))
        if len(bad):
            raise InputError(file, f"target of row {first + int(bad[0])} is {float(targets[first + int(bad[0])])}: a "
                                   "store's targets must be finite (prepare the store again from its sources)")


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A version-1.0 .npy header padded to exactly ``_HEADER_BYTES``."""
    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                 "shape": tuple(shape)}).encode("latin-1")
    room = _HEADER_BYTES - 10
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", room) + text + b" " * (room - len(text) - 1) + b"\n"


class _Appender:
    """A .npy file written by appending rows of a fixed dtype and row shape; the header at close."""

    def __init__(self, path: Path, dtype, row_shape: tuple[int, ...] = ()):
        self.path, self.dtype, self.row_shape = path, np.dtype(dtype), row_shape
        self.fh = open(path, "wb")  # noqa: SIM115 (open across appends; closed by close())
        self.fh.write(b"\0" * _HEADER_BYTES)
        self.rows = 0

    def append(self, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        self.fh.write(arr.data)
        self.rows += len(arr)

    def close(self) -> None:
        if self.fh.closed:
            return
        try:
            self.fh.seek(0)
            self.fh.write(_npy_header(self.dtype, (self.rows, *self.row_shape)))
        finally:  # closed even when the disk is full, so nothing holds the temporary open
            self.fh.close()


def _compact(path: Path, keep: np.ndarray) -> None:
    """Keep only rows ``keep`` (ascending) of a .npy file written by :class:`_Appender`, in place."""
    arr = np.load(path, mmap_mode="r")
    dtype, shape, n = arr.dtype, arr.shape[1:], len(arr)
    del arr
    row_bytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    out = 0
    with open(path, "r+b") as fh:
        for first in range(0, n, _COPY_ROWS):
            last = min(first + _COPY_ROWS, n)
            sel = keep[np.searchsorted(keep, first) : np.searchsorted(keep, last)] - first
            fh.seek(_HEADER_BYTES + first * row_bytes)
            block = np.frombuffer(fh.read((last - first) * row_bytes), dtype=np.uint8).reshape(last - first, row_bytes)
            # Rows move only towards the start and the block is read before it is written: safe in place.
            fh.seek(_HEADER_BYTES + out * row_bytes)
            fh.write(np.ascontiguousarray(block[sel]).data)
            out += len(sel)
        fh.truncate(_HEADER_BYTES + out * row_bytes)
        fh.seek(0)
        fh.write(_npy_header(dtype, (out, *shape)))


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _fingerprints(codes: np.ndarray, lengths: np.ndarray, medium: int) -> np.ndarray:
    """(n,) uint64 hash of each row's (medium, length, codes): equal rows give equal hashes."""
    n, width = codes.shape
    if width % 8:
        codes = np.concatenate([codes, np.zeros((n, 8 - width % 8), np.uint8)], axis=1)
    words = np.ascontiguousarray(codes).view(np.uint64)
    h = (lengths.astype(np.uint64) << np.uint64(8)) | np.uint64(medium)
    for j in range(words.shape[1]):
        h ^= words[:, j]
        h *= _MIX
        h ^= h >> np.uint64(31)
    return h


def _duplicate_groups(hashes_path: Path, codes_path: Path, lengths: np.ndarray, medium: np.ndarray,
                      block_rows: int = 1 << 20):
    """Rows that repeat an earlier row: (dup_rows, first_rows) ascending by dup row, both (k,) int64.

    Candidates share a 64-bit hash (read from ``hashes_path``); they are confirmed by comparing
    (medium, length, codes) exactly, a block of whole hash groups at a time. Memory: 8 bytes per row
    when nothing repeats; about 33 bytes per row plus ``block_rows`` rows of codes when much does.
    """
    hashes = np.load(hashes_path)
    hashes.sort()  # in place, vectorised: much cheaper than an argsort, enough to see if any repeat
    if not (hashes[1:] == hashes[:-1]).any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    del hashes
    hashes = np.load(hashes_path)
    order = np.argsort(hashes)
    sorted_h = hashes[order]
    del hashes
    same = sorted_h[1:] == sorted_h[:-1]
    run = np.zeros(len(order), dtype=bool)
    run[1:] |= same
    run[:-1] |= same
    cand, cand_h = order[run], sorted_h[run]  # rows whose hash repeats, grouped by hash
    del order, sorted_h, run, same
    # hash-group boundaries (the end included): blocks end on them, so equal rows are confirmed together
    bounds = np.append(np.flatnonzero(np.concatenate(([True], cand_h[1:] != cand_h[:-1]))), len(cand))
    del cand_h
    codes = np.load(codes_path, mmap_mode="r")
    dups, firsts = [], []
    at = 0
    while at < len(cand):
        end = int(bounds[np.searchsorted(bounds, at + block_rows, side="right") - 1])
        if end <= at:  # one hash group larger than a block
            end = int(bounds[np.searchsorted(bounds, at, side="right")])
        rows = np.sort(cand[at:end])
        at = end
        key = np.concatenate([np.asarray(codes[rows]), lengths[rows].astype("<u2").view(np.uint8).reshape(-1, 2),
                              medium[rows].reshape(-1, 1)], axis=1)
        key = np.ascontiguousarray(key).view(np.dtype((np.void, key.shape[1]))).ravel()
        _, first_idx, inverse = np.unique(key, return_index=True, return_inverse=True)
        first_of = rows[first_idx[inverse.ravel()]]  # np.unique's first index is the earliest: rows ascend
        dup = first_of != rows
        dups.append(rows[dup])
        firsts.append(first_of[dup])
    dup_rows, first_rows = np.concatenate(dups), np.concatenate(firsts)
    by_row = np.argsort(dup_rows)
    return dup_rows[by_row], first_rows[by_row]


@dataclass
class _Source:
    path: Path
    fmt: str
    medium: int


@dataclass
class PrepareConfig(Config):
    """How ``prepare`` turns inputs into a store (see the module docstring for each policy).

    fmt: input format (:data:`~crmnet.data.formats.STORE_FORMATS`). media: one medium name per input, or one for all. encoding: the
    stored layout. val_fraction, seed: the split (seed also of ``balance``). invalid: "error" or "N".
    duplicates: keep, first, mean or error. balance: subsample every medium to the smallest. role: what the
    value column of a headerless txt file holds: ``measured`` (default; a file the data catalogue lists as
    published *predictions* is refused) or ``predicted`` (training on a model's predictions on purpose,
    recorded in the manifest). progress: a progress bar. chunk_bytes: bytes parsed per chunk.
    """

    fmt: str = "auto"
    media: tuple[str, ...] = (DEFAULT_MEDIUM,)
    encoding: Encoding = CRMNET
    val_fraction: float = 0.01
    seed: int = 0
    invalid: InvalidPolicy = "error"
    duplicates: Literal["keep", "first", "mean", "error"] = "keep"
    balance: bool = False
    role: Literal["measured", "predicted"] = "measured"
    progress: bool = False
    chunk_bytes: int = CHUNK_BYTES

    def __post_init__(self) -> None:
        self.media = tuple(self.media or (DEFAULT_MEDIUM,))
        if self.fmt not in STORE_FORMATS:
            raise ValueError(f"format must be one of {describe(STORE_FORMATS)}, not {self.fmt!r}")
        if self.duplicates not in DUPLICATE_POLICIES:
            raise ValueError(f"duplicates must be one of {DUPLICATE_POLICIES}, not {self.duplicates!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), not {self.val_fraction}")
        if self.role not in ("measured", "predicted"):
            raise ValueError(f"role must be 'measured' or 'predicted', not {self.role!r}")
        if len(set(self.media)) > 255:
            raise ValueError("at most 255 media")
        if self.balance and len(set(self.media)) < 2:
            raise ValueError("balance needs at least two media (give --medium per input)")


def prepare(
    inputs: list[str | os.PathLike],
    out: str | os.PathLike,
    config: PrepareConfig | None = None,
    *,
    overwrite: bool = False,
    **settings,
) -> Store:
    """Convert txt/tsv/csv inputs (plain or gzip) into a store at ``out`` (nothing left there on failure).

    Parameters
    ----------
    inputs : list of path-like. Regular files (their sha256 goes to the manifest), of a ``STORE_FORMATS`` format.
    out : path-like. The store directory to create.
    config : PrepareConfig, optional. The settings; None: the defaults.
    overwrite : bool
        Replace an existing store or crmnet output at ``out`` (never a directory holding an input).
    **settings
        :class:`PrepareConfig` fields overriding ``config``'s (``media=["complex", "defined"], seed=1``).

    Returns
    -------
    Store: The new store, opened (:func:`open_store`).

    Raises
    ------
    InputError: Bad input, naming file and line.
    OutputExistsError: ``out`` exists and not ``overwrite``.
    ValueError: A bad setting.
    """
    if "media" in settings and settings["media"] is not None:
        settings["media"] = tuple(settings["media"])
    cfg = (config or PrepareConfig()).replace(**settings) if settings else (config or PrepareConfig())
    if not inputs:
        raise ValueError("prepare needs at least one input")
    if len(cfg.media) not in (1, len(inputs)):
        raise ValueError(f"give one medium per input ({len(inputs)}) or one for all, not {len(cfg.media)}")
    per_input = list(cfg.media) * len(inputs) if len(cfg.media) == 1 else list(cfg.media)
    if cfg.media == (DEFAULT_MEDIUM,):  # no medium given: name the one a catalogued training file was grown in
        per_input = [training_medium(path) or DEFAULT_MEDIUM for path in inputs]
    names = list(dict.fromkeys(per_input))
    sources = []
    for path, name in zip(inputs, per_input):
        path = Path(path)
        _check_input(path)
        kind = detect_format(path) if cfg.fmt == "auto" else cfg.fmt
        if kind not in STORE_FORMATS:
            raise InputError(path, f"{kind} input: prepare needs measured values (sequence<TAB>value txt, or a "
                                   "tsv/csv with a 'Measured Expression' column)")
        sources.append(_Source(path, kind, names.index(name)))
    with atomic_path(out, overwrite=overwrite, inputs=[s.path for s in sources]) as tmp:
        tmp.mkdir()
        manifest = _write_store(tmp, sources, names, cfg)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return open_store(out)


def _check_input(path: Path) -> None:
    """A prepare input must be a regular file: the manifest records its path and sha256 for re-checking."""
    if path.is_file():
        return
    if path.is_dir():
        raise InputError(path, "is a directory, not a file")
    if not path.exists() and str(path) != "-":
        raise InputError(path, "no such file")
    raise InputError(display_name(path), "not a regular file (standard input or a pipe): prepare records each "
                                         "input's path and sha256 in the store's manifest; save it to a file first")


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_targets(values: np.ndarray, lines: np.ndarray, path: Path) -> None:
    """Targets are stored as float32: a value that would become infinite there is refused, naming its line."""
    big = np.flatnonzero(np.abs(values) > _FLOAT32_MAX)
    if len(big):
        raise InputError(path, f"value {values[big[0]]:g} is too large for the store's float32 targets "
                               f"(|value| <= {_FLOAT32_MAX:.4g})", line=int(lines[big[0]]))


@dataclass
class _Streamed:
    """What streaming the inputs produced besides the array files."""

    rows: int
    records: list[dict]
    mapped: int
    truncated: int
    lines: np.ndarray | None  # source line of every row, kept only for duplicates="error"


def _stream_inputs(tmp: Path, sources: list[_Source], names: list[str], cfg: PrepareConfig) -> _Streamed:
    """Append every input's rows to codes/targets/medium .npy files (+ 16-bit lengths and fingerprints)."""
    from crmnet.progress import progress

    enc, invalid, keep_lines = cfg.encoding, cfg.invalid, cfg.duplicates == "error"
    codes = _Appender(tmp / "codes.npy", np.uint8, (enc.length,))
    lengths = _Appender(tmp / ".lengths16.npy", np.uint16)
    targets = _Appender(tmp / "targets.npy", np.float32)
    medium = _Appender(tmp / "medium.npy", np.uint8)
    hashes = _Appender(tmp / ".hashes.npy", np.uint64)
    lines: list[np.ndarray] = []
    mapped = truncated = 0
    records = []
    total = sum(s.path.stat().st_size for s in sources)
    bar = progress(total=total, unit="B", unit_scale=True, desc="prepare", enable=cfg.progress, mininterval=0.5)
    with bar, contextlib.ExitStack() as closing:
        for arr in (codes, lengths, targets, medium, hashes):
            closing.callback(arr.close)
        for src in sources:
            first_row = codes.rows
            if src.fmt == "txt":
                stream = TxtBlocks(src.path, enc, invalid, cfg.chunk_bytes, on_raw=bar.update)
                blocks: Iterator[EncodedBlock] = iter(stream)
            else:
                table = read_records(src.path, src.fmt, invalid=invalid)
                if table.measured is None:
                    raise InputError(src.path, "no 'Measured Expression' column: nothing to train on")
                blocks = iter([EncodedBlock(table.encode(enc), table.lengths, table.measured, table.lines,
                                            table.mapped)])
                bar.update(src.path.stat().st_size)
            for block in blocks:
                if block.lengths.max() > np.iinfo(np.uint16).max:
                    row = int(np.argmax(block.lengths))
                    raise InputError(src.path, "sequence longer than 65,535 characters", line=int(block.lines[row]))
                _check_targets(block.values, block.lines, src.path)
                codes.append(block.codes)
                lengths.append(block.lengths)
                targets.append(block.values)
                medium.append(np.full(len(block.values), src.medium, np.uint8))
                hashes.append(_fingerprints(block.codes, block.lengths, src.medium))
                if keep_lines:
                    lines.append(block.lines)
                truncated += int(np.count_nonzero(block.lengths > enc.body_length))
            if src.fmt == "txt":
                if cfg.role == "measured":
                    check_measurements(src.path, stream.sha256, "--role predicted")
                mapped += stream.mapped
                record = {"sha256": stream.sha256, "bytes": stream.bytes, "blank_lines": stream.blank_lines}
            else:
                mapped += table.mapped
                record = {"sha256": file_digest(src.path), "bytes": src.path.stat().st_size,
                          "blank_lines": table.blank_lines, "sequence_column": table.sequence_column}
            records.append({"path": str(src.path.resolve()), "format": src.fmt, "medium": names[src.medium],
                            "rows": codes.rows - first_row, "first_row": first_row, **record})
    return _Streamed(codes.rows, records, mapped, truncated, np.concatenate(lines) if keep_lines else None)


def _raise_duplicate(streamed: _Streamed, row: int, first: int) -> None:
    where = {r: next(s for s in reversed(streamed.records) if s["first_row"] <= r) for r in (row, first)}
    raise InputError(
        where[row]["path"],
        f"duplicate sequence: same as {where[first]['path']}:{int(streamed.lines[first])} "
        "(choose a duplicates policy: keep, first or mean)",
        line=int(streamed.lines[row]),
    )


def _average_targets(path: Path, dup_rows: np.ndarray, first_rows: np.ndarray) -> None:
    """Give each group's first row the mean target of the group, in place (memory: O(duplicates))."""
    stored = np.load(path, mmap_mode="r+")
    groups = np.unique(first_rows)
    at = np.searchsorted(groups, first_rows)
    sums = np.asarray(stored[groups], dtype=np.float64)
    counts = np.ones(len(groups), dtype=np.int64)
    np.add.at(sums, at, np.asarray(stored[dup_rows], dtype=np.float64))
    np.add.at(counts, at, 1)
    stored[groups] = sums / counts
    stored.flush()


def _balance(keep: np.ndarray, medium: np.ndarray, n_media: int, seed: int) -> int:
    """Unkeep (seeded) rows of every medium larger than the smallest; returns how many were dropped."""
    smallest = int(np.bincount(medium[keep], minlength=n_media).min())
    rng = np.random.default_rng([seed, 1])
    dropped = 0
    for m in range(n_media):
        rows = np.flatnonzero(keep & (medium == m))
        if len(rows) > smallest:
            drop = rng.choice(len(rows), size=len(rows) - smallest, replace=False)
            keep[rows[drop]] = False
            dropped += len(drop)
    return dropped


def _write_store(tmp: Path, sources: list[_Source], names: list[str], cfg: PrepareConfig) -> dict:
    """Stream ``sources`` into the arrays under ``tmp``, apply the policies of ``cfg``; returns the manifest."""
    enc, seed, duplicates = cfg.encoding, cfg.seed, cfg.duplicates
    streamed = _stream_inputs(tmp, sources, names, cfg)
    records = streamed.records
    lens = np.load(tmp / ".lengths16.npy")
    med = np.load(tmp / "medium.npy")
    dup_rows, first_rows = _duplicate_groups(tmp / ".hashes.npy", tmp / "codes.npy", lens, med)
    (tmp / ".hashes.npy").unlink()
    keep = np.ones(streamed.rows, dtype=bool)
    if len(dup_rows) and duplicates == "error":
        _raise_duplicate(streamed, int(dup_rows[0]), int(first_rows[0]))
    if len(dup_rows) and duplicates in ("first", "mean"):
        keep[dup_rows] = False
        if duplicates == "mean":
            _average_targets(tmp / "targets.npy", dup_rows, first_rows)
    balance_removed = _balance(keep, med, len(names), seed) if cfg.balance else 0
    if not keep.all():
        kept = np.flatnonzero(keep)
        for name in ("codes", "targets", "medium"):
            _compact(tmp / f"{name}.npy", kept)
        lens, med = lens[kept], med[kept]
    for record in records:
        first = record.pop("first_row")
        record["rows_kept"] = int(np.count_nonzero(keep[first : first + record["rows"]]))
    n = len(lens)
    np.save(tmp / "lengths.npy", lens.astype(np.uint8) if lens.max() <= 255 else lens)
    (tmp / ".lengths16.npy").unlink()
    n_val = round(n * cfg.val_fraction)
    if n_val >= n:
        raise ValueError(f"val_fraction {cfg.val_fraction} leaves no training rows out of {n}")
    split = np.zeros(n, dtype=np.uint8)
    split[np.random.default_rng([seed, 0]).choice(n, size=n_val, replace=False)] = 1
    np.save(tmp / "split.npy", split)

    from crmnet.version import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "n_rows": n,
        "n_train": n - n_val,
        "n_val": n_val,
        "media": names,
        "media_rows": np.bincount(med, minlength=len(names)).tolist(),
        "encoding": enc.to_dict(),
        "target": "measured expression" if cfg.role == "measured" else "a model's predictions (role 'predicted')",
        "sources": records,
        "split": {"seed": seed, "val_fraction": cfg.val_fraction, "method": "exact random choice of "
                  "round(n * val_fraction) rows, numpy default_rng([seed, 0])"},
        "duplicates": {"policy": duplicates, "definition": "same medium, length and stored codes",
                       "duplicate_rows": len(dup_rows),
                       "rows_removed": len(dup_rows) if duplicates in ("first", "mean") else 0},
        "balance": {"enabled": cfg.balance, "seed": [seed, 1], "rows_removed": balance_removed},
        "invalid": {"policy": cfg.invalid, "characters_mapped_to_N": streamed.mapped},
        "truncated_rows": streamed.truncated,
        "rows_read": streamed.rows,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "crmnet_version": __version__,
    }
