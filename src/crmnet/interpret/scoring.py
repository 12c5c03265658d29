"""Scoring interpretations against a simulation's ground truth (its ``FILE.truth.json``).

* **Attribution maps** (:func:`site_scores`, :func:`ground_truth_saliency`): |attribution| at positions of
  planted sites versus positions off every site (inside the variable region): the ratio of the mean
  |attribution|, the signed means, a one-sided Mann-Whitney p-value and the **per-position AUROC**
  ``U / (n_on · n_off)`` (the probability that a random on-site position has a larger |attribution| than
  a random off-site one; 0.5 = no better than chance). Reported for all sites and separately for
  activator sites (effect > 0) and repressor sites (effect < 0).
* **Discovered motifs** (:func:`recovery`), two rules:

  - ``strict`` (the default): a discovered motif is correct when its *best* TOMTOM match among *all* the
    targets (the 169 yeast JASPAR CORE motifs) is a planted motif and that match has q ≤ 0.05. A planted
    motif found by several discovered motifs counts once: precision = distinct planted motifs found /
    discovered motifs, recall = distinct planted motifs found / planted motifs.
  - ``lenient`` (the rule crmnet used before, kept for comparison and always labelled): a discovered
    motif is correct when TOMTOM matches it to *any* planted motif at q ≤ 0.05 or E ≤ 1, whatever its
    best match, and every such motif counts (duplicates included).

  Per class (activators, repressors): recall over the planted motifs of that class, and precision over
  the discovered motifs that claim that direction (k-mers from the top / bottom of the ranking, MoDISco's
  positive / negative patterns), counting a match only when its planted motif has that class.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from crmnet.data.jaspar import Motif
from crmnet.errors import InputError
from crmnet.interpret.matching import Matches, tomtom_match

RULES = {
    "strict": "strict: best match among all yeast JASPAR motifs is a planted one, q <= 0.05, duplicates once",
    "lenient": "lenient: any planted motif matched at q <= 0.05 or E <= 1, duplicates counted",
}
CLASSES = ("activator", "repressor")


# ------------------------------------------------------------------------------------------ the truth
def read_truth(path: str | os.PathLike, n: int) -> dict:
    """A simulation's ``FILE.truth.json`` (:func:`crmnet.data.simulate.write_simulation`), checked.

    Parameters
    ----------
    path : path-like
    n : int
        Number of sequences the truth must describe.

    Returns
    -------
    dict
        The truth (``motifs``, ``planted_sites`` with columnar ``seq``, ``motif``, ``start``, ``strand``).
    """
    try:
        truth = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read the simulation truth ({exc})") from None
    if not isinstance(truth, dict) or "planted_sites" not in truth or "motifs" not in truth:
        raise InputError(path, "not a crmnet simulation truth file (no 'planted_sites' / 'motifs')")
    if truth.get("n") != n:
        raise InputError(path, f"the truth describes {truth.get('n')} sequences but {n} were read")
    return truth


def truth_prefix(truth: dict, n: int) -> dict:
    """The truth of the first ``n`` sequences only (for a run limited to them).

    Parameters
    ----------
    truth : dict
        A truth from :func:`read_truth`.
    n : int

    Returns
    -------
    dict
        A copy with ``n`` and the planted sites of sequences ``< n``.
    """
    sites = truth["planted_sites"]
    keep = [i for i, s in enumerate(sites["seq"]) if s < n]
    return {**truth, "n": n, "planted_sites": {k: [v[i] for i in keep] for k, v in sites.items()}}


def motif_classes(truth: dict) -> dict[str, str]:
    """Planted motif name → ``"activator"`` (effect > 0) or ``"repressor"`` (< 0); empty without effects."""
    effects = {m["name"]: m.get("effect") for m in truth["motifs"]}
    if any(e is None for e in effects.values()):
        return {}
    return {name: "activator" if e > 0 else "repressor" for name, e in effects.items() if e != 0}


def planted_site_mask(truth: dict, n: int, width: int, motifs: list[int] | None = None) -> np.ndarray:
    """Positions covered by a planted site, in sequence coordinates.

    Parameters
    ----------
    truth : dict
    n, width : int
        Shape of the mask.
    motifs : list of int, optional
        Only the sites of these motifs (indices into ``truth["motifs"]``).

    Returns
    -------
    ndarray, shape (n, width), bool
    """
    sites = truth["planted_sites"]
    widths = np.array([m["width"] for m in truth["motifs"]], dtype=np.int64)
    kind = np.asarray(sites["motif"], dtype=np.int64)
    keep = np.ones(len(kind), bool) if motifs is None else np.isin(kind, motifs)
    seq = np.asarray(sites["seq"], dtype=np.int64)[keep]
    start = np.asarray(sites["start"], dtype=np.int64)[keep]
    end = np.minimum(start + widths[kind[keep]], width)
    diff = np.zeros((n, width + 1), dtype=np.int32)
    np.add.at(diff, (seq, start), 1)
    np.add.at(diff, (seq, end), -1)
    return np.cumsum(diff, axis=1)[:, :width] > 0


# ------------------------------------------------------------------------------------ attribution maps
def site_scores(per_position: np.ndarray, site_mask: np.ndarray, region: np.ndarray,
                off_mask: np.ndarray | None = None) -> dict:
    """Attribution on planted-site positions versus positions elsewhere.

    Parameters
    ----------
    per_position : ndarray, shape (n, W)
        Signed attribution per position.
    site_mask : ndarray, shape (n, W), bool
        The site positions scored.
    region : ndarray, shape (n, W), bool
        Positions that count at all.
    off_mask : ndarray, shape (n, W), bool, optional
        Positions counted as elsewhere (default: not ``site_mask``).

    Returns
    -------
    dict
        abs_on_sites, abs_elsewhere, ratio (of the mean |attribution|; None when off is all 0), mean_on_sites, mean_elsewhere
        (signed), n_on, n_off, auroc (|attribution| separating on from off positions) and mannwhitney_p
        (one-sided, |attribution| on > off).
    """
    from scipy.stats import mannwhitneyu

    on = np.abs(per_position[site_mask & region]).astype(np.float64)
    off_sel = (~site_mask if off_mask is None else off_mask) & region
    off = np.abs(per_position[off_sel]).astype(np.float64)
    if len(on) == 0 or len(off) == 0:
        raise ValueError("need positions both on and off the planted sites")
    test = mannwhitneyu(on, off, alternative="greater")
    abs_on, abs_off = float(on.mean()), float(off.mean())
    return {
        "abs_on_sites": abs_on, "abs_elsewhere": abs_off, "ratio": abs_on / abs_off if abs_off else None,
        "mean_on_sites": float(per_position[site_mask & region].mean()), "mean_elsewhere": float(per_position[off_sel].mean()),
        "n_on": len(on), "n_off": len(off), "auroc": float(test.statistic) / (len(on) * len(off)),
        "mannwhitney_p": float(test.pvalue),
    }


def ground_truth_saliency(values: np.ndarray, truth: dict, region: np.ndarray) -> dict:
    """:func:`site_scores` for all planted sites, and per class when the truth has effects.

    Parameters
    ----------
    values : ndarray, shape (n, W)
        Per-position attributions.
    truth : dict
    region : ndarray, shape (n, W), bool

    Returns
    -------
    dict
        ``all_sites`` and, where the class has sites, ``activator_sites`` and ``repressor_sites``; for the
        classes "elsewhere" is off every planted site.
    """
    n, width = values.shape
    every = planted_site_mask(truth, n, width)
    out = {"all_sites": site_scores(values, every, region)}
    classes = motif_classes(truth)
    for label in CLASSES if classes else ():
        chosen = [k for k, m in enumerate(truth["motifs"]) if classes.get(m["name"]) == label]
        mask = planted_site_mask(truth, n, width, chosen)
        if chosen and (mask & region).any():
            out[f"{label}_sites"] = site_scores(values, mask, region, off_mask=~every)
    return out


# ------------------------------------------------------------------------------------ discovered motifs
def recovery(queries: list[Motif], targets: list[Motif], planted: list[str], *, rule: str = "strict",
             classes: dict[str, str] | None = None, query_classes: list[str | None] | None = None,
             matches: Matches | None = None, q_max: float = 0.05, e_max: float = 1.0) -> dict:
    """Precision and recall of discovered motifs against the planted ones (see the module docstring).

    Parameters
    ----------
    queries : list of Motif
        The discovered motifs.
    targets : list of Motif
        Every known motif TOMTOM compares against (the planted ones among them, by name).
    planted : list of str
        Names of the planted motifs.
    rule : {"strict", "lenient"}
    classes : dict, optional
        Planted name → ``"activator"`` / ``"repressor"`` (:func:`motif_classes`): adds per-class results.
    query_classes : list, optional
        The class each query claims (None: no claim), as long as ``queries``.
    matches : Matches, optional
        :func:`tomtom_match` of ``queries`` against ``targets`` when already computed.
    q_max, e_max : float
        The q-value (both rules) and E-value (lenient rule) thresholds.

    Returns
    -------
    dict
        rule, rule_text, n_discovered, n_correct_motifs (duplicates included), true_positives (strict:
        distinct planted motifs; lenient: correct motifs), precision (true_positives / n_discovered),
        motif_precision (n_correct_motifs / n_discovered: each correct motif counts, duplicates too),
        n_planted, recovered (names), recall, and ``classes`` when given.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {sorted(RULES)}, not {rule!r}")
    names = [t.name.upper() for t in targets]
    cols = {p.upper(): names.index(p.upper()) for p in planted if p.upper() in names}
    missing = sorted({p.upper() for p in planted} - set(cols))
    if missing:
        raise ValueError(f"planted motifs not among the TOMTOM targets: {missing}")
    matches = matches if matches is not None else tomtom_match(queries, targets)
    found = _found(matches, list(cols.values()), rule, q_max, e_max)  # (nq, n_planted) bool
    by_name = [targets[j].name for j in cols.values()]
    recovered = sorted({by_name[c] for c in np.flatnonzero(found.any(axis=0))})
    n_correct = int(found.any(axis=1).sum())
    tp = len(recovered) if rule == "strict" else n_correct
    out = {
        "rule": rule, "rule_text": RULES[rule], "n_discovered": len(queries), "n_correct_motifs": n_correct,
        "true_positives": tp, "precision": tp / len(queries) if queries else None,
        "motif_precision": n_correct / len(queries) if queries else None,
        "n_planted": len(cols), "recovered": recovered, "recall": len(recovered) / len(cols) if cols else None,
    }
    if classes:
        out["classes"] = _per_class(found, by_name, classes, query_classes or [None] * len(queries), rule)
    return out


def _found(matches: Matches, planted_cols: list[int], rule: str, q_max: float, e_max: float) -> np.ndarray:
    """(nq, n_planted) bool: query i counts as finding planted motif c under ``rule``."""
    nq = matches.p.shape[0]
    if nq == 0:
        return np.zeros((0, len(planted_cols)), bool)
    if rule == "lenient":
        return (matches.q[:, planted_cols] <= q_max) | (matches.e[:, planted_cols] <= e_max)
    best = matches.best()
    significant = matches.q[np.arange(nq), best] <= q_max
    return (best[:, None] == np.asarray(planted_cols)[None, :]) & significant[:, None]


def _per_class(found: np.ndarray, by_name: list[str], classes: dict[str, str], query_classes: list,
               rule: str) -> dict:
    upper = {k.upper(): v for k, v in classes.items()}
    planted_class = np.array([upper.get(n.upper()) for n in by_name], dtype=object)
    claims = np.array(query_classes, dtype=object)
    out = {}
    for label in CLASSES:
        cols = planted_class == label
        if not cols.any():
            continue
        recovered = sorted({by_name[c] for c in np.flatnonzero(cols & found.any(axis=0))})
        claiming = claims == label
        right = found[claiming][:, cols]
        tp = int(right.any(axis=0).sum()) if rule == "strict" else int(right.any(axis=1).sum())
        out[label] = {
            "n_planted": int(cols.sum()), "recovered": recovered, "recall": len(recovered) / int(cols.sum()),
            "n_discovered": int(claiming.sum()), "true_positives": tp,
            "precision": tp / int(claiming.sum()) if claiming.any() else None,
        }
    return out
