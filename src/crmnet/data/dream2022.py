"""The Random Promoter DREAM Challenge 2022 files (de-Boer-Lab/random-promoter-dream-challenge-2022).

Layout under a data directory ``DIR`` (what ``crmnet download dream2022`` writes, the same as the
repository's ``data/`` folder)::

    DIR/dream2022/filtered_test_data_with_MAUDE_expression.txt  sequence<TAB>MAUDE expression, line i = index i-1
    DIR/dream2022/test_subset_ids/<subset>.csv                  the subsets: pos + sequence, or alt/ref pairs
    DIR/dream2022/public_leaderboard_ids/<subset>_exp_indices.json   public-leaderboard indices (+ values)
    DIR/dream2022/public_leaderboard_ids/ground.json            the 9,045 public measurements by index
    DIR/dream2022/plasmid.json, demo_train.txt                  plasmid around the insert; training-format demo

Test indices are 0-based positions in the 71,103-sequence test set (the challenge's own numbering, as in
its files); error messages name 1-based file lines. Every reader returns plain numpy arrays; a malformed
file is an :class:`~crmnet.errors.InputError` naming the file, the line and the problem.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crmnet.errors import InputError

N_TEST = 71_103
MEDIUM = "chardonnay"  # the training and test yeast grew in Chardonnay grape must (Rafi et al. 2025)
FOLDER = "dream2022"
TEST_FILE = "filtered_test_data_with_MAUDE_expression.txt"
GROUND_FILE = "public_leaderboard_ids/ground.json"
# Subset name (the names of the official scorer's printout and scores.json) → (its CSV, its public-index JSON)
SUBSET_FILES: dict[str, tuple[str, str]] = {
    "high": ("high_exp_seqs.csv", "high_exp_indices.json"),
    "low": ("low_exp_seqs.csv", "low_exp_indices.json"),
    "yeast": ("yeast_seqs.csv", "yeast_exp_indices.json"),
    "random": ("all_random_seqs.csv", "random_exp_indices.json"),
    "challenging": ("challenging_seqs.csv", "challenging_exp_indices.json"),
    "SNVs": ("all_SNVs_seqs.csv", "SNVs_exp_indices.json"),
    "motif_perturbation": ("motif_perturbation_seqs.csv", "motif_perturbation_exp_indices.json"),
    "motif_tiling": ("motif_tiling_seqs.csv", "motif_tiling_exp_indices.json"),
}
PAIR_SUBSETS = ("SNVs", "motif_perturbation", "motif_tiling")


@dataclass
class Subset:
    """One test subset as its CSV lists it.

    indices: (n,) int64 unique test indices (single subsets), or (n, 2) unique (alt, ref) index pairs
    in first-seen order (pair subsets). sequences: test index → sequence for every index the file names.
    """

    name: str
    indices: np.ndarray
    sequences: dict[int, str] = field(default_factory=dict)

    @property
    def paired(self) -> bool:
        """True for the alt/ref pair subsets."""
        return self.indices.ndim == 2


def _index(text: str, path: Path, line: int, what: str) -> int:
    """A test index read from a file: an integer in [0, N_TEST) (a float spelling of one is accepted)."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(path, f"{what} {text!r} is not a test index", line=line) from None
    if not value.is_integer() or not 0 <= value < N_TEST:
        raise InputError(path, f"{what} {text!r} is not a test index (an integer in 0..{N_TEST - 1})", line=line)
    return int(value)


def _sequence(text: str, path: Path, line: int, what: str) -> str:
    seq = text.strip().upper()
    if not seq or set(seq) - set("ACGTN"):
        raise InputError(path, f"{what} {text[:40]!r} is not a DNA sequence (A, C, G, T, N)", line=line)
    return seq


def read_subset(path: str | os.PathLike, name: str | None = None) -> Subset:
    """Read one ``test_subset_ids/*.csv``: ``pos`` + ``sequence``, or ``alt_pos``/``ref_pos`` + sequences.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV (a header row; the ``exp`` columns of the public copies are empty and ignored).
    name : str, optional
        The subset's name (default: the file name without ``.csv``).

    Returns
    -------
    Subset
        Unique indices (n,) or unique (alt, ref) pairs (n, 2), and the sequences by index.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None:
            raise InputError(path, "empty file")
        col = {h: i for i, h in enumerate(header)}
        paired = "alt_pos" in col and "ref_pos" in col
        needed = ("alt_pos", "ref_pos", "alt_sequence", "ref_sequence") if paired else ("pos", "sequence")
        missing = [c for c in needed if c not in col]
        if missing:
            raise InputError(path, f"no column {missing[0]!r} (header: {', '.join(header)})", line=1)
        keys: dict = {}  # insertion-ordered set of indices or pairs
        sequences: dict[int, str] = {}
        for line, row in enumerate(rows, start=2):
            if len(row) < len(header):
                raise InputError(path, f"{len(row)} fields, the header has {len(header)}", line=line)
            parts = ("alt", "ref") if paired else ("",)
            found = []
            for part in parts:
                pos = _index(row[col[f"{part}_pos" if part else "pos"]], path, line, f"{part or 'test'} index")
                seq = _sequence(row[col[f"{part}_sequence" if part else "sequence"]], path, line, "sequence")
                if sequences.setdefault(pos, seq) != seq:
                    raise InputError(path, f"test index {pos} has two different sequences", line=line)
                found.append(pos)
            keys[tuple(found) if paired else found[0]] = None
    shape = (-1, 2) if paired else (-1,)
    indices = np.array(list(keys), dtype=np.int64).reshape(shape)
    if not paired:
        indices = np.unique(indices)
    return Subset(name or path.stem, indices, sequences)


def _json_object(path: Path) -> dict:
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not JSON ({exc})", line=getattr(exc, "lineno", None)) from None
    if not isinstance(data, dict):
        raise InputError(path, f"expected a JSON object keyed by test index, found a {type(data).__name__}")
    return data


def _json_value(value, path: Path, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise InputError(path, f"the value of {key!r} is {value!r}, not a finite number")
    return float(value)


def read_public_indices(path: str | os.PathLike) -> np.ndarray:
    """Read a ``public_leaderboard_ids/*_exp_indices.json``: its keys as test indices.

    Parameters
    ----------
    path : str or os.PathLike
        A JSON object keyed ``"index"`` (single subsets) or ``"alt,ref"`` (pair subsets).

    Returns
    -------
    numpy.ndarray
        (n,) int64 indices, or (n, 2) (alt, ref) pairs, in the file's order.
    """
    path = Path(path)
    keys = list(_json_object(path))
    if not keys:
        return np.zeros(0, dtype=np.int64)
    width = len(keys[0].split(","))
    rows = []
    for key in keys:
        parts = key.split(",")
        if len(parts) != width or width not in (1, 2):
            raise InputError(path, f"key {key!r} is neither an index nor an 'alt,ref' pair like the first key")
        rows.append([_index(p, path, None, f"key {key!r}:") for p in parts])
    return np.array(rows, dtype=np.int64).reshape((-1, 2) if width == 2 else (-1,))


def read_ground(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``ground.json``: the public-leaderboard measurements.

    Parameters
    ----------
    path : str or os.PathLike
        A JSON object ``{"index": MAUDE expression}``.

    Returns
    -------
    indices : numpy.ndarray
        (n,) int64 test indices, sorted.
    values : numpy.ndarray
        (n,) float64 measured expression at those indices.
    """
    path = Path(path)
    data = _json_object(path)
    pairs = sorted((_index(k, path, None, "key"), _json_value(v, path, k)) for k, v in data.items())
    return np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.float64)


def read_test_expression(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read the labelled test set: ``sequence<TAB>MAUDE expression``, one line per test index.

    Parameters
    ----------
    path : str or os.PathLike
        ``filtered_test_data_with_MAUDE_expression.txt`` (71,103 lines; line i holds index i - 1).

    Returns
    -------
    sequences : list of str
        (N_TEST,) the 110-nt test sequences in index order.
    values : numpy.ndarray
        (N_TEST,) float64 measured expression.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    sequences, values = [], []
    with open(path, encoding="utf-8") as fh:
        for line, text in enumerate(fh, start=1):
            fields = text.rstrip("\r\n").split("\t")
            if len(fields) < 2:
                raise InputError(path, "expected sequence<TAB>expression", line=line)
            sequences.append(_sequence(fields[0], path, line, "sequence"))
            try:
                value = float(fields[1])
            except ValueError:
                raise InputError(path, f"expression {fields[1]!r} is not a number", line=line) from None
            if not np.isfinite(value):
                raise InputError(path, f"expression {fields[1]!r} is not finite", line=line)
            values.append(value)
    if len(values) != N_TEST:
        raise InputError(path, f"{len(values):,} lines; the DREAM 2022 test set has {N_TEST:,} (one per index)")
    return sequences, np.array(values, dtype=np.float64)


def read_submission(path: str | os.PathLike) -> tuple[np.ndarray, list[str] | None]:
    """Read predictions in one of the challenge's submission formats.

    Parameters
    ----------
    path : str or os.PathLike
        ``*.json``: the leaderboard format, ``{"index": prediction}`` (any subset of the indices), or a
        text file in the final format (``sample_submission.txt``, LegNet's ``results.txt``):
        ``sequence<TAB>prediction``, one line per test index in index order.

    Returns
    -------
    predictions : numpy.ndarray
        (N_TEST,) float64 predictions by test index; NaN where the file has none.
    sequences : list of str or None
        (N_TEST,) the text format's sequences, upper case (to check the order); None for JSON.
    """
    path = Path(path)
    out = np.full(N_TEST, np.nan)
    if path.suffix.lower() == ".json":
        for key, value in _json_object(path).items():
            out[_index(key, path, None, "key")] = _json_value(value, path, key)
        return out, None
    if not path.is_file():
        raise InputError(path, "no such file")
    sequences: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for n, text in enumerate(fh, start=1):
            fields = text.rstrip("\r\n").split("\t")
            if len(fields) != 2 or n > N_TEST:
                why = "expected sequence<TAB>prediction" if len(fields) != 2 else f"more than {N_TEST:,} lines"
                raise InputError(path, why, line=n)
            try:
                out[n - 1] = float(fields[1])
            except ValueError:
                raise InputError(path, f"prediction {fields[1]!r} is not a number", line=n) from None
            if not np.isfinite(out[n - 1]):
                raise InputError(path, f"prediction {fields[1]!r} is not finite", line=n)
            sequences.append(fields[0].strip().upper())
    if len(sequences) != N_TEST:
        raise InputError(path, f"{len(sequences):,} lines; a submission lists all {N_TEST:,} test sequences in index "
                               "order (or use the JSON format {\"index\": prediction} for part of them)")
    return out, sequences


def check_submission_order(path: str | os.PathLike, sequences: list[str] | None, known: np.ndarray) -> None:
    """Refuse a text submission whose line i does not hold test sequence i where that sequence is known.

    Parameters
    ----------
    path : str or os.PathLike
        The submission (named in the error).
    sequences : list of str or None
        Its sequences (:func:`read_submission`); None (JSON) is not checked.
    known : numpy.ndarray
        (N_TEST,) object array of the test sequences, None where unknown (:attr:`DreamData.sequences`).
    """
    if sequences is None:
        return
    for i, (mine, theirs) in enumerate(zip(sequences, known)):
        if theirs is not None and mine != theirs:
            raise InputError(path, f"this line's sequence is not test sequence {i} ({theirs[:20]}...): a submission "
                                   "lists the test sequences in index order", line=i + 1)


def read_plasmid(path: str | os.PathLike) -> str:
    """Read ``plasmid.json`` (one JSON string): the plasmid with the 80 N of the insert, upper case."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        text = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not JSON ({exc})") from None
    if not isinstance(text, str) or "N" * 80 not in text.upper():
        raise InputError(path, "expected a JSON string holding the plasmid with the 80-N insert")
    return text.upper()


def training_medium(path: str | os.PathLike) -> str | None:
    """The medium ``prepare`` names for a DREAM 2022 training file by default (None for other files).

    ``"chardonnay"`` for the training file where ``crmnet download dream2022`` puts it, and for the
    challenge's ``demo_train.txt`` (recognised by its git blob id).
    """
    from crmnet.data.catalogue import DREAM_FILES, DREAM_TRAIN_KEY, DREAM_ZENODO
    from crmnet.fsutil import file_digest

    path = Path(path)
    if path.name == DREAM_TRAIN_KEY and path.parent.name == f"zenodo{DREAM_ZENODO}":
        return MEDIUM
    demo = next(f for f in DREAM_FILES if f.dest.endswith("/demo_train.txt"))
    if path.is_file() and path.stat().st_size == demo.size and file_digest(path, "git-blob") == demo.digest:
        return MEDIUM
    return None


@dataclass
class DreamData:
    """What a data directory holds of the test set.

    measured: (N_TEST,) float64, NaN where unknown; sequences: (N_TEST,) object array, None where
    unknown; subsets: name → :class:`Subset` (absent when its CSV is); public: name → public indices;
    full: True when the labelled test file was read (every index has a measurement and a sequence).
    """

    measured: np.ndarray
    sequences: np.ndarray
    subsets: dict[str, Subset]
    public: dict[str, np.ndarray]
    full: bool
    root: Path


def load(data_dir: str | os.PathLike) -> DreamData:
    """Read ``DIR/dream2022``: the labelled test file when present, else the public measurements.

    Parameters
    ----------
    data_dir : str or os.PathLike
        The data directory holding ``dream2022/`` (the layout of the module docstring).

    Returns
    -------
    DreamData
        Measurements, sequences, subsets and public-leaderboard indices.
    """
    root = Path(data_dir) / FOLDER
    if not root.is_dir():
        raise InputError(root, "no DREAM 2022 data here; run `crmnet download dream2022 --out DIR`")
    measured = np.full(N_TEST, np.nan)
    sequences = np.full(N_TEST, None, dtype=object)
    full = (root / TEST_FILE).is_file()
    if full:
        seqs, values = read_test_expression(root / TEST_FILE)
        measured[:], sequences[:] = values, seqs
    else:
        idx, values = read_ground(root / GROUND_FILE)
        measured[idx] = values
    subsets, public = {}, {}
    for name, (csv_name, json_name) in SUBSET_FILES.items():
        if (root / "test_subset_ids" / csv_name).is_file():
            subsets[name] = read_subset(root / "test_subset_ids" / csv_name, name)
            for i, seq in subsets[name].sequences.items():
                if sequences[i] is None:
                    sequences[i] = seq
                elif sequences[i] != seq:
                    raise InputError(root / "test_subset_ids" / csv_name,
                                     f"test index {i} has another sequence than in {TEST_FILE}")
        public[name] = read_public_indices(root / "public_leaderboard_ids" / json_name)
    return DreamData(measured, sequences, subsets, public, full, root)
