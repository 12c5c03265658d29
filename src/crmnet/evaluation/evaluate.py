"""Scoring on the real test sets: a checkpoint, external prediction files, and the peer comparison.

**Test sets** (:data:`TEST_SETS`) are resolved by name under a data directory laid out as by
``crmnet download`` (``DIR/vaishnav2022/test/...``, ``DIR/legnet2023/...``); the directory is the
argument, else ``$CRMNET_DATA_DIR``, else ``./data``:

=================  ========================================  ======  =========================
name               file                                       N       model input column
=================  ========================================  ======  =========================
complex-native     vaishnav2022/test/Native_complex.csv       3,733   ``sequence`` (110 nt)
complex-random     vaishnav2022/test/Random_complex_raw.csv   2,954   ``0`` (raw, 95-125 nt)
defined-native     vaishnav2022/test/Native_defined.csv       3,782   ``sequence``
defined-random     vaishnav2022/test/Random_defined.csv       5,289   ``seq110`` (110 nt)
=================  ========================================  ======  =========================

**Encoding convention.** A model is always fed the *raw* sequence, encoded in its own convention
(``model.encoding``). This matters for complex-random: ``Random_complex.csv``'s ``sequence`` column is
already Vaishnav's layout (last 110 nt kept, left-padded with N), so stripping the N padding cannot give
back the first bases of the 34 sequences longer than 110 nt; the raw file keeps them. CRMnet's layout
(end-padded/truncated to 112) differs from Vaishnav's for every raw sequence that is not exactly 110 nt
long (574 of 2,954, 19.4 %: 540 shorter, 34 longer, of which 14 are longer than 112 and lose their end). Published predictions are joined to a test set by the sequence as they spell
it (Vaishnav's 110-nt layout: ``seq110`` for complex-random) or by the raw sequence.

**Peers** (:data:`PEERS`): the Vaishnav transformer (``*_tpu_model.csv``), Vaishnav CNN (``*_gpu_model``),
DeepSEA/DanQ/DeepATT adaptations and LegNet (``legnet2023/*_Native.txt``, joined by sequence; its 196
extra rows have no measurement and are reported as unmatched). :func:`peer_table` scores each, and
compares every pair of models on the sequences both predicted (:func:`crmnet.evaluation.metrics.compare_models`).

**Outputs** (:func:`write_evaluation`, one directory, written atomically): ``metrics.json`` (one object
per test set: the metric keys of :mod:`crmnet.evaluation.metrics`, ``bootstrap`` intervals when computed) and
``metrics.csv`` for the evaluated model; ``peers.json``/``peers.csv`` (model → test set → metrics) and
``comparisons.json``/``.csv`` when more than one model is scored; ``predictions/<test>.tsv`` (id,
sequence, measured, one column per model); ``config.json`` (settings, sources, join counts, encodings).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crmnet.errors import InputError
from crmnet.evaluation.metrics import (
    BOOTSTRAP_KEYS,
    METRIC_KEYS,
    bootstrap_ci,
    compare_models,
    compute_metrics,
)
from crmnet.fsutil import atomic_path


@dataclass(frozen=True)
class TestSetSpec:
    """A registered test set: its file under the data directory and the column of raw sequences.

    sequence_column: the raw sequences a model encodes (as :func:`crmnet.data.readers.read_records` picks it);
    medium: ``complex`` (YPD) or ``defined`` (SC-Ura).
    """

    name: str
    path: str
    sequence_column: str
    medium: str
    description: str


TEST_SETS: dict[str, TestSetSpec] = {
    t.name: t
    for t in (
        TestSetSpec("complex-native", "vaishnav2022/test/Native_complex.csv", "sequence", "complex",
                "native yeast promoter fragments, complex medium"),
        TestSetSpec("complex-random", "vaishnav2022/test/Random_complex_raw.csv", "0", "complex",
                "high-quality random promoters, complex medium (raw variable-length sequences)"),
        TestSetSpec("defined-native", "vaishnav2022/test/Native_defined.csv", "sequence", "defined",
                "native yeast promoter fragments, defined medium"),
        TestSetSpec("defined-random", "vaishnav2022/test/Random_defined.csv", "seq110", "defined",
                "random promoters, defined medium"),
    )
}

_PEER_FILE = "vaishnav2022/peer_predictions/{origin}_{medium}_{tag}_model.csv"
_VAISHNAV_PEERS = {
    "Vaishnav transformer": "tpu",
    "Vaishnav CNN": "gpu",
    "DeepSEA (adapted)": "DeepSEA",
    "DanQ (adapted)": "DanQ",
    "DeepATT (adapted)": "DeepAtt",
}


def _peer_files() -> dict[str, dict[str, str]]:
    """Model label → {test name → file under the data directory} (existence is checked at use)."""
    peers: dict[str, dict[str, str]] = {}
    for label, tag in _VAISHNAV_PEERS.items():
        peers[label] = {
            name: _PEER_FILE.format(origin=name.split("-")[1].capitalize(), medium=t.medium, tag=tag)
            for name, t in TEST_SETS.items()
        }
    peers["LegNet"] = {f"{m}-native": f"legnet2023/{m}_Native.txt" for m in ("complex", "defined")}
    return peers


PEERS: dict[str, dict[str, str]] = _peer_files()


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: ``path``, else ``$CRMNET_DATA_DIR``, else ``./data``."""
    return Path(path or os.environ.get("CRMNET_DATA_DIR") or "data")


@dataclass
class LoadedTest:
    """A test set in memory. sequences: model inputs; keys: join keys; measured: (n,) float64."""

    name: str
    source: Path
    sequences: list[str]
    keys: list[str]
    measured: np.ndarray
    lines: list[int]
    description: str = ""
    sequence_column: str | None = None

    def __len__(self) -> int:
        return len(self.sequences)


def _loaded(name: str, path: Path, description: str) -> LoadedTest:
    """Read a test file; the join key of each row is its sequence in Vaishnav's 110-nt layout (last 110 nt,
    left-padded with N), which is how the published prediction files spell the sequences."""
    from crmnet.data.encoding import VAISHNAV, decode, encode
    from crmnet.data.readers import read_records

    table = read_records(path, value="measured")
    if table.measured is None:
        raise InputError(path, "no measured values: a test set needs a 'Measured Expression' column "
                               "(or the sequence<TAB>measured format)")
    keys = decode(encode(table.sequences, VAISHNAV, source=str(path))[0])
    return LoadedTest(name, path, table.sequences, keys, np.asarray(table.measured, np.float64),
                      [int(x) for x in table.lines], description, table.sequence_column)


def load_test_set(name: str, directory: str | os.PathLike | None = None) -> LoadedTest:
    """Load a registered test set by name from the data directory (see :func:`data_dir`)."""
    if name not in TEST_SETS:
        raise InputError(None, f"unknown test set {name!r}; known: {', '.join(TEST_SETS)} (or give a file)")
    spec = TEST_SETS[name]
    path = data_dir(directory) / spec.path
    if not path.is_file():
        raise InputError(path, f"test set {name!r} not found (run `crmnet download` or pass --data-dir)")
    test = _loaded(name, path, spec.description)
    if test.sequence_column != spec.sequence_column:
        raise InputError(path, f"sequences were read from column {test.sequence_column!r}, expected "
                               f"{spec.sequence_column!r}: not the published file?", line=1)
    return test


def load_test_file(path: str | os.PathLike) -> LoadedTest:
    """A user's test file (CSV with 'Measured Expression', or sequence<TAB>measured) as a test set."""
    path = Path(path)
    return _loaded(path.stem, path, str(path))


def resolve_test(name_or_file: str, directory: str | os.PathLike | None = None) -> LoadedTest:
    """A registered test-set name, or else a path to a file with sequences and measured values."""
    if name_or_file in TEST_SETS:
        return load_test_set(name_or_file, directory)
    if Path(name_or_file).is_file():
        return load_test_file(name_or_file)
    raise InputError(name_or_file, f"neither a test set ({', '.join(TEST_SETS)}) nor an existing file")


@dataclass
class Joined:
    """Predictions aligned to a test set's rows: predicted (n,) with NaN where a row has none."""

    predicted: np.ndarray
    matched: int
    unmatched: int
    duplicates: int
    measured_max_abs_diff: float | None

    def info(self) -> dict:
        return {"matched": self.matched, "unmatched_prediction_rows": self.unmatched,
                "duplicate_prediction_rows": self.duplicates,
                "measured_max_abs_diff": self.measured_max_abs_diff}


def join_predictions(test: LoadedTest, sequences, predicted, measured=None) -> Joined:
    """Align predictions to ``test`` by sequence (join key first, then the raw sequence; case-insensitive).

    A prediction row whose sequence is in neither column is counted as unmatched; a repeated sequence
    keeps its first prediction. ``measured``, when the prediction file has its own, is compared with the
    test set's (largest absolute difference reported).
    """
    index: dict[str, int] = {}
    for column in (test.keys, test.sequences):
        for i, s in enumerate(column):
            index.setdefault(s.upper(), i)
    out = np.full(len(test), np.nan)
    filled = np.zeros(len(test), dtype=bool)
    unmatched = duplicates = 0
    diff = 0.0
    predicted = np.asarray(predicted, dtype=np.float64)
    for j, s in enumerate(sequences):
        i = index.get(s.upper())
        if i is None:
            unmatched += 1
        elif filled[i]:
            duplicates += 1
        else:
            out[i] = predicted[j]
            filled[i] = True
            if measured is not None:
                diff = max(diff, abs(float(measured[j]) - float(test.measured[i])))
    return Joined(out, int(filled.sum()), unmatched, duplicates, None if measured is None else diff)


def score(y, pred, n_boot: int = 0, seed: int = 0) -> dict:
    """:func:`~crmnet.evaluation.metrics.compute_metrics` plus ``bootstrap`` intervals when ``n_boot`` > 0."""
    m = compute_metrics(y, pred)
    if n_boot > 0:
        m["bootstrap"] = bootstrap_ci(y, pred, n_boot=n_boot, seed=seed)
    return m


@dataclass
class Evaluation:
    """Several models scored on several test sets, aligned row by row for comparisons.

    predictions[model][test]: (n_test,) predictions with NaN where the model has none; primary: the
    model whose metrics go to metrics.json (None for a peer table alone).
    """

    tests: dict[str, LoadedTest] = field(default_factory=dict)
    predictions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    metrics: dict[str, dict[str, dict]] = field(default_factory=dict)
    comparisons: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    primary: str | None = None

    def add(self, model: str, test: LoadedTest, predicted: np.ndarray, n_boot: int, seed: int) -> None:
        """Score ``predicted`` (aligned to ``test``) on the rows that have a prediction."""
        self.tests.setdefault(test.name, test)
        have = np.isfinite(predicted)
        if not have.any():
            raise InputError(test.source, f"no predictions of {model!r} match the sequences of this test set")
        try:
            metrics = score(test.measured[have], predicted[have], n_boot, seed)
        except ValueError as exc:  # fewer than 3 matched rows, or non-finite values
            raise InputError(test.source, f"cannot score {model!r}: {exc}") from None
        self.predictions.setdefault(model, {})[test.name] = predicted
        self.metrics.setdefault(model, {})[test.name] = metrics

    def compare(self, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> None:
        """Compare every pair of models on each test set, on the sequences both predicted."""
        self.comparisons = []
        models = list(self.predictions)
        for name, test in self.tests.items():
            have = [m for m in models if name in self.predictions[m]]
            for i, a in enumerate(have):
                for b in have[i + 1 :]:
                    pa, pb = self.predictions[a][name], self.predictions[b][name]
                    both = np.isfinite(pa) & np.isfinite(pb)
                    try:
                        c = compare_models(test.measured[both], pa[both], pb[both], n_boot=max(n_boot, 1),
                                           seed=seed, level=level)
                    except ValueError as exc:  # too few shared rows, or a perfect correlation
                        raise InputError(test.source, f"cannot compare {a!r} with {b!r}: {exc}") from None
                    self.comparisons.append({"test": name, "model_a": a, "model_b": b, **c})


def model_description(model) -> dict:
    """Provenance of a loaded model for config.json: registry name, encoding, checkpoint metadata."""
    meta = getattr(model, "checkpoint_meta", None) or {}
    return {
        "model": meta.get("model", type(model).__name__),
        "encoding": model.encoding.to_dict(),
        "encoding_description": describe_encoding(model.encoding),
        "checkpoint_provenance": meta.get("provenance"),
    }


def describe_encoding(enc) -> str:
    """A sentence naming an encoding's layout, e.g. CRMnet's or Vaishnav's convention."""
    kept = "first" if enc.truncate == "end" else "last"
    text = (f"{enc.body_length} nt, the {kept} {enc.body_length} nt kept, N padding at the {enc.pad}, "
            f"channels {enc.channels}")
    if enc.prefix:
        text += f", after a fixed {len(enc.prefix)}-nt prefix"
    return text


def evaluate_model(model, tests: list[LoadedTest], evaluation: Evaluation | None = None, *, label: str,
                   batch_size: int = 1024, device=None, invalid: str = "error", n_boot: int = 1000,
                   seed: int = 0) -> Evaluation:
    """Predict every test set with ``model`` (raw sequences, the model's own encoding) and score it."""
    from crmnet.evaluation.predict import EncodingStats, predict_at_lines

    ev = evaluation or Evaluation()
    ev.primary = label
    info = ev.info.setdefault("models", {}).setdefault(label, model_description(model))
    for test in tests:
        stats = EncodingStats()
        pred = predict_at_lines(model, test.sequences, test.lines, batch_size=batch_size, device=device,
                                invalid=invalid, source=str(test.source), stats=stats)
        # How the encoding policy changed the sequences goes on record: it states the convention used.
        info.setdefault("tests", {})[test.name] = {
            "source": str(test.source), "n": len(test),
            "truncated": stats.truncated, "padded": stats.padded, "mapped_to_n": stats.mapped_to_n,
            "encoding_message": stats.message(model.encoding),
        }
        ev.add(label, test, pred.astype(np.float64), n_boot, seed)
    return ev


def read_prediction_file(path: str | os.PathLike):
    """A prediction file as a :class:`crmnet.data.readers.SequenceTable` with predictions: a CSV with a 'Predicted
    Expression' column (the published peer files) or a headerless sequence<TAB>prediction file (LegNet)."""
    from crmnet.data.readers import read_records

    table = read_records(path, value="predicted")
    if table.predicted is None:
        raise InputError(path, "no predicted values found (expected a 'Predicted Expression' column or a "
                               "sequence<TAB>prediction file)")
    return table


def evaluate_prediction_file(path: str | os.PathLike, test: LoadedTest | None, evaluation: Evaluation | None = None,
                             *, label: str, n_boot: int = 1000, seed: int = 0, primary: bool = True) -> Evaluation:
    """Score a prediction file: joined by sequence to ``test``, or on its own measured values.

    primary: the file's model is the evaluated one (metrics.json), unless another already is.
    """
    ev = evaluation or Evaluation()
    if primary:
        ev.primary = ev.primary or label
    table = read_prediction_file(path)
    info = ev.info.setdefault("models", {}).setdefault(label, {"model": label, "tests": {}})
    if test is None:
        if table.measured is None:
            raise InputError(path, "no measured values in this file: name the test set to join it to (--test)")
        seqs = list(table.sequences)
        test = LoadedTest(Path(path).stem, Path(path), seqs, seqs, np.asarray(table.measured, np.float64),
                          [int(x) for x in table.lines], str(path), table.sequence_column)
        ev.add(label, test, np.asarray(table.predicted, np.float64), n_boot, seed)
        info["tests"][test.name] = {"source": str(path), "n": len(seqs), "joined_to": None}
        return ev
    joined = join_predictions(test, table.sequences, table.predicted, table.measured)
    if joined.measured_max_abs_diff is not None and joined.measured_max_abs_diff > 1e-6:
        raise InputError(path, f"its measured values differ from test set {test.name!r} ({test.source}) by up "
                               f"to {joined.measured_max_abs_diff:.3g}: is it the right test set?")
    ev.add(label, test, joined.predicted, n_boot, seed)
    info["tests"][test.name] = {"source": str(path), "joined_to": str(test.source), **joined.info()}
    return ev


def peer_table(directory: str | os.PathLike | None = None, tests: list[str] | None = None,
               evaluation: Evaluation | None = None, *, n_boot: int = 1000, seed: int = 0) -> Evaluation:
    """Score every published peer prediction file found under the data directory on ``tests``."""
    root = data_dir(directory)
    ev = evaluation or Evaluation()
    names = tests or list(TEST_SETS)
    loaded = {n: ev.tests.get(n) or load_test_set(n, root) for n in names}
    for label, files in PEERS.items():
        for name in names:
            rel = files.get(name)
            if rel is None or not (root / rel).is_file():
                continue
            evaluate_prediction_file(root / rel, loaded[name], ev, label=label, n_boot=n_boot, seed=seed,
                                     primary=False)
    if not any(label in ev.metrics for label in PEERS):
        raise InputError(root, "no peer prediction files found (expected vaishnav2022/peer_predictions/...)")
    return ev


def _flat(metrics: dict) -> dict:
    row = {k: metrics[k] for k in METRIC_KEYS}
    boot = metrics.get("bootstrap")
    if boot:
        for k in BOOTSTRAP_KEYS:
            row[f"{k}_lo"], row[f"{k}_hi"] = boot[k]
    return row


def _write_csv(path: Path, rows: list[dict]) -> None:
    fields: list[str] = []
    for r in rows:
        fields.extend(k for k in r if k not in fields)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _json_safe(obj):
    """NaN/inf → None, so the files are strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _dump(path: Path, obj) -> None:
    path.write_text(json.dumps(_json_safe(obj), indent=2, allow_nan=False) + "\n", encoding="utf-8")


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
            primary = ev.metrics[ev.primary]
            _dump(tmp / "metrics.json", primary)
            _write_csv(tmp / "metrics.csv", [{"test": t, **_flat(m)} for t, m in primary.items()])
        if len(ev.metrics) > 1 or ev.primary is None:
            _dump(tmp / "peers.json", ev.metrics)
            _write_csv(tmp / "peers.csv", [{"model": mod, "test": t, **_flat(m)}
                                           for mod, row in ev.metrics.items() for t, m in row.items()])
        if ev.comparisons:
            _dump(tmp / "comparisons.json", ev.comparisons)
            _write_csv(tmp / "comparisons.csv", [_comparison_row(c) for c in ev.comparisons])
        (tmp / "predictions").mkdir()
        for name, test in ev.tests.items():
            models = [m for m in ev.predictions if name in ev.predictions[m]]
            _write_predictions(tmp / "predictions" / f"{name}.tsv", test, models,
                               [ev.predictions[m][name] for m in models])
        _dump(tmp / "config.json", {**config, "primary": ev.primary, **ev.info})
    return out


def _write_predictions(path: Path, test: LoadedTest, models: list[str], preds: list[np.ndarray]) -> None:
    """id (1-based input line), sequence, measured, then one column per model (empty: no prediction)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\t".join(["id", "sequence", "measured", *models]) + "\n")
        for i, (line, seq, y) in enumerate(zip(test.lines, test.sequences, test.measured)):
            vals = ["" if not np.isfinite(p[i]) else f"{p[i]:.9g}" for p in preds]
            fh.write("\t".join([str(line), seq, f"{y:.15g}", *vals]) + "\n")


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
