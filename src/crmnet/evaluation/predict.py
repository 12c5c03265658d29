"""Predictions: sequences (or codes) in, one expression value per sequence out.

* :func:`predict` — the library call: ``predict(model, sequences, batch_size=1024, device=None)`` encodes
  each batch in the model's own :class:`~crmnet.data.encoding.Encoding` (``model.encoding``), one-hots it on
  the device and runs the model in eval mode. Every sequence is encoded and predicted independently, so
  results do not depend on the batch size (up to float rounding in the convolutions).
* :func:`predict_file` — the streaming path behind ``crmnet predict``: reads FASTA, TSV or CSV in chunks
  (:func:`iter_chunks`), never holding more than one chunk in memory, shows a progress bar over the input's
  bytes, and writes ``id<TAB>sequence<TAB>prediction`` atomically.

Encoding policy (the contract of :mod:`crmnet.data.encoding`, reported in :class:`EncodingStats`): lower case
is accepted as upper case; a sequence longer than the model's input is truncated at the model's
truncation side (CRMnet keeps the first 112 nt, Vaishnav's models keep the last 110) and a shorter one is
padded with N; any other character is an error naming the file and line, unless ``invalid="N"`` maps it
to N (counted). ``predict_file`` reports these counts in one message. Errors name the input file and
line (for a FASTA record, its header line, with the position inside the sequence). Input may be gzip.

Identifiers: a FASTA record's identifier is its header up to the first whitespace; a TSV/CSV with a header
uses its ``id``/``name`` column (or a pandas index, the unnamed first column); otherwise a record is
identified by its 1-based line number in the input.
"""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crmnet.data.encoding import Encoding, InvalidPolicy, encode
from crmnet.data.readers import _text_lines
from crmnet.errors import InputError
from crmnet.fsutil import atomic_file

FORMATS = ("auto", "fasta", "tsv", "csv")
SEQUENCE_COLUMNS = ("sequence", "seq", "seq110")
ID_COLUMNS = ("id", "name", "identifier")
_DNA = frozenset("ACGTNacgtn")


@dataclass
class EncodingStats:
    """What the encoding policy did to the sequences seen so far (for the message to the user)."""

    n: int = 0
    truncated: int = 0
    padded: int = 0
    lowercase: int = 0
    mapped_to_n: int = 0

    def add(self, seqs: Sequence[str], enc: Encoding, mapped: int) -> None:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        self.n += len(seqs)
        self.truncated += int((lengths > enc.body_length).sum())
        self.padded += int((lengths < enc.body_length).sum())
        self.lowercase += sum(1 for s in seqs if not s.isupper() and s.upper() != s.lower())
        self.mapped_to_n += mapped

    def message(self, enc: Encoding) -> str:
        """One paragraph saying how many sequences the policy changed, and how."""
        body = enc.body_length
        kept = "first" if enc.truncate == "end" else "last"
        parts = [f"{self.n:,} sequences encoded for a {body}-nt model input"]
        if self.truncated:
            parts.append(f"{self.truncated:,} longer than {body} nt were truncated (the {kept} {body} nt kept)")
        if self.padded:
            parts.append(f"{self.padded:,} shorter than {body} nt were padded with N at the {enc.pad}")
        if self.lowercase:
            parts.append(f"{self.lowercase:,} contained lower-case bases (read as upper case)")
        if self.mapped_to_n:
            parts.append(f"{self.mapped_to_n:,} characters outside ACGTN were mapped to N")
        if enc.prefix:
            parts.append(f"each was placed after the model's fixed {len(enc.prefix)}-nt prefix")
        return "; ".join(parts) + "."


def _device_of(model, device):
    import torch

    if device is not None:
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def predict(
    model,
    sequences,
    batch_size: int = 1024,
    device=None,
    *,
    invalid: InvalidPolicy = "error",
    source: str | None = None,
    first_line: int = 1,
    stats: EncodingStats | None = None,
) -> np.ndarray:
    """Predict expression for ``sequences`` with ``model`` (any registered model, ``.encoding`` set).

    sequences: a sequence of DNA strings, or codes ``(n, model.encoding.length)`` uint8 already laid out
    in the model's encoding. device: where to run (default: where the model's parameters are; the model
    is moved there). Sequence ``i`` is reported as line ``first_line + i`` of ``source`` on error.
    Returns predictions (n,) float32. The model runs in eval mode; its training flag is restored after.
    """
    import torch

    from crmnet.data.encoding import onehot
    from crmnet.models.fastpath import optimize_for_inference

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    enc: Encoding = model.encoding
    is_codes = isinstance(sequences, np.ndarray) and sequences.dtype == np.uint8
    if is_codes and (sequences.ndim != 2 or sequences.shape[1] != enc.length):
        raise ValueError(f"codes must have shape (n, {enc.length}) for this model, got {sequences.shape}")
    dev = _device_of(model, device)
    model.to(dev)
    was_training = model.training
    model.eval()
    # The exact inference rewrite (cached per model) where it was measured: CPUs. Others run the model.
    run = optimize_for_inference(model) if dev.type == "cpu" else model
    n = len(sequences)
    out = np.empty(n, dtype=np.float32)
    try:
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                chunk = sequences[start : start + batch_size]
                if is_codes:
                    codes = chunk
                else:
                    codes, mapped = encode(chunk, enc, invalid=invalid, source=source, first_line=first_line + start)
                    if stats is not None:
                        stats.add(chunk, enc, mapped)
                x = onehot(torch.from_numpy(np.ascontiguousarray(codes)).to(dev), enc)
                out[start : start + len(chunk)] = run(x).float().reshape(-1).cpu().numpy()
    finally:
        model.train(was_training)
    return out


@dataclass
class Chunk:
    """A block of input records: identifiers, sequences and their 1-based input lines."""

    ids: list[str] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def _detect(first: str) -> str:
    """Format of a file from its first non-blank line: ``>`` FASTA, a tab TSV, a comma CSV, else a bare
    one-column list of sequences (read as TSV)."""
    if first.startswith(">"):
        return "fasta"
    return "csv" if "," in first and "\t" not in first else "tsv"


def _looks_like_dna(text: str) -> bool:
    return bool(text) and set(text) <= _DNA


def _fasta_records(path, lines) -> Iterator[tuple[str, str, int]]:
    header = None
    parts: list[str] = []
    for number, line in lines:
        if line.startswith(">"):
            if header is not None:
                yield _fasta_record(path, header, parts)
            token = line[1:].split(maxsplit=1)
            if not token:
                raise InputError(path, "FASTA header without an identifier", line=number)
            header = (token[0], number)
            parts = []
        elif line.strip():
            if header is None:
                raise InputError(path, "sequence text before the first FASTA header ('>')", line=number)
            parts.append(line.strip())
    if header is not None:
        yield _fasta_record(path, header, parts)


def _fasta_record(path, header: tuple[str, int], parts: list[str]) -> tuple[str, str, int]:
    ident, line = header
    if not parts:
        raise InputError(path, f"FASTA record {ident!r} has no sequence", line=line)
    return ident, "".join(parts), line


def _table_records(path, lines, delimiter: str) -> Iterator[tuple[str, str, int]]:
    seq_col = id_col = None
    for number, line in lines:
        if not line.strip():
            continue
        fields = next(csv.reader([line], delimiter=delimiter))
        names = [f.strip().lower() for f in fields]
        seq_col = next((names.index(c) for c in SEQUENCE_COLUMNS if c in names), None)
        if seq_col is not None:  # a header line
            id_col = next((names.index(c) for c in ID_COLUMNS if c in names), None)
            if id_col is None and names[0] == "" and seq_col != 0:
                id_col = 0  # pandas' unnamed index column
            break
        # No header: the sequence is the first field that looks like DNA; a field before it is the id.
        seq_col = next((i for i, f in enumerate(fields[:2]) if _looks_like_dna(f.strip())), None)
        if seq_col is None:
            raise InputError(
                path,
                f"no sequence column: expected a header naming one of {', '.join(SEQUENCE_COLUMNS)}, "
                "or a DNA sequence in the first or second field",
                line=number,
            )
        id_col = 0 if seq_col == 1 else None
        yield _table_record(path, fields, seq_col, id_col, number)
        break
    for number, line in lines:
        if line.strip():
            yield _table_record(path, next(csv.reader([line], delimiter=delimiter)), seq_col, id_col, number)


def _table_record(path, fields: list[str], seq_col: int, id_col: int | None, line: int) -> tuple[str, str, int]:
    need = max(seq_col, id_col or 0) + 1
    if len(fields) < need:
        raise InputError(path, f"expected at least {need} fields, found {len(fields)}", line=line)
    seq = fields[seq_col].strip()
    if not seq:
        raise InputError(path, "empty sequence", line=line)
    return (fields[id_col].strip() if id_col is not None else str(line)), seq, line


def iter_chunks(path: str | os.PathLike, fmt: str = "auto", chunk_size: int = 65536, on_raw=None) -> Iterator[Chunk]:
    """Stream the records of a FASTA, TSV or CSV file (plain or gzip) as :class:`Chunk` s of up to
    ``chunk_size`` records; ``on_raw(n)`` is called with the stored bytes read (progress)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    path = Path(path)
    # 1 MiB chunks: never more than that of the input in memory, and a smooth progress bar.
    lines = _text_lines(path, on_raw, chunk_bytes=1 << 20)
    # Peek at the first non-blank line to detect the format, then put it back in front of the stream.
    head = list(_until_nonblank(lines))
    if not head or not head[-1][1].strip():
        raise InputError(path, "the input is empty: no sequences to predict")
    if fmt == "auto":
        fmt = _detect(head[-1][1])
    stream = itertools.chain(head, lines)
    if fmt == "fasta":
        records = _fasta_records(path, stream)
    else:
        records = _table_records(path, stream, "\t" if fmt == "tsv" else ",")
    chunk = Chunk()
    for ident, seq, line in records:
        chunk.ids.append(ident)
        chunk.sequences.append(seq)
        chunk.lines.append(line)
        if len(chunk.ids) >= chunk_size:
            yield chunk
            chunk = Chunk()
    if chunk.ids:
        yield chunk


def _until_nonblank(lines) -> Iterator[tuple[int, str]]:
    for number, text in lines:
        yield number, text
        if text.strip():
            return


def predict_at_lines(model, sequences: Sequence[str], lines: Sequence[int], *, batch_size: int = 1024,
                     device=None, invalid: InvalidPolicy = "error", source: str | None = None,
                     stats: EncodingStats | None = None) -> np.ndarray:
    """:func:`predict` for sequences read from ``source``; an invalid character is reported at its
    input line ``lines[i]`` (1-based), wherever the sequence sat in the file."""
    try:
        return predict(model, sequences, batch_size, device, invalid=invalid, source=source, first_line=0,
                       stats=stats)
    except InputError as exc:
        if exc.line is None or exc.source != source:
            raise
        raise InputError(source, exc.problem, line=int(lines[exc.line])) from None


def predict_file(
    model,
    input_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    fmt: str = "auto",
    batch_size: int = 1024,
    device=None,
    invalid: InvalidPolicy = "error",
    overwrite: bool = False,
    chunk_size: int = 65536,
    progress: bool = True,
) -> EncodingStats:
    """Stream ``input_path`` through ``model`` into ``out_path`` (TSV: id, sequence, prediction).

    The output appears only when complete (atomic); an error leaves no partial file. Returns the
    encoding statistics (see :meth:`EncodingStats.message`).
    """
    from tqdm import tqdm

    source = str(input_path)
    stats = EncodingStats()
    if not Path(input_path).is_file():
        raise InputError(input_path, "no such file")
    total = Path(input_path).stat().st_size
    with atomic_file(out_path, overwrite=overwrite) as out, tqdm(
        total=total, unit="B", unit_scale=True, desc="predict", disable=not progress, leave=False
    ) as bar:
        out.write("id\tsequence\tprediction\n")
        for chunk in iter_chunks(input_path, fmt, chunk_size, on_raw=bar.update):
            preds = predict_at_lines(model, chunk.sequences, chunk.lines, batch_size=batch_size, device=device,
                                     invalid=invalid, source=source, stats=stats)
            out.writelines(f"{i}\t{s}\t{p:.7g}\n" for i, s, p in zip(chunk.ids, chunk.sequences, preds))
    return stats
