"""The evaluation directory: metrics.json/.csv, peers.*, comparisons.*, predictions/<test>.tsv, config.json.

Written by :func:`write_evaluation` atomically (nothing appears until it is complete); read back by
:func:`read_predictions_tsv` (``crmnet report``). metrics.json and peers.json carry, per test set, the
metric keys of :mod:`crmnet.evaluation.metrics`, ``bootstrap`` intervals when computed (whole groups
resampled with a group column), ``multimodality`` (pooled vs within-group r,
:mod:`crmnet.evaluation.modality`), ``coverage`` (test rows, rows scored, fraction) and ``duplicates``
(the policy and the counts).
comparisons.* carry each comparison's ``p`` (``p_method``) and ``q_bh``, its Benjamini-Hochberg q over all.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from crmnet.errors import InputError
from crmnet.evaluation.evaluate import Evaluation
from crmnet.evaluation.metrics import BOOTSTRAP_KEYS, METRIC_KEYS
from crmnet.evaluation.testsets import LoadedTest
from crmnet.fsutil import atomic_path, safe_component
from crmnet.tables import render


def _flat(metrics: dict) -> dict:
    row = {k: metrics[k] for k in METRIC_KEYS}
    if "coverage" in metrics:
        row["coverage"] = metrics["coverage"]["fraction"]
    boot = metrics.get("bootstrap")
    if boot:
        for k in BOOTSTRAP_KEYS:
            row[f"{k}_lo"], row[f"{k}_hi"] = boot[k]
    return row


def _write_csv(path: Path, rows: list[dict]) -> None:
    """Rows of dicts as CSV; the columns are the union of the keys, in order of appearance."""
    fields: list[str] = []
    for r in rows:
        fields.extend(k for k in r if k not in fields)
    path.write_text(render(fields, [[r.get(k, "") for k in fields] for r in rows], style="csv"), encoding="utf-8")


def json_safe(obj):
    """NaN/inf → None, so the files are strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _dump(path: Path, obj) -> None:
    path.write_text(json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _comparison_row(c: dict) -> dict:
    row = {k: v for k, v in c.items() if not k.endswith("_ci")}
    for k in ("delta_r", "delta_mse"):
        row[f"{k}_lo"], row[f"{k}_hi"] = c[f"{k}_ci"]
    return row


def write_evaluation(ev: Evaluation, out: str | os.PathLike, config: dict, overwrite: bool = False) -> Path:
    """Write the evaluation directory (see the module docstring); nothing appears until it is complete."""
    out = Path(out)
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir()
        if ev.primary is not None:
            primary = ev.reported(ev.primary)
            _dump(tmp / "metrics.json", primary)
            _write_csv(tmp / "metrics.csv", [{"test": t, **_flat(m)} for t, m in primary.items()])
        if len(ev.metrics) > 1 or ev.primary is None:
            _dump(tmp / "peers.json", {model: ev.reported(model) for model in ev.metrics})
            _write_csv(tmp / "peers.csv", [{"model": mod, "test": t, **_flat(m)}
                                           for mod in ev.metrics for t, m in ev.reported(mod).items()])
        if ev.comparisons:
            _dump(tmp / "comparisons.json", ev.comparisons)
            _write_csv(tmp / "comparisons.csv", [_comparison_row(c) for c in ev.comparisons])
        (tmp / "predictions").mkdir()
        for name, test in ev.tests.items():
            models = [m for m in ev.predictions if name in ev.predictions[m]]
            _write_predictions(tmp / "predictions" / f"{safe_component(name, 'test')}.tsv", test, models,
                               [ev.predictions[m][name] for m in models])
        _dump(tmp / "config.json", {**config, "primary": ev.primary, **ev.info})
    return out


def _write_predictions(path: Path, test: LoadedTest, models: list[str], preds: list[np.ndarray]) -> None:
    """Write the predictions table.

    Columns: id (1-based input line), sequence, measured, then one per model (empty: no prediction).
    """
    rows = [[line, seq, f"{y:.15g}", *["" if not np.isfinite(p[i]) else f"{p[i]:.9g}" for p in preds]]
            for i, (line, seq, y) in enumerate(zip(test.lines, test.sequences, test.measured))]
    path.write_text(render(["id", "sequence", "measured", *models], rows, style="tsv"), encoding="utf-8")


def read_predictions_tsv(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read a ``predictions/<test>.tsv`` back: measured (n,), {model: predictions (n,) with NaN}."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header[:3] != ["id", "sequence", "measured"] or len(header) < 4:
            raise InputError(path, "not a crmnet predictions table (expected id, sequence, measured, models...)",
                             line=1)
        rows = []
        for lineno, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            row = line.rstrip("\n").split("\t")
            if len(row) != len(header):  # zip(*rows) below would silently drop columns
                raise InputError(path, f"{len(row)} columns, expected {len(header)}", line=lineno)
            rows.append(row)
    cols = list(zip(*rows)) if rows else [()] * len(header)
    try:
        measured = np.array(cols[2], dtype=np.float64)
        preds = {m: np.array([float(v) if v else np.nan for v in cols[3 + k]]) for k, m in enumerate(header[3:])}
    except ValueError as exc:
        raise InputError(path, f"not a number: {exc}") from None
    return measured, preds
