"""Scoring on the real test sets: a checkpoint, external prediction files, and the peer comparison.

**Test sets** are read by :mod:`crmnet.evaluation.testsets` (by name under the data directory, or a
user's file).

**Encoding convention.** A model is always fed the *raw* sequence, encoded in its own convention
(``model.encoding``). This matters for complex-random: ``Random_complex.csv``'s ``sequence`` column is
already Vaishnav's layout (last 110 nt kept, left-padded with N), so stripping the N padding cannot give
back the first bases of the 34 sequences longer than 110 nt; the raw file keeps them. CRMnet's layout
(end-padded/truncated to 112) differs from Vaishnav's for every raw sequence that is not exactly 110 nt
long (574 of 2,954, 19.4 %: 540 shorter, 34 longer, of which 14 are longer than 112 and lose their end). Published predictions are joined to a test set by the sequence as they spell
it (Vaishnav's 110-nt layout: ``seq110`` for complex-random) or by the raw sequence.

**Peers** (:data:`crmnet.data.catalogue.PEERS`): the Vaishnav transformer (``*_tpu_model.csv``), Vaishnav CNN (``*_gpu_model``),
DeepSEA/DanQ/DeepATT adaptations and LegNet (``legnet2023/*_Native.txt``, joined by sequence; its 196
extra rows have no measurement and are reported as unmatched). :func:`peer_table` scores each, and
compares every pair of models on the sequences both predicted (:func:`crmnet.evaluation.metrics.compare_models`).

**Outputs** (:func:`crmnet.evaluation.outputs.write_evaluation`, one directory, written atomically): ``metrics.json`` (one object
per test set: the metric keys of :mod:`crmnet.evaluation.metrics`, ``bootstrap`` intervals when computed) and
``metrics.csv`` for the evaluated model; ``peers.json``/``peers.csv`` (model → test set → metrics) and
``comparisons.json``/``.csv`` when more than one model is scored; ``predictions/<test>.tsv`` (id,
sequence, measured, one column per model); ``config.json`` (settings, sources, join counts, encodings).

**Related sequences** (``group_column``): a column of the test set (a test file, a registered test's CSV,
or a prediction file scored on its own measured values) naming each row's lineage, trajectory or class.
With it the bootstrap resamples whole groups and each comparison's ``p`` is the cluster-robust Wald test
of :func:`crmnet.evaluation.metrics.compare_models` instead of Steiger's. Every comparison of a run gets
``q_bh``, its Benjamini-Hochberg q over all the run's comparisons. Every scored set gets
``multimodality`` (:func:`crmnet.evaluation.modality.multimodality`): pooled r vs r within the groups, or
within the modes of the measured values when no groups are given; ``flag`` and ``message`` when it matters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crmnet.config import Config
from crmnet.data.catalogue import PEERS, TEST_SETS, data_dir
from crmnet.data.readers import Columns
from crmnet.errors import InputError
from crmnet.evaluation.metrics import adjust_pvalues, bootstrap_ci, compare_models, compute_metrics
from crmnet.evaluation.modality import multimodality
from crmnet.evaluation.testsets import LoadedTest, load_test_set, resolve_test, with_groups
from crmnet.progress import progress as progress_bar

DUPLICATE_POLICY = (
    "every test row is scored, repeated sequences included (each is its own measurement); predictions are "
    "looked up by sequence (ignoring case: the test's 110-nt join key, else its raw sequence), so repeated test "
    "sequences share one prediction; a sequence repeated in a prediction file must repeat its prediction "
    "(within 1e-6) and counts once, a different prediction for it is an error; a file scored on its own "
    "measured values is itself the test set, so every row of it is scored"
)
REPEAT_TOLERANCE = 1e-6
MULTIPLICITY = ("q_bh: Benjamini-Hochberg q of each comparison's p (Steiger's, or the cluster Wald test with "
                "--group-column) over all the comparisons of this evaluation")


@dataclass
class Joined:
    """Predictions aligned to a test set's rows: predicted (n,) with NaN where a row has none."""

    predicted: np.ndarray
    matched: int
    unmatched: int
    duplicates: int
    measured_max_abs_diff: float | None

    def info(self) -> dict:
        """The join's counts for the report: matched rows, unmatched and duplicate prediction rows."""
        return {"matched": self.matched, "unmatched_prediction_rows": self.unmatched,
                "duplicate_prediction_rows": self.duplicates,
                "measured_max_abs_diff": self.measured_max_abs_diff}


def _sequence_index(test: LoadedTest) -> dict[str, list[int]]:
    """Upper-case sequence → every test row spelled so (join key first, then the raw sequence)."""
    index: dict[str, list[int]] = {}
    for column in (test.keys, test.sequences):
        for i, s in enumerate(column):
            rows = index.setdefault(s.upper(), [])
            if i not in rows:
                rows.append(i)
    return index


def join_predictions(test: LoadedTest, sequences, predicted, measured=None, *, source=None, lines=None) -> Joined:
    """Align predictions to ``test`` by sequence under :data:`DUPLICATE_POLICY`.

    sequences, predicted (m,) [, measured (m,)]: the prediction file's rows (``lines``: their input lines,
    for errors naming ``source``). Returns predictions (n_test,) with NaN for test rows without one. A
    prediction row whose sequence is in no test row is counted as unmatched; ``measured``, when the file
    has its own, is compared with the test set's (largest absolute difference reported).
    """
    index = _sequence_index(test)
    out = np.full(len(test), np.nan)
    first: dict[int, int] = {}  # test row → prediction row that filled it
    unmatched = duplicates = 0
    diff = 0.0
    predicted = np.asarray(predicted, dtype=np.float64)
    for j, s in enumerate(sequences):
        rows = index.get(s.upper())
        if rows is None:
            unmatched += 1
            continue
        if rows[0] in first:
            k = first[rows[0]]
            if abs(predicted[j] - predicted[k]) > REPEAT_TOLERANCE:
                where = f" (first at line {lines[k]})" if lines is not None else ""
                raise InputError(source, f"sequence repeated with a different prediction: {predicted[j]:.7g} vs "
                                 f"{predicted[k]:.7g}{where}; one sequence, one prediction",
                                 line=None if lines is None else int(lines[j]))
            duplicates += 1
            continue
        out[rows] = predicted[j]
        first.update((i, j) for i in rows)
        if measured is not None:
            diff = max(diff, min(abs(float(measured[j]) - float(test.measured[i])) for i in rows))
    return Joined(out, int(np.isfinite(out).sum()), unmatched, duplicates, None if measured is None else diff)


def score(y, pred, n_boot: int = 0, seed: int = 0, groups=None) -> dict:
    """Metrics of ``pred`` against ``y``, with bootstrap intervals when asked.

    :func:`~crmnet.evaluation.metrics.compute_metrics` plus ``bootstrap`` intervals when ``n_boot`` > 0
    (resampling whole ``groups`` (n,) when given).
    """
    m = compute_metrics(y, pred)
    if n_boot > 0:
        m["bootstrap"] = bootstrap_ci(y, pred, n_boot=n_boot, seed=seed, groups=groups)
    return m


def _groups(test: LoadedTest, rows: np.ndarray):
    """The group labels of the selected rows (bool mask (n,)), or None without a group column."""
    return None if test.groups is None else np.asarray(test.groups, dtype=object)[rows]


@dataclass
class Evaluation:
    """Several models scored on several test sets, aligned row by row for comparisons.

    predictions[model][test]: (n_test,) predictions with NaN where the model has none; primary: the
    model whose metrics go to metrics.json (None for a peer table alone); coverage[model][test]: rows
    scored, duplicate counts and the multimodality check (see :meth:`add`). bar: a progress bar
    (:func:`crmnet.progress.progress`) moved once per score and per comparison (their bootstraps are most
    of the time), or None.
    """

    tests: dict[str, LoadedTest] = field(default_factory=dict)
    predictions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    metrics: dict[str, dict[str, dict]] = field(default_factory=dict)
    comparisons: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    primary: str | None = None
    coverage: dict[str, dict[str, dict]] = field(default_factory=dict)
    bar: Any = None

    def plan(self, steps: int) -> None:
        """``steps`` more scores or comparisons are coming (the bar's total, for its ETA)."""
        if self.bar is not None:
            self.bar.total = (self.bar.total or 0) + steps
            self.bar.refresh()

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def add(self, model: str, test: LoadedTest, predicted: np.ndarray, n_boot: int, seed: int, *,
            allow_partial: bool = False, source=None, repeated: int = 0) -> None:
        """Score ``predicted`` (n_test,) aligned to ``test`` on the rows that have a prediction.

        A model is scored once per test set (a second score would overwrite the first: refused). Test rows
        without a prediction are an error naming ``source`` unless ``allow_partial``; the coverage, the
        duplicate counts and the multimodality check go into :attr:`coverage` (and metrics.json). repeated:
        prediction rows that repeated a sequence (:data:`DUPLICATE_POLICY`).
        """
        if test.name in self.metrics.get(model, {}):
            raise InputError(source or test.source, f"{model!r} is already scored on {test.name!r}: give each "
                                                    "prediction file its own --label")
        self.tests.setdefault(test.name, test)
        have = np.isfinite(predicted)
        if not have.any():
            raise InputError(source or test.source, f"no predictions of {model!r} match the sequences of test set "
                                                    f"{test.name!r}")
        n, k = len(test), int(have.sum())
        if k < n and not allow_partial:
            raise InputError(source or test.source, f"predictions of {model!r} cover {k:,} of the {n:,} rows of test "
                             f"set {test.name!r} ({k / n:.1%}); pass --allow-partial to score the covered rows only")
        try:
            metrics = score(test.measured[have], predicted[have], n_boot, seed, _groups(test, have))
            modality = multimodality(test.measured[have], predicted[have], _groups(test, have))
        except ValueError as exc:  # fewer than 3 matched rows, or non-finite values
            raise InputError(test.source, f"cannot score {model!r}: {exc}") from None
        repeats = len(test.keys) - len({s.upper() for s in test.keys})
        self.coverage.setdefault(model, {})[test.name] = {
            "coverage": {"test_rows": n, "scored_rows": k, "fraction": k / n, "partial_allowed": allow_partial},
            "duplicates": {"policy": DUPLICATE_POLICY, "test_rows_repeating_a_sequence": repeats,
                           "prediction_rows_repeating_a_sequence": repeated},
            "multimodality": modality,
        }
        self.predictions.setdefault(model, {})[test.name] = predicted
        self.metrics.setdefault(model, {})[test.name] = metrics
        self._tick()

    def reported(self, model: str) -> dict[str, dict]:
        """``model``'s metrics per test set with its coverage and duplicate counts (metrics.json)."""
        return {t: {**m, **self.coverage.get(model, {}).get(t, {})} for t, m in self.metrics[model].items()}

    def compare(self, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> None:
        """Compare every pair of models on each test set.

        Compare every pair of models on each test set, on the sequences both predicted (whole groups
        resampled where the test has groups); ``q_bh``: each ``p`` adjusted over all the comparisons.
        """
        self.comparisons = []
        models = list(self.predictions)
        pairs = []
        for name in self.tests:
            have = [m for m in models if name in self.predictions[m]]
            pairs += [(name, a, b) for i, a in enumerate(have) for b in have[i + 1 :]]
        self.plan(len(pairs))
        for name, a, b in pairs:
            test = self.tests[name]
            pa, pb = self.predictions[a][name], self.predictions[b][name]
            both = np.isfinite(pa) & np.isfinite(pb)
            try:
                c = compare_models(test.measured[both], pa[both], pb[both], n_boot=max(n_boot, 1), seed=seed,
                                   level=level, groups=_groups(test, both))
            except ValueError as exc:  # too few shared rows, or a perfect correlation
                raise InputError(test.source, f"cannot compare {a!r} with {b!r}: {exc}") from None
            self.comparisons.append({"test": name, "model_a": a, "model_b": b, **c})
            self._tick()
        for c, q in zip(self.comparisons, adjust_pvalues([c["p"] for c in self.comparisons], "bh")):
            c["q_bh"] = float(q)


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
    """A sentence naming an encoding's layout, e.g. CRMnet's, Vaishnav's or LegNet's convention."""
    kept = "first" if enc.truncate == "end" else "last"
    text = f"{enc.body_length} nt"
    if enc.trim_start:
        text += f", the first {enc.trim_start} nt of each sequence dropped"
    pad = (f"padded at the {enc.pad} with the model's {len(enc.flank)}-nt plasmid flank" if enc.flank
           else f"N padding at the {enc.pad}")
    text += f", the {kept} {enc.body_length} nt kept, {pad}, channels {enc.channels}"
    if enc.prefix:
        text += f", after a fixed {len(enc.prefix)}-nt prefix"
    return text


def evaluate_model(model, tests: list[LoadedTest], evaluation: Evaluation | None = None, *, label: str,
                   batch_size: int = 1024, device=None, invalid: str = "error", n_boot: int = 1000,
                   seed: int = 0, progress: bool = False) -> Evaluation:
    """Predict every test set with ``model`` (raw sequences, the model's own encoding) and score it.

    Parameters
    ----------
    model : nn.Module
        Any crmnet model (``load_checkpoint``).
    tests : list of LoadedTest
        The test sets (:func:`load_test_set`).
    evaluation : Evaluation, optional
        Add to this one (e.g. a :func:`peer_table`, so the model is compared with the peers); None: a new one.
    label : str
        The model's name in the tables; a label already scored on a test set is refused.
    batch_size : int
        Sequences per forward pass (results do not depend on it).
    device : str or torch.device, optional
        Where to run; None: where the model is.
    invalid : {"error", "N"}
        A character outside ACGTN is an error naming its line, or is read as N.
    n_boot : int
        Bootstrap resamples of the 95 % intervals.
    seed : int
        Seed of the bootstraps.
    progress : bool
        Show each test set's prediction (sequences, rate, ETA; log lines when not on a terminal).

    Returns
    -------
    Evaluation
        ``evaluation`` (or a new one) with ``label``'s (n_test,) predictions and metrics per test set; this
        model is its ``primary``. A calibrated checkpoint also gets ``intervals`` and a
        ``calibration_note`` per test set (:func:`crmnet.evaluation.conformal.interval_coverage`).
    """
    from crmnet.evaluation.conformal import calibration_of, interval_coverage, mean_and_spread
    from crmnet.evaluation.predict import EncodingStats, predict_at_lines

    cal = calibration_of(model)
    ev = evaluation or Evaluation()
    ev.primary = label
    info = ev.info.setdefault("models", {}).setdefault(label, model_description(model))
    for test in tests:
        stats = EncodingStats()
        with progress_bar(total=len(test), desc=f"predict {test.name}", unit="seq", enable=progress) as bar:
            pred, spread = mean_and_spread(predict_at_lines(
                model, test.sequences, test.lines, batch_size=batch_size, device=device, invalid=invalid,
                source=str(test.source), stats=stats, on_batch=bar.update, members=True))
        # How the encoding policy changed the sequences goes on record: it states the convention used.
        info.setdefault("tests", {})[test.name] = {
            "source": str(test.source), "n": len(test),
            "truncated": stats.truncated, "padded": stats.padded, "mapped_to_n": stats.mapped_to_n,
            "encoding_message": stats.message(model.encoding),
        }
        ev.add(label, test, pred, n_boot, seed)
        if cal is not None:
            ev.coverage[label][test.name].update(interval_coverage(cal, test, pred, spread))
    return ev


def read_prediction_file(path: str | os.PathLike, columns: Columns | None = None):
    """A prediction file as a :class:`crmnet.data.readers.SequenceTable` with predictions.

    A header naming a prediction column ('Predicted Expression', the published peer files, or
    ``columns.predicted``) or a headerless sequence<TAB>prediction file (LegNet).
    """
    from crmnet.data.readers import read_records

    table = read_records(path, value="predicted", columns=columns)
    if table.predicted is None:
        raise InputError(path, "no predicted values found (expected a 'Predicted Expression' column, one named "
                               "with --predicted-column, or a sequence<TAB>prediction file)")
    return table


def evaluate_prediction_file(path: str | os.PathLike, test: LoadedTest | None, evaluation: Evaluation | None = None,
                             *, label: str, n_boot: int = 1000, seed: int = 0, primary: bool = True,
                             columns: Columns | None = None, allow_partial: bool = False,
                             group_column: str | None = None) -> Evaluation:
    """Score a prediction file: joined by sequence to ``test``, or on its own measured values.

    primary: the file's model is the evaluated one (metrics.json), unless another already is. See
    :data:`DUPLICATE_POLICY` and :meth:`Evaluation.add` for repeated sequences and partial coverage.
    group_column: read from the file when it is scored on its own (joined, the test's groups are used).
    """
    ev = evaluation or Evaluation()
    if primary:
        ev.primary = ev.primary or label
    table = read_prediction_file(path, with_groups(columns, group_column) if test is None else columns)
    info = ev.info.setdefault("models", {}).setdefault(label, {"model": label, "tests": {}})
    if test is None:
        if table.measured is None:
            raise InputError(path, "no measured values in this file: name the test set to join it to (--test), or "
                                   "its measured column (--measured-column)")
        seqs = list(table.sequences)
        test = LoadedTest(Path(path).stem, Path(path), seqs, seqs, np.asarray(table.measured, np.float64),
                          [int(x) for x in table.lines], str(path), table.sequence_column,
                          table.ids if group_column else None)
        ev.add(label, test, np.asarray(table.predicted, np.float64), n_boot, seed, source=path)
        info["tests"][test.name] = {"source": str(path), "n": len(seqs), "joined_to": None}
        return ev
    joined = join_predictions(test, table.sequences, table.predicted, table.measured, source=path, lines=table.lines)
    if joined.measured_max_abs_diff is not None and joined.measured_max_abs_diff > 1e-6:
        raise InputError(path, f"its measured values differ from test set {test.name!r} ({test.source}) by up "
                               f"to {joined.measured_max_abs_diff:.3g}: is it the right test set?")
    ev.add(label, test, joined.predicted, n_boot, seed, allow_partial=allow_partial, source=path,
           repeated=joined.duplicates)
    info["tests"][test.name] = {"source": str(path), "joined_to": str(test.source), **joined.info()}
    return ev


def peer_table(directory: str | os.PathLike | None = None, tests: list[str] | None = None,
               evaluation: Evaluation | None = None, *, n_boot: int = 1000, seed: int = 0,
               group_column: str | None = None) -> Evaluation:
    """Score every published peer prediction file found under the data directory on ``tests``.

    Parameters
    ----------
    directory : path-like, optional
        The data directory; None: ``$CRMNET_DATA_DIR`` or ``./data``.
    tests : list of str, optional
        Test-set names; None: all four.
    evaluation : Evaluation, optional
        Add to this one; None: a new one.
    n_boot : int
        Bootstrap resamples of the 95 % intervals.
    seed : int
        Seed of the bootstraps.
    group_column : str, optional
        A test-set column of related-sequence groups (cluster bootstrap).

    Returns
    -------
    Evaluation
        Every peer's (n_test,) predictions and metrics per test set.
    """
    root = data_dir(directory)
    ev = evaluation or Evaluation()
    names = tests or list(TEST_SETS)
    loaded = {n: ev.tests.get(n) or load_test_set(n, root, group_column) for n in names}
    found = [(label, name, root / files[name]) for label, files in PEERS.items() for name in names
             if name in files and (root / files[name]).is_file()]
    ev.plan(len(found))
    for label, name, path in found:
        evaluate_prediction_file(path, loaded[name], ev, label=label, n_boot=n_boot, seed=seed, primary=False)
    if not any(label in ev.metrics for label in PEERS):
        raise InputError(root, "no peer prediction files found (expected vaishnav2022/peer_predictions/...)")
    return ev


@dataclass
class EvaluateConfig(Config):
    """What ``crmnet evaluate`` scores and how (one field per command-line option).

    predictions: prediction files, each its own model: ``labels`` has one label per file (default: the
    file names), or one label for all when the files cover different test sets (one model's files).
    tests: test-set names or files (default: all four with a checkpoint or peers; with predictions one
    per file, or one for all). columns: header columns of user files (:class:`crmnet.data.readers.Columns`).
    group_column: a column of every test set giving each row's lineage/class (grouped statistics).
    """

    checkpoint: str | None = None
    predictions: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    peers: bool = False
    tests: tuple[str, ...] = ()
    data_dir: str | None = None
    bootstrap: int = 1000
    seed: int = 0
    batch_size: int = 1024
    device: str | None = None
    invalid: str = "error"
    allow_partial: bool = False
    columns: Columns = field(default_factory=Columns)
    quiet: bool = False
    group_column: str | None = None

    def check(self) -> None:
        """Raise InputError for options that cannot work together (before any work starts)."""
        if not (self.checkpoint or self.predictions or self.peers):
            raise InputError(None, "nothing to score: give --checkpoint, --predictions or --peers")
        if self.predictions and self.checkpoint:
            raise InputError(None, "give either --checkpoint or --predictions, not both (use two evaluations and "
                                   "`crmnet report` to compare them)")
        if self.bootstrap < 0:
            raise InputError(None, f"--bootstrap must be 0 or more, got {self.bootstrap}")
        if self.batch_size < 1:
            raise InputError(None, f"--batch-size must be at least 1, got {self.batch_size}")
        n = len(self.predictions)
        if self.predictions and self.tests and len(self.tests) not in (1, n):
            raise InputError(None, f"{n} prediction files but {len(self.tests)} --test names: give one test per "
                                   "file, or one for all")
        if len(self.labels) > 1 and len(self.labels) != n:
            raise InputError(None, f"{len(self.labels)} --label values for {n} prediction files: give one per file, "
                                   "or one")

    def file_labels(self) -> list[str]:
        """The label of each prediction file: its own, the shared one, or a unique name from its file."""
        if len(self.labels) == len(self.predictions):
            return list(self.labels)
        if self.labels:
            return [self.labels[0]] * len(self.predictions)
        labels: list[str] = []
        for path in self.predictions:
            stem, k = Path(path).stem, 2
            label = stem
            while label in labels:
                label, k = f"{stem} ({k})", k + 1
            labels.append(label)
        return labels


def run_evaluation(cfg: EvaluateConfig) -> tuple[Evaluation, dict]:
    """Score what ``cfg`` names; returns the evaluation and the settings for config.json.

    Each prediction file keeps its own label (a label scored twice on one test set is refused, never
    overwritten); the first file's model is the primary one (metrics.json), the others go to peers.json.
    """
    cfg.check()
    with progress_bar(total=0, desc="evaluate", unit="step", enable=not cfg.quiet) as bar:
        return _run(cfg, Evaluation(bar=bar))


def _run(cfg: EvaluateConfig, ev: Evaluation) -> tuple[Evaluation, dict]:
    """:func:`run_evaluation` with its progress bar open in ``ev.bar``."""
    config = {"command": "evaluate", "data_dir": str(data_dir(cfg.data_dir).resolve()), "bootstrap": cfg.bootstrap,
              "seed": cfg.seed, "duplicate_policy": DUPLICATE_POLICY, "allow_partial": cfg.allow_partial,
              "group_column": cfg.group_column, "multiplicity": MULTIPLICITY}
    if cfg.checkpoint:
        from crmnet.models.checkpoint import load_checkpoint

        model = load_checkpoint(cfg.checkpoint)
        tests = [resolve_test(t, cfg.data_dir, cfg.columns, cfg.group_column) for t in cfg.tests or TEST_SETS]
        label = cfg.labels[0] if cfg.labels else f"{model.checkpoint_meta.get('model', 'model')} " \
                                                 f"({Path(cfg.checkpoint).stem})"
        ev.plan(len(tests))
        evaluate_model(model, tests, ev, label=label, batch_size=cfg.batch_size, device=cfg.device,
                       invalid=cfg.invalid, n_boot=cfg.bootstrap, seed=cfg.seed, progress=not cfg.quiet)
        config.update(checkpoint=str(Path(cfg.checkpoint).resolve()), batch_size=cfg.batch_size)
    ev.plan(len(cfg.predictions))
    for i, (path, label) in enumerate(zip(cfg.predictions, cfg.file_labels())):
        test = None
        if cfg.tests:
            test = resolve_test(cfg.tests[i if len(cfg.tests) > 1 else 0], cfg.data_dir, cfg.columns,
                                cfg.group_column)
        evaluate_prediction_file(path, test, ev, label=label, n_boot=cfg.bootstrap, seed=cfg.seed,
                                 columns=cfg.columns, allow_partial=cfg.allow_partial,
                                 group_column=cfg.group_column)
    if cfg.predictions:
        config.update(predictions=[str(Path(p).resolve()) for p in cfg.predictions], labels=cfg.file_labels())
    if cfg.peers:
        names = [t for t in (cfg.tests or TEST_SETS) if t in TEST_SETS]
        peer_table(cfg.data_dir, names, ev, n_boot=cfg.bootstrap, seed=cfg.seed,
                   group_column=cfg.group_column)
    if len(ev.predictions) > 1:
        ev.compare(n_boot=cfg.bootstrap, seed=cfg.seed)
    config["tests"] = list(ev.tests)
    return ev, config


def summary_rows(ev: Evaluation) -> tuple[list[str], list[list]]:
    """The console table of an evaluation: header and one row per model and test set."""
    header = ["model", "test", "n", "coverage", "pearson_r", "pearson_r_squared (r²)",
              "R² (coefficient of determination)", "mse"]
    rows = []
    for model in ev.metrics:
        for test, m in ev.reported(model).items():
            cov = m.get("coverage", {}).get("fraction", 1.0)
            rows.append([model, test, f"{m['n']:,}", f"{cov:.1%}", f"{m['pearson_r']:.4f}",
                         f"{m['pearson_r_squared']:.4f}", f"{m['r2']:.4f}", f"{m['mse']:.4f}"])
    return header, rows

