"""Files of ``crmnet mutagenesis``: streamed with bounded memory, written atomically as one directory.

``OUT/`` holds

* ``deltas.npz``: ``delta`` (N, L, 4) float32, ``reference`` (N, L) uint8, ``start`` (N,) int64 (0-based),
  ``length`` (N,) int64, ``prediction`` (N,) float32, ``ids`` (N,) str — the arrays of
  :class:`~crmnet.design.mutagenesis.Saturation` (read back with :func:`read_saturation`);
* ``mutants.tsv`` (unless switched off): one row per mutant: ``id, position_1based`` (in the sequence),
  ``reference, alternative, prediction, delta``;
* ``evolvability.tsv``: one row per sequence (:class:`~crmnet.design.evolvability.Evolvability` columns)
  and ``evolvability.png`` (robustness against predicted expression);
* ``heatmaps/`` : a position × base heat map for each of the first ``max_figures`` sequences.

The input is read in chunks; each chunk's arrays go to raw temporary files, and ``deltas.npz`` is
assembled from them at the end (an uncompressed zip of ``.npy`` members, as :func:`numpy.savez` writes),
so memory holds one chunk plus the identifiers, whatever the input size.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from crmnet.design.evolvability import EPSILON, Evolvability, evolvability
from crmnet.design.mutagenesis import BASES, Saturation, resolve_windows, saturate_codes
from crmnet.design.oracle import encode_sequences
from crmnet.errors import InputError
from crmnet.fsutil import atomic_path, safe_component

_ARRAYS = (("delta", "<f4"), ("reference", "|u1"), ("start", "<i8"), ("length", "<i8"), ("prediction", "<f4"))


class _ChunkedNpz:
    """Accumulates Saturation chunks in raw files under ``tmp``; :meth:`write` assembles the .npz."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.files = {name: open(tmp / f".{name}.raw", "wb") for name, _ in _ARRAYS}  # noqa: SIM115
        self.widths: list[tuple[int, int]] = []  # (rows, width) per chunk
        self.ids: list[str] = []

    def add(self, sat: Saturation, ids: list[str]) -> None:
        for name, dtype in _ARRAYS:
            self.files[name].write(np.ascontiguousarray(getattr(sat, name), dtype=dtype).tobytes())
        self.widths.append((len(sat), sat.delta.shape[1]))
        self.ids.extend(ids)

    def write(self, path: Path) -> None:
        for fh in self.files.values():
            fh.close()
        n = sum(rows for rows, _ in self.widths)
        width = max((w for _, w in self.widths), default=1)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, dtype in _ARRAYS:
                per_row = {"delta": 4, "reference": 1}.get(name)
                shape = (n, width, per_row) if name == "delta" else (n, width) if per_row else (n,)
                with zf.open(f"{name}.npy", "w", force_zip64=True) as out:
                    np.lib.format.write_array_header_2_0(out, {"descr": dtype, "fortran_order": False,
                                                               "shape": shape})
                    self._copy(name, dtype, per_row, width, out)
                (self.tmp / f".{name}.raw").unlink()
            with zf.open("ids.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.array(self.ids, dtype=str))

    def _copy(self, name: str, dtype: str, per_row: int | None, width: int, out) -> None:
        fill = {"delta": np.nan, "reference": 4}.get(name)
        with open(self.tmp / f".{name}.raw", "rb") as fh:
            for rows, w in self.widths:
                if per_row is None:
                    out.write(fh.read(rows * np.dtype(dtype).itemsize))
                    continue
                block = np.frombuffer(fh.read(rows * w * per_row * np.dtype(dtype).itemsize), dtype=dtype)
                block = block.reshape(rows, w, per_row)
                if w < width:  # pad a narrower chunk to the file's width
                    wide = np.full((rows, width, per_row), fill, dtype=dtype)
                    wide[:, :w] = block
                    block = wide
                out.write(block.tobytes())


def read_saturation(path: str | os.PathLike) -> tuple[Saturation, list[str]]:
    """Read ``deltas.npz`` back: (Saturation, identifiers)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            sat = Saturation(*(z[name] for name, _ in _ARRAYS))
            ids = [str(i) for i in z["ids"]]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(path, f"not a crmnet mutagenesis deltas.npz ({exc})") from None
    _check_saturation(path, sat, ids)
    return sat, ids


def _check_saturation(path, sat: Saturation, ids: list[str]) -> None:
    """Refuse arrays that disagree in shape, or values no mutagenesis writes (NaN predictions, infinities)."""
    n = len(sat.delta)
    if sat.delta.ndim != 3 or sat.delta.shape[2] != 4 or sat.reference.shape != sat.delta.shape[:2]:
        raise InputError(path, f"delta {sat.delta.shape} and reference {sat.reference.shape} are not (N, L, 4) and "
                               "(N, L): not a crmnet mutagenesis deltas.npz")
    rows = {"ids": len(ids), **{name: len(getattr(sat, name)) for name in ("start", "length", "prediction")}}
    for name, count in rows.items():
        if count != n or getattr(sat, name, np.empty(0)).ndim > 1:
            raise InputError(path, f"{name} has {count:,} rows where delta has {n:,}: the arrays disagree")
    if not np.isfinite(sat.prediction).all() or np.isinf(sat.delta).any():
        raise InputError(path, "holds NaN or infinite predictions or deltas: not a crmnet mutagenesis output")
    if n and not np.isfinite(sat.delta).any():
        raise InputError(path, "every delta is NaN: there is nothing to compute evolvability from")


def _mutant_lines(sat: Saturation, ids: list[str]) -> list[str]:
    row, col, base = np.nonzero(np.isfinite(sat.delta))
    keep = sat.reference[row, col] != base
    row, col, base = row[keep], col[keep], base[keep]
    delta = sat.delta[row, col, base]
    pred = sat.prediction[row] + delta
    position = sat.start[row] + col + 1
    ref = sat.reference[row, col]
    return [f"{ids[r]}\t{p}\t{'ACGTN'[a]}\t{BASES[b]}\t{y:.6g}\t{d:.6g}\n"
            for r, p, a, b, y, d in zip(row.tolist(), position.tolist(), ref.tolist(), base.tolist(),
                                        pred.tolist(), delta.tolist())]


def write_evolvability_rows(fh, ev: Evolvability, ids: list[str], header: bool = False) -> None:
    """Append one row per sequence to an evolvability TSV (``evolvability.tsv``; the Robustness page's TSV).

    Parameters
    ----------
    fh : a text file open for writing.
    ev : the :class:`Evolvability` of N sequences.
    ids : their N ids.
    header : write the header line first (``id`` and :attr:`Evolvability.COLUMNS`).

    Returns
    -------
    None
    """
    from crmnet.tables import tsv_row

    if header:
        fh.write(tsv_row(("id", *Evolvability.COLUMNS)))
    fh.writelines(tsv_row((ident, *row)) for ident, row in zip(ids, ev.rows()))


def mutagenesis_file(predictor, input_path: str | os.PathLike, out: str | os.PathLike, *,
                     window: tuple[int, int] | None = None, epsilon: float = EPSILON, max_figures: int = 10,
                     write_tsv: bool = True, chunk_size: int = 512, overwrite: bool = False,
                     progress: bool = True, label: str = "model", flanks: bool = True,
                     epsilon_source: str = "") -> dict:
    """Saturation mutagenesis of every sequence of a FASTA/TSV/CSV file into the directory ``out``.

    Parameters
    ----------
    predictor : a predictor (:mod:`crmnet.design.oracle`)
    input_path : sequences (the formats of ``crmnet predict``)
    out : output directory (atomic; refused if it exists unless ``overwrite``)
    window : (start, end) 0-based half-open, or None for the default window
    epsilon : robustness threshold; max_figures : heat maps drawn; write_tsv : write mutants.tsv
    chunk_size : sequences whose mutants are predicted together (memory: chunk_size × 3L mutants)
    flanks : complete each bare 80-nt variable region with the construct's flanks first (for a predictor
        that reads whole constructs: a model per :func:`crmnet.data.construct.expects_construct`, the simulator)
    epsilon_source : where ``epsilon`` came from, recorded with it in ``epsilon.json``

    Returns
    -------
    dict
        ``n`` sequences and ``mutants`` predicted, ``flanked``: regions completed with the flanks.
    """
    from crmnet.data.construct import add_flanks
    from crmnet.data.encoding import CRMNET
    from crmnet.data.readers import iter_records
    from crmnet.evaluation.predict import FileProgress
    from crmnet.plot.common import save_png
    from crmnet.plot.design import evolvability_figure, heatmap_figure

    source = str(input_path)
    if not Path(input_path).is_file():
        raise InputError(input_path, "no such file")
    robustness, predictions = [], []
    n = mutants = flanked = 0
    model = getattr(predictor, "model", None)  # the simulator reads whole constructs, as CRMnet does
    encoding = CRMNET if model is None else model.encoding
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir()
        (tmp / "heatmaps").mkdir()
        npz = _ChunkedNpz(tmp)
        tsv = open(tmp / "mutants.tsv", "w", encoding="utf-8") if write_tsv else None  # noqa: SIM115
        try:
            with open(tmp / "evolvability.tsv", "w", encoding="utf-8") as evo, \
                    FileProgress(input_path, "mutagenesis", enable=progress) as meter:
                if tsv:
                    tsv.write("id\tposition_1based\treference\talternative\tprediction\tdelta\n")
                for chunk in iter_records(input_path, chunk_size=chunk_size, on_raw=meter.on_raw):
                    meter.chunk(len(chunk.sequences))
                    chunk.ids = chunk.ids or [str(line) for line in chunk.lines]  # as crmnet predict names them
                    if flanks:
                        chunk.sequences, k = add_flanks(chunk.sequences, encoding)
                        flanked += k
                    codes, lengths = encode_sequences(chunk.sequences, source, chunk.lines)
                    windows = resolve_windows(codes, lengths, window, source, chunk.lines)
                    sat = saturate_codes(predictor, codes, lengths, windows)
                    ev = evolvability(sat, epsilon)
                    npz.add(sat, chunk.ids)
                    write_evolvability_rows(evo, ev, chunk.ids, header=evo.tell() == 0)
                    if tsv:
                        tsv.writelines(_mutant_lines(sat, chunk.ids))
                    for i in range(max(0, min(len(sat), max_figures - n))):
                        fig = heatmap_figure(sat, i, f"{chunk.ids[i]} ({label})")
                        name = safe_component(chunk.ids[i], "sequence")
                        save_png(fig, tmp / "heatmaps" / f"{n + i + 1:04d}_{name}.png")
                    robustness.append(ev.robustness)
                    predictions.append(ev.prediction)
                    n += len(sat)
                    mutants += int(ev.n_mutants.sum())
                    meter.done(len(sat))
        finally:
            if tsv:
                tsv.close()
        npz.write(tmp / "deltas.npz")
        (tmp / "epsilon.json").write_text(json.dumps({"epsilon": epsilon, "source": epsilon_source}) + "\n",
                                          encoding="utf-8")
        fig = evolvability_figure(np.concatenate(predictions), np.concatenate(robustness), epsilon, label)
        save_png(fig, tmp / "evolvability.png")
    return {"n": n, "mutants": mutants, "flanked": flanked}
