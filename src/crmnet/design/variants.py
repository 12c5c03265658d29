"""Variant effects on pairs of sequences: ``Δ = prediction(variant) − prediction(reference)``.

:func:`variant_effects` is the library call. :func:`variants_file` reads a TSV/CSV with a header (the
reference and variant columns, optional further columns carried through unchanged), predicts every
distinct sequence once, and writes every input column plus ``ref_prediction``, ``alt_prediction`` and
``delta``; given a measured-Δ column it also writes ``metrics.json`` beside the output (the format of
``crmnet evaluate``: ``{name: compute_metrics(measured Δ, predicted Δ)}``).

A reference and a variant may differ in length (insertions, deletions): each is predicted as given, in
the model's own encoding (padded or truncated as :func:`crmnet.predict` does), and the count is reported.
The pairs are held in memory (their text and one float per distinct sequence): files of millions of
pairs fit; the distinct sequences are predicted in batches.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crmnet.data.encoding import without_invalid_hint
from crmnet.errors import InputError, OutputExistsError
from crmnet.fsutil import atomic_file


@dataclass
class VariantEffects:
    """ref_prediction, alt_prediction, delta : (n,) float32; n_unequal : pairs whose lengths differ.

    ref_members, alt_members : (n, K) each ensemble member's predictions (K = 1 for one model), for the
    intervals of :mod:`crmnet.design.uncertainty`.
    """

    ref_prediction: np.ndarray
    alt_prediction: np.ndarray
    delta: np.ndarray
    n_unequal: int
    ref_members: np.ndarray | None = None
    alt_members: np.ndarray | None = None


def variant_effects(model, ref: Sequence[str], alt: Sequence[str], *, batch_size: int = 1024, device=None,
                    source: str | None = None, lines: Sequence[int] | None = None) -> VariantEffects:
    """Predicted effect of each variant on its reference; distinct sequences are predicted once.

    Parameters
    ----------
    model : nn.Module
        Any registered model (``model.encoding`` set).
    ref, alt : list of str, same number
        Reference and variant sequences (lengths may differ).
    batch_size, device : as :func:`crmnet.predict`
    source, lines : where pair ``i`` came from (``FILE``, line ``lines[i]``), for error messages

    Returns
    -------
    VariantEffects
    """
    from crmnet.evaluation.predict import predict

    if len(ref) != len(alt):
        raise ValueError(f"{len(ref)} reference sequences but {len(alt)} variants")
    unique: dict[str, int] = {}
    first_line: list[int] = []
    for i, s in enumerate((*ref, *alt)):
        if s not in unique:
            unique[s] = len(unique)
            first_line.append(i)
    seqs = list(unique)
    try:
        members = predict(model, seqs, batch_size, device, source=source, first_line=0, members=True)
    except InputError as exc:
        if exc.line is None or exc.source != source:
            raise
        i = first_line[exc.line] % max(len(ref), 1)
        raise InputError(source, without_invalid_hint(exc).problem,  # no --invalid option here
                         line=int(lines[i]) if lines is not None else i + 1) from None
    ref_members, alt_members = members[[unique[s] for s in ref]], members[[unique[s] for s in alt]]
    ref_pred, alt_pred = ref_members.mean(axis=1), alt_members.mean(axis=1)
    unequal = sum(len(a) != len(b) for a, b in zip(ref, alt))
    return VariantEffects(ref_pred, alt_pred, alt_pred - ref_pred, unequal, ref_members, alt_members)


def _dialect(path: Path, first: str) -> str:
    if path.suffix.lower() in (".csv", ".csv.gz") or path.name.lower().endswith(".csv.gz"):
        return ","
    return "\t" if "\t" in first or "," not in first else ","


def read_pairs(path: str | os.PathLike, ref_column: str, alt_column: str,
               measured_column: str | None = None) -> tuple[list[str], list[list[str]], list[int]]:
    """Read a header TSV/CSV of pairs.

    Returns
    -------
    header : list of str
    rows : list of field lists (each as long as the header)
    lines : (n,) 1-based line numbers of the rows
    """
    from crmnet.data.streams import text_lines

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    lines_iter = ((k, t.rstrip("\r\n")) for k, t in text_lines(path, None, chunk_bytes=1 << 20) if t.strip())
    first = next(lines_iter, None)
    if first is None:
        raise InputError(path, "the file is empty: expected a header line and pairs of sequences")
    delimiter = _dialect(path, first[1])
    header = [h.strip() for h in next(csv.reader([first[1]], delimiter=delimiter))]
    for option, name in (("--ref-column", ref_column), ("--alt-column", alt_column),
                         ("--measured-column", measured_column)):
        if name is not None and name not in header:
            raise InputError(path, f"no column {name!r} ({option}); the header has: {', '.join(header)}",
                             line=first[0])
    rows, numbers = [], []
    for number, text in lines_iter:
        fields = next(csv.reader([text], delimiter=delimiter))
        if len(fields) != len(header):
            raise InputError(path, f"{len(fields)} fields but the header has {len(header)}", line=number)
        rows.append(fields)
        numbers.append(number)
    if not rows:
        raise InputError(path, "no pairs after the header line", line=first[0])
    return header, rows, numbers


def variants_file(model, pairs: str | os.PathLike, out: str | os.PathLike, *, ref_column: str = "reference",
                  alt_column: str = "variant", measured_column: str | None = None, batch_size: int = 1024,
                  device=None, overwrite: bool = False, interval: float | None = None,
                  checkpoint: str | None = None) -> dict:
    """Variant effects of every pair in ``pairs`` into the TSV ``out`` (+ ``metrics.json`` beside it).

    interval: a level in (0, 1) adds ``delta_lower`` and ``delta_upper`` (and ``delta_spread`` for an
    ensemble; :func:`crmnet.evaluation.calibrate.delta_interval`, which needs a calibrated checkpoint, named
    ``checkpoint`` in its error); with measured deltas their coverage and mean width go into the metrics.

    Returns
    -------
    dict
        ``n`` pairs, ``unique`` sequences predicted, ``unequal_lengths`` pairs, ``metrics`` (or None),
        ``metrics_path`` and ``interval_basis`` (or None).
    """
    from crmnet.data.readers import parse_value
    from crmnet.evaluation.metrics import compute_metrics
    from crmnet.evaluation.outputs import json_safe  # NaN -> null: strict JSON, as evaluate writes it

    source = str(pairs)
    header, rows, lines = read_pairs(pairs, ref_column, alt_column, measured_column)
    for name in ("ref_prediction", "alt_prediction", "delta"):
        if name in header:
            raise InputError(pairs, f"the input already has a column {name!r}; rename it")
    ri, ai = header.index(ref_column), header.index(alt_column)
    ref, alt = [r[ri].strip() for r in rows], [r[ai].strip() for r in rows]
    for seqs, option in ((ref, ref_column), (alt, alt_column)):
        empty = next((k for k, s in enumerate(seqs) if not s), None)
        if empty is not None:
            raise InputError(pairs, f"empty sequence in column {option!r}", line=lines[empty])
    measured = None
    if measured_column is not None:
        mi = header.index(measured_column)
        measured = np.array([parse_value(r[mi], f"measured Δ ({measured_column})", source, k)
                             for r, k in zip(rows, lines)])
    effects = variant_effects(model, ref, alt, batch_size=batch_size, device=device, source=source, lines=lines)
    extra = _interval_columns(model, effects, interval, checkpoint, measured)
    metrics = None
    metrics_path = Path(out).with_name(Path(out).stem + ".metrics.json")
    if measured is not None:
        if len(measured) < 3:
            raise InputError(pairs, f"--measured-column needs at least 3 pairs for metrics, got {len(measured)}")
        metrics = {Path(pairs).name: {**compute_metrics(measured, effects.delta), **extra.pop("metrics", {})}}
    if metrics is not None and metrics_path.exists() and not overwrite:
        raise OutputExistsError(metrics_path)
    with atomic_file(out, overwrite=overwrite) as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow([*header, "ref_prediction", "alt_prediction", "delta", *extra["columns"]])
        for r, a, b, d, *more in zip(rows, effects.ref_prediction.tolist(), effects.alt_prediction.tolist(),
                                     effects.delta.tolist(), *extra["values"]):
            writer.writerow([*r, f"{a:.7g}", f"{b:.7g}", f"{d:.7g}", *(f"{v:.7g}" for v in more)])
        if metrics is not None:
            with atomic_file(metrics_path, overwrite=overwrite) as mf:
                mf.write(json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
    return {"n": len(rows), "unique": len(set(ref) | set(alt)), "unequal_lengths": effects.n_unequal,
            "metrics": metrics, "metrics_path": metrics_path if metrics is not None else None,
            "interval_basis": extra.get("basis")}


def _interval_columns(model, effects: VariantEffects, interval, checkpoint, measured) -> dict:
    """The extra output columns (names, value arrays), the interval's basis and, with measurements, its coverage."""
    ensemble = effects.ref_members.shape[1] > 1
    if interval is None:
        spread = [(effects.alt_members - effects.ref_members).std(axis=1)] if ensemble else []
        return {"columns": ["delta_spread"] if ensemble else [], "values": spread}
    from crmnet.evaluation.calibrate import delta_interval

    found = delta_interval(model, effects, interval, checkpoint)
    out = {"columns": [*(["delta_spread"] if ensemble else []), "delta_lower", "delta_upper"],
           "values": [*([found["spread"]] if ensemble else []), found["lower"], found["upper"]],
           "basis": found["basis"]}
    if measured is not None:
        from crmnet.evaluation.conformal import coverage

        hit = coverage(measured, found["lower"], found["upper"])
        out["metrics"] = {"intervals": {str(interval): {"nominal": interval, "coverage": hit,
                                                       "mean_width": float((found["upper"] - found["lower"]).mean()),
                                                       "n": len(measured)}},
                          "interval_basis": found["basis"]}
    return out
