"""Predictions: sequences (or codes) in, one expression value per sequence out.

* :func:`predict` — the library call: ``predict(model, sequences, batch_size=1024, device=None)`` encodes
  each batch in the model's own :class:`~crmnet.data.encoding.Encoding` (``model.encoding``), one-hots it on
  the device and runs the model in eval mode. Every sequence is encoded and predicted independently, so
  results do not depend on the batch size (up to float rounding in the convolutions).
* :func:`predict_file` — the streaming path behind ``crmnet predict``: reads any format of
  :mod:`crmnet.data.readers` in chunks (:func:`crmnet.data.readers.iter_records`), never holding more than
  one chunk in memory, shows progress (:class:`FileProgress`: a bar on a terminal, periodic log lines
  elsewhere) in sequences as they are predicted, and writes ``id<TAB>sequence<TAB>prediction`` (+ the model
  card's ``percentile`` and ``range_flag``; the rows of :mod:`crmnet.evaluation.prediction_table`, which
  the web page writes too) atomically, with the card in ``OUT.card.json``.
* Bare 80-nt variable regions are completed with the construct's constant flanks first (``flanks=True``,
  :func:`crmnet.data.construct.add_flanks`).

Encoding policy (the contract of :mod:`crmnet.data.encoding`, reported in :class:`EncodingStats`): lower case
is accepted as upper case; a sequence longer than the model's input is truncated at the model's
truncation side (CRMnet keeps the first 112 nt, Vaishnav's models keep the last 110) and a shorter one is
padded with N; any other character is an error naming the file and line, unless ``invalid="N"`` maps it
to N (counted). ``predict_file`` reports these counts in one message. Errors name the input file and
line (for a FASTA record, its header line, with the position inside the sequence). Input may be gzip.

Identifiers: a FASTA record's identifier is its header up to the first whitespace; a TSV/CSV with a header
uses its ``id``/``name`` column (or a pandas index, the unnamed first column), a headerless file an
``id<TAB>sequence`` first field; otherwise a record is identified by its 1-based line number in the input.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from crmnet.data.encoding import Encoding, InvalidPolicy, encode
from crmnet.data.readers import Format, iter_records
from crmnet.data.streams import check_file, display_name, is_stdin
from crmnet.errors import InputError
from crmnet.fsutil import atomic_file
from crmnet.progress import progress as progress_bar


@dataclass
class EncodingStats:
    """What the encoding policy did to the sequences seen so far (for the message to the user).

    Lengths are counted as the model lays sequences out: after its ``trim_start`` leading bases are dropped
    (LegNet's released models replace the first 17 nt by their plasmid flank).
    """

    n: int = 0
    truncated: int = 0
    padded: int = 0
    lowercase: int = 0
    mapped_to_n: int = 0
    #: bare variable regions completed with the construct's flanks (:func:`crmnet.data.construct.add_flanks`)
    flanked: int = 0
    #: shortest and longest length among the padded sequences (None when none was padded)
    padded_lengths: tuple[int, int] | None = None

    def add(self, seqs: Sequence[str], enc: Encoding, mapped: int) -> None:
        """Count the truncated, padded, lowercase and ``mapped`` (to N) sequences among ``seqs``."""
        lengths = np.fromiter((max(len(s) - enc.trim_start, 0) for s in seqs), dtype=np.int64, count=len(seqs))
        self.n += len(seqs)
        self.truncated += int((lengths > enc.body_length).sum())
        short = lengths[lengths < enc.body_length]
        self.padded += len(short)
        if len(short):
            low, high = int(short.min()), int(short.max())
            if self.padded_lengths is not None:
                low, high = min(low, self.padded_lengths[0]), max(high, self.padded_lengths[1])
            self.padded_lengths = (low, high)
        self.lowercase += sum(1 for s in seqs if not s.isupper() and s.upper() != s.lower())
        self.mapped_to_n += mapped

    def message(self, enc: Encoding, flank_option: str | None = "--no-flanks") -> str:
        """One paragraph saying how the sequences were fitted to the model's input.

        Information, not a warning (padding 110-nt promoters to CRMnet's 112 nt is the normal case). When bare
        variable regions were completed with the flanks, a line saying so comes first.
        """
        from crmnet.data.construct import flank_note

        body = enc.body_length
        kept = "first" if enc.truncate == "end" else "last"
        parts = [f"note: {self.n:,} sequences encoded for the model's input of {body} nt"]
        if enc.trim_start:
            parts.append(f"the first {enc.trim_start} nt of each were dropped (the model's convention)")
        if self.padded:
            after = " (after the drop)" if enc.trim_start else ""
            low, high = self.padded_lengths
            what = f"{self.padded:,} of {low if low == high else f'{low}-{high}'} nt{after}"
            if enc.flank:
                beyond = " and N beyond it" if len(enc.flank) < body else ""
                how = f"at the {enc.pad} with the model's {len(enc.flank)}-nt plasmid flank{beyond}"
            else:
                how = f"with N at the {enc.pad}"
            parts.append(f"{what} were padded {how} to {body} nt")
        if self.truncated:
            parts.append(f"{self.truncated:,} longer than {body} nt were truncated (the {kept} {body} nt kept)")
        if self.lowercase:
            parts.append(f"{self.lowercase:,} contained lower-case bases (read as upper case)")
        if self.mapped_to_n:
            parts.append(f"{self.mapped_to_n:,} characters outside ACGTN were mapped to N (--invalid N)")
        if enc.prefix:
            parts.append(f"each was placed after the model's fixed {len(enc.prefix)}-nt prefix")
        flanked = flank_note(self.flanked, flank_option) + "\n" if self.flanked else ""
        return flanked + "; ".join(parts) + "."


class FileProgress:
    """Progress over an input file's records (sequences), counted as they are *done*, not as they are read.

    The bar counts records. When the file's size is known, its total is an estimate refined at every chunk
    from the bytes the readers have read so far (records so far × file size / bytes read), so a bar or log
    line shows how many sequences are left and when they will be done; bytes themselves are never shown.
    The readers report bytes as they read them (``on_raw``); :meth:`chunk` then :meth:`done` per batch move
    the count, so it moves at least once per batch whatever the chunk size. Built on
    :func:`crmnet.progress.progress`: a bar on a terminal, periodic log lines elsewhere.
    """

    def __init__(self, path, desc: str, what: str = "sequences", enable: bool = True):
        self.size = None if is_stdin(path) or not Path(path).is_file() else Path(path).stat().st_size
        self.bar = progress_bar(total=None, unit=f" {what}", desc=desc, enable=enable)
        self.records = self._read = 0

    def on_raw(self, n: int) -> None:
        """Record ``n`` more stored bytes read (the reader's callback)."""
        self._read += n

    def chunk(self, size: int) -> None:
        """A chunk of ``size`` records starts (read up to ``on_raw``'s count): re-estimate the total."""
        if self.size and self._read:
            upto = self.records + size
            self.bar.total = max(upto, round(upto * self.size / self._read))
            self.bar.refresh()

    def done(self, k: int) -> None:
        """``k`` more records are done."""
        self.records += k
        self.bar.update(k)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.bar.total = self.records  # the true count, now known
        self.bar.__exit__(*exc)


def device_of(model, device):
    """``device`` when given, else the device of the model's parameters (the CPU for none)."""
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
    on_batch: Callable[[int], None] | None = None,
    members: bool = False,
    flanks: bool = True,
) -> np.ndarray:
    """Predict expression for ``sequences`` with ``model`` (any registered model, ``.encoding`` set).

    The model runs in eval mode (its training flag is restored after); results do not depend on
    ``batch_size``.

    Parameters
    ----------
    model : nn.Module
        A crmnet model (``load_checkpoint``, ``build_model``); its ``.encoding`` says how sequences are laid
        out and one-hot encoded.
    sequences : sequence of str, or ndarray (n, model.encoding.length) uint8
        DNA strings (A, C, G, T, N in either case; fitted to the model's length as its encoding says), or
        codes ``A=0 C=1 G=2 T=3 N=4`` already laid out in the model's encoding.
    batch_size : int
        Sequences per forward pass.
    device : str or torch.device, optional
        Where to run; None: where the model's parameters are (the model is moved there).
    invalid : {"error", "N"}
        A character outside ACGTN is an error naming its line, or is read as N.
    source : str, optional
        The file the sequences came from, named in errors; sequence ``i`` is its line ``first_line + i``.
    first_line : int
        The 1-based line of the first sequence in ``source``.
    stats : EncodingStats, optional
        Counts how sequences were fitted (padded, truncated, mapped to N, flanked), for the caller's note.
    on_batch : callable, optional
        Called with the number of sequences after each batch (progress).
    members : bool
        Return each ensemble member's predictions (see :mod:`crmnet.models.ensemble`).
    flanks : bool
        Complete a sequence of exactly the assay's variable length (80 nt) with the construct's constant
        flanks before encoding, for a model that reads whole constructs (counted in ``stats.flanked``);
        False pads it with N like any other short sequence.

    Returns
    -------
    ndarray, shape (n,) or (n, K), float32
        One prediction per sequence, in the model's output units (expression for the released models);
        with ``members``, each of the K members' (K = 1 for a single model).
    """
    import torch

    from crmnet.data.construct import add_flanks
    from crmnet.data.encoding import onehot
    from crmnet.models.fastpath import optimize_for_inference, worthwhile

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    enc: Encoding = model.encoding
    is_codes = isinstance(sequences, np.ndarray) and sequences.dtype == np.uint8
    if is_codes and (sequences.ndim != 2 or sequences.shape[1] != enc.length):
        raise ValueError(f"codes must have shape (n, {enc.length}) for this model, got {sequences.shape}")
    dev = device_of(model, device)
    model.to(dev)
    was_training = model.training
    model.eval()
    # The exact inference rewrite (cached per model) where it was measured to pay: full-width CRMnet on CPUs.
    run = optimize_for_inference(model) if dev.type == "cpu" and worthwhile(model) else model
    if members:
        from crmnet.models.ensemble import member_outputs, n_members

        run = partial(member_outputs, run)
    n = len(sequences)
    out = np.empty((n, n_members(model)) if members else n, dtype=np.float32)
    try:
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                chunk = sequences[start : start + batch_size]
                if is_codes:
                    codes = chunk
                else:
                    if flanks:
                        chunk, flanked = add_flanks(chunk, enc)
                        if stats is not None:
                            stats.flanked += flanked
                    codes, mapped = encode(chunk, enc, invalid=invalid, source=source, first_line=first_line + start)
                    if stats is not None:
                        stats.add(chunk, enc, mapped)
                x = onehot(torch.from_numpy(np.ascontiguousarray(codes)).to(dev), enc)
                out[start : start + len(chunk)] = run(x).float().reshape(out[:len(chunk)].shape).cpu().numpy()
                if on_batch is not None:
                    on_batch(len(chunk))
    finally:
        model.train(was_training)
    return out


def predict_at_lines(model, sequences: Sequence[str], lines: Sequence[int], *, batch_size: int = 1024,
                     device=None, invalid: InvalidPolicy = "error", source: str | None = None,
                     stats: EncodingStats | None = None, on_batch: Callable[[int], None] | None = None,
                     members: bool = False, flanks: bool = True) -> np.ndarray:
    """:func:`predict` for sequences read from ``source`` ((n,), or (n, K) with ``members``).

    An invalid character is reported at its input line ``lines[i]`` (1-based), wherever the sequence sat in
    the file. A non-finite prediction (NaN weights) is an InputError naming the first such line: nothing
    non-finite is written or scored.
    """
    try:
        preds = predict(model, sequences, batch_size, device, invalid=invalid, source=source, first_line=0,
                        stats=stats, on_batch=on_batch, members=members, flanks=flanks)
    except InputError as exc:
        if exc.line is None or exc.source != source:
            raise
        raise InputError(source, exc.problem, line=int(lines[exc.line])) from None
    bad = np.flatnonzero(~np.isfinite(preds.reshape(len(preds), -1)).all(axis=1))
    if len(bad):  # a diverged checkpoint: refuse rather than write or score NaN
        raise InputError(source, f"the model predicted {preds[bad[0]]} for this sequence ({len(bad):,} of "
                                 f"{len(preds):,} non-finite): its weights are not finite (a diverged checkpoint?)",
                         line=int(lines[bad[0]]))
    return preds


def card_path(out_path: str | os.PathLike) -> Path:
    """The model-card companion of a prediction file: ``OUT.tsv`` → ``OUT.card.json`` beside it."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.stem + ".card.json")


def predict_file(
    model,
    input_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    fmt: Format = "auto",
    batch_size: int = 1024,
    device=None,
    invalid: InvalidPolicy = "error",
    overwrite: bool = False,
    chunk_size: int = 8192,
    progress: bool = True,
    interval: float | None = None,
    flanks: bool = True,
) -> EncodingStats:
    """Stream ``input_path`` through ``model`` into ``out_path`` (TSV: id, sequence, prediction ...).

    ``input_path`` may be a file, a pipe or ``-`` (standard input), each read once; ``out_path`` ``-`` is
    standard output (streamed). A file output appears only when complete (atomic); an error leaves no
    partial file. ``progress``: show progress per batch (a bar on a terminal, log lines elsewhere). An
    ensemble (:mod:`crmnet.models.ensemble`) adds a ``spread`` column (its members' standard deviation);
    ``interval``: a level in (0, 1) adds ``lower`` and ``upper`` (the model must carry a calibration,
    :mod:`crmnet.evaluation.conformal`). ``flanks``: as in :func:`predict` (the sequence column keeps the
    input as given). The model card travels with the predictions: a ``percentile`` column (within the
    card's reference distribution) and a ``range_flag`` column (outside the assay's range) when the card
    has them, and, for a file output, the card itself in :func:`card_path` (JSON, with the counts of
    flagged predictions). Returns the encoding statistics (see :meth:`EncodingStats.message`).
    """
    from crmnet.errors import OutputExistsError
    from crmnet.evaluation.prediction_table import PredictionColumns, header_line, prediction_lines

    table = PredictionColumns.of(model, interval)
    source = display_name(input_path)
    stats = EncodingStats()
    check_file(input_path)
    to_stdout = str(out_path) == "-"
    companion = None if to_stdout else card_path(out_path)
    if companion is not None and companion.exists() and not overwrite:
        raise OutputExistsError(companion)
    flagged = {"above assay range": 0, "below assay range": 0}
    writer = contextlib.nullcontext(sys.stdout) if to_stdout else atomic_file(out_path, overwrite, inputs=[input_path])
    with writer as out, \
            FileProgress(input_path, "predict", enable=progress) as meter:
        out.write(header_line([table]))
        for chunk in iter_records(input_path, fmt, chunk_size=chunk_size, on_raw=meter.on_raw):
            meter.chunk(len(chunk.sequences))
            _, cells = table.cells(predict_at_lines(
                model, chunk.sequences, chunk.lines, batch_size=batch_size, device=device, invalid=invalid,
                source=source, stats=stats, on_batch=meter.done, members=True, flanks=flanks))
            for flag in cells.get("range_flag", ()):
                if flag:
                    flagged[flag] += 1
            out.writelines(prediction_lines(chunk.ids or [str(line) for line in chunk.lines], chunk.sequences,
                                             [cells]))
        if companion is not None:
            _write_card(companion, model, table.card, table.names, table.level, stats.n, flagged, overwrite)
    return stats


def _write_card(path: Path, model, card, header: list[str], level, n: int, flagged: dict, overwrite: bool) -> None:
    import json

    meaning = {"prediction": card.units,
               "spread": "standard deviation of the ensemble members' predictions (same units)",
               "lower": f"lower bound of the conformal {level} prediction interval",
               "upper": f"upper bound of the conformal {level} prediction interval",
               "percentile": f"percent of the model's predictions on {card.reference_set} below this one",
               "range_flag": "the prediction lies outside what the assay can measure"}
    meta = getattr(model, "checkpoint_meta", None) or {}
    doc = {"model": meta.get("model", type(model).__name__), "card": card.to_dict(), "predictions": n,
           "above_assay_range": flagged["above assay range"], "below_assay_range": flagged["below assay range"],
           "columns": {c: meaning[c] for c in header}}
    with atomic_file(path, overwrite=overwrite) as fh:
        fh.write(json.dumps(doc, indent=2) + "\n")
