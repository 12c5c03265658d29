"""``crmnet benchmark dream2022``: score a checkpoint or a submission file on the DREAM 2022 test set.

Writes an output directory (atomically, marked as crmnet's)::

    OUT/scores.json      split, per-subset n / pearson / spearman, the weighted scores, missing subsets
    OUT/scores.md, .tsv  the subsets beside the published teams (final-split values, Rafi et al. 2025)
    OUT/scores.png, .pdf the same as bars
    OUT/predictions.json the scored predictions in the leaderboard format {"index": prediction}
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from crmnet.data.dream2022 import N_TEST, DreamData, check_submission_order, load, read_submission
from crmnet.errors import InputError
from crmnet.evaluation.dream2022 import PUBLISHED, SUBSETS, WEIGHTS, needed_indices, score
from crmnet.fsutil import atomic_path, refuse_existing


def predict_checkpoint(data: DreamData, split: str, checkpoint: str | os.PathLike, batch_size: int = 1024,
                       device=None) -> tuple[np.ndarray, str]:
    """Predict every test index of ``split`` whose sequence is known.

    Parameters
    ----------
    data : DreamData
        The test data (:func:`crmnet.data.dream2022.load`).
    split : {"public", "final"}
        Which indices are needed.
    checkpoint : path-like
        A crmnet checkpoint (its own encoding is applied to the 110-nt test sequences).
    batch_size : int
        Sequences per forward pass.
    device : str or torch.device, optional
        Where to run (default: the CPU).

    Returns
    -------
    predicted : numpy.ndarray
        (N_TEST,) float64, NaN where no sequence is known.
    label : str
        The checkpoint's model name and file name.
    """
    from crmnet.evaluation.predict import predict_at_lines
    from crmnet.models.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint)
    indices = needed_indices(data, split)
    predicted = np.full(N_TEST, np.nan)
    if len(indices):
        seqs = [data.sequences[i] for i in indices]
        predicted[indices] = predict_at_lines(model, seqs, indices + 1, batch_size=batch_size, device=device,
                                              source=str(data.root))
    meta = getattr(model, "checkpoint_meta", {})
    name = (meta.get("provenance") or {}).get("name") or meta.get("model") or type(model).__name__
    return predicted, f"{name} ({Path(checkpoint).name})"


def comparison_rows(scores: dict) -> list[list]:
    """Table rows: subset, weight, n, the model's r, r² and ρ, then each published team's r² and ρ."""
    rows = []
    for name in SUBSETS:
        s = scores["subsets"].get(name)
        mine = ["missing"] * 4 if s is None else [f"{s['n']:,}" + ("" if s["n"] == s["n_expected"] else
                                                               f" of {s['n_expected']:,}"),
                                                  f"{s['pearson']:.4f}", f"{s['pearson_r2']:.4f}", f"{s['spearman']:.4f}"]
        published = [f"{t['pearson_r2'][name]:.3f} / {t['spearman'][name]:.3f}" for t in PUBLISHED.values()]
        rows.append([name, f"{WEIGHTS[name]:g}", *mine, *published])
    tag = " (partial)" if scores["partial"] else ""
    rows.append([f"score{tag}", f"{scores['weights_present']:g}", "", f"{scores['pearson_score']:.4f}", "",
                 f"{scores['spearman_score']:.4f}",
                 *[f"{t['pearson_score']:.4f} / {t['spearman_score']:.4f}" for t in PUBLISHED.values()]])
    return rows


def _header(label: str) -> list[str]:
    return ["subset", "weight", "n", f"{label} r", "r²", "ρ", *[f"{t} r² / ρ (final)" for t in PUBLISHED]]


def _write(tmp: Path, scores: dict, predicted: np.ndarray, label: str) -> None:
    from crmnet.plot.common import save_figure
    from crmnet.plot.dream2022 import subset_bars
    from crmnet.tables import render

    tmp.mkdir()
    (tmp / "scores.json").write_text(json.dumps(scores, indent=2) + "\n", encoding="utf-8")
    rows = comparison_rows(scores)
    note = (f"DREAM 2022, {scores['split']} split, measured: {scores['measured']}. Published teams: final split "
            "(Rafi et al. 2025).")
    if scores["missing_subsets"]:
        note += (f" Missing here: {', '.join(scores['missing_subsets'])}; the scores are renormalised by the weights "
                 f"present ({scores['weights_present']:g} of 4.65) and are partial.")
    (tmp / "scores.md").write_text(note + "\n\n" + render(_header(label), rows), encoding="utf-8")
    (tmp / "scores.tsv").write_text(render(_header(label), rows, style="tsv"), encoding="utf-8")
    bars = {f"{label} ({scores['split']}{', partial' if scores['partial'] else ''})": {
        "pearson_r2": {k: v["pearson_r2"] for k, v in scores["subsets"].items()},
        "spearman": {k: v["spearman"] for k, v in scores["subsets"].items()}}}
    bars.update({f"{t} (final)": {"pearson_r2": v["pearson_r2"], "spearman": v["spearman"]}
                 for t, v in PUBLISHED.items()})
    save_figure(subset_bars(bars, SUBSETS, title=f"DREAM 2022 ({scores['split']} split)"), tmp / "scores")
    done = np.flatnonzero(np.isfinite(predicted))
    (tmp / "predictions.json").write_text(json.dumps({str(i): float(predicted[i]) for i in done}) + "\n",
                                          encoding="utf-8")


def run(data_dir: str | os.PathLike, split: str, out: str | os.PathLike, *, checkpoint: str | None = None,
        predictions: str | None = None, label: str | None = None, overwrite: bool = False,
        batch_size: int = 1024, device=None) -> dict:
    """Score a checkpoint or a submission file and write ``out`` (see the module docstring).

    Parameters
    ----------
    data_dir : path-like
        The data directory holding ``dream2022/``.
    split : {"public", "final"}
        The public leaderboard, or the official final split (needs the labelled test set).
    out : path-like
        The output directory (refused if it exists, unless ``overwrite`` and crmnet wrote it).
    checkpoint, predictions : str, optional
        Exactly one: a crmnet checkpoint, or a submission (JSON ``{"index": prediction}`` or TSV
        ``sequence<TAB>prediction`` in index order).
    label : str, optional
        The model's name in the table and figure.
    overwrite : bool
        Replace an earlier output directory of crmnet's.
    batch_size : int
        Sequences per forward pass (checkpoint).
    device : str, optional
        Where the checkpoint runs.

    Returns
    -------
    dict
        The scores written to ``scores.json``.
    """
    if (checkpoint is None) == (predictions is None):
        raise InputError(None, "give exactly one of --checkpoint and --predictions")
    refuse_existing(out, overwrite=overwrite, inputs=[p for p in (checkpoint, predictions) if p])
    data = load(data_dir)
    if checkpoint is not None:
        predicted, default_label = predict_checkpoint(data, split, checkpoint, batch_size, device)
    else:
        predicted, sequences = read_submission(predictions)
        check_submission_order(predictions, sequences, data.sequences)
        default_label = Path(predictions).name
    scores = score(data, predicted, split)
    if not scores["subsets"]:
        raise InputError(predictions or checkpoint, f"no subset of the {split} split could be scored: "
                                                   "the predictions cover none of its indices")
    label = label or default_label
    scores["model"] = label
    scores["source"] = str(checkpoint or predictions)
    for key in ("pearson_score", "spearman_score"):
        if not math.isfinite(scores[key]):
            scores[key] = None
    with atomic_path(out, overwrite=overwrite) as tmp:
        _write(tmp, scores, predicted, label)
    return scores
