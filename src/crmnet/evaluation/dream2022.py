"""The Random Promoter DREAM Challenge 2022 scores, as the organisers' ``prixfixe/evaluation.py`` computes them.

Per subset, Pearson r and Spearman ρ between measured and predicted expression (scipy's ``pearsonr`` and
``spearmanr`` on float64, as the official scorer); for the pair subsets (SNVs, motif_perturbation,
motif_tiling) on the differences of the two members' measured and of their predicted values. The weighted
scores::

    Pearson score  = (r²_all + 0.3 r²_high + 0.3 r²_low + 0.3 r²_yeast + 0.3 r²_random + 0.5 r²_challenging
                      + 1.25 r²_SNVs + 0.3 r²_motif_perturbation + 0.4 r²_motif_tiling) / 4.65
    Spearman score = the same weights on ρ, / 4.65

Splits: ``final`` is the official one (every public-leaderboard index excluded; a pair is excluded when it
is a public pair; ``all`` = every remaining test index); ``public`` scores the public leaderboard (each
subset's public indices, ``all`` = the 9,045 public indices). Singles are de-duplicated by index and pairs
by (alt, ref), as the official loaders do.

Where predictions are missing for a whole subset (no sequences offline, or a submission without it), the
subset is listed in ``missing_subsets`` and the weighted scores are renormalised by the weights present
(``partial``); ``all`` is then every index of the split with a prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from crmnet.data.dream2022 import N_TEST, PAIR_SUBSETS, SUBSET_FILES, DreamData
from crmnet.errors import InputError

SUBSETS = ("all", *SUBSET_FILES)
WEIGHTS: dict[str, float] = {"all": 1.0, "high": 0.3, "low": 0.3, "yeast": 0.3, "random": 0.3, "challenging": 0.5,
                             "SNVs": 1.25, "motif_perturbation": 0.3, "motif_tiling": 0.4}
SPLITS = ("public", "final")

# Published final-split values per subset: Pearson r² and Spearman ρ, in SUBSETS order, then the two scores.
# Source: gautammalik-git/Camformer @ 1931eb39ea8db8c0223a385af0e7b969a30841e7,
# manuscript_figures/Figure_4_S5_S6/data/sota.csv (Rafi et al. 2025, Figure 4); rounded to 6 digits here.
_SOTA = {
    "autosome.org (LegNet)": (
        (0.946322, 0.514464, 0.507881, 0.776968, 0.960215, 0.940911, 0.728089, 0.958435, 0.908138),
        (0.976410, 0.682670, 0.637011, 0.881357, 0.981956, 0.966859, 0.712701, 0.968991, 0.938236),
        0.818394, 0.854109),
    "BHI (CNN + BiLSTM)": (
        (0.925462, 0.428384, 0.436807, 0.742664, 0.954614, 0.913899, 0.703284, 0.955178, 0.903182),
        (0.971294, 0.676897, 0.629900, 0.856921, 0.979577, 0.954052, 0.696387, 0.969940, 0.936235),
        0.790986, 0.844574),
    "Unlock_DNA (transformer)": (
        (0.916126, 0.384512, 0.385857, 0.702717, 0.936529, 0.875157, 0.676970, 0.935376, 0.893025),
        (0.961452, 0.575437, 0.596034, 0.839060, 0.970287, 0.928980, 0.677518, 0.961141, 0.927354),
        0.765726, 0.822875),
    "Camformers (ResNet)": (
        (0.913491, 0.310291, 0.386831, 0.679865, 0.937964, 0.885789, 0.674402, 0.950522, 0.808725),
        (0.960975, 0.574903, 0.610547, 0.818391, 0.972334, 0.940166, 0.673802, 0.959175, 0.911520),
        0.753230, 0.821188),
    "wztr": (
        (0.916556, 0.270438, 0.303455, 0.675525, 0.948097, 0.907243, 0.683001, 0.941444, 0.892166),
        (0.961321, 0.608857, 0.304510, 0.813509, 0.977335, 0.937415, 0.684470, 0.962247, 0.929558),
        0.757523, 0.808038),
    "Vaishnav/de Boer baseline (transformer)": (
        (0.878901, 0.264233, 0.265827, 0.640195, 0.911711, 0.770305, 0.621438, 0.895866, 0.747410),
        (0.938356, 0.305032, 0.421652, 0.796936, 0.955794, 0.857257, 0.644505, 0.930106, 0.873272),
        0.695304, 0.762318),
}
PUBLISHED: dict[str, dict] = {
    team: {"pearson_r2": dict(zip(SUBSETS, r2)), "spearman": dict(zip(SUBSETS, rho)),
           "pearson_score": ps, "spearman_score": ss}
    for team, (r2, rho, ps, ss) in _SOTA.items()
}


def weighted_score(values: dict[str, float], squared: bool) -> tuple[float, float]:
    """The official weighted sum over the subsets present, divided by their weights' sum.

    Parameters
    ----------
    values : dict
        Subset name → r (``squared``: r² enters the sum) or ρ; subsets absent or None are left out.
    squared : bool
        True for the Pearson score (weights on r²), False for the Spearman score (weights on ρ).

    Returns
    -------
    score : float
        Σ w·v / Σ w over the present subsets (with all nine: the official score, Σ w = 4.65).
    weight : float
        Σ w of the present subsets.
    """
    present = {k: v for k, v in values.items() if v is not None}
    weight = sum(WEIGHTS[k] for k in present)
    if not weight:
        return math.nan, 0.0
    return sum(WEIGHTS[k] * (v * v if squared else v) for k, v in present.items()) / weight, weight


def _unique_pairs(pairs: np.ndarray) -> np.ndarray:
    return np.unique(pairs.reshape(-1, 2), axis=0) if len(pairs) else pairs.reshape(0, 2)


def split_indices(data: DreamData, split: str) -> dict[str, np.ndarray]:
    """The test indices each subset is scored on.

    Parameters
    ----------
    data : DreamData
        What the data directory holds (:func:`crmnet.data.dream2022.load`).
    split : {"public", "final"}
        ``public``: the public leaderboard; ``final``: the official exclusion of every public index.

    Returns
    -------
    dict
        Subset name → (n,) int64 indices (``all`` and single subsets) or (n, 2) (alt, ref) pairs; a subset
        whose index list is unknown here (its CSV is missing for ``final``) is absent.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if split == "public":
        out = {name: (_unique_pairs(ix) if name in PAIR_SUBSETS else np.unique(ix)) for name, ix in data.public.items()}
        out["all"] = np.unique(np.concatenate([ix.reshape(-1) for ix in data.public.values()]))
        return {name: out[name] for name in SUBSETS if name in out}
    if not data.full:
        raise InputError(data.root, "the final split needs the labelled test set "
                                    "(filtered_test_data_with_MAUDE_expression.txt); run `crmnet download dream2022`")
    public_single = np.unique(np.concatenate([ix.reshape(-1) for ix in data.public.values()]))
    public_pairs = {tuple(p) for name in PAIR_SUBSETS for p in data.public[name].reshape(-1, 2).tolist()}
    out = {"all": np.setdiff1d(np.arange(N_TEST), public_single)}
    for name, subset in data.subsets.items():
        if subset.paired:
            keep = [p for p in subset.indices.tolist() if tuple(p) not in public_pairs]
            out[name] = _unique_pairs(np.array(keep, dtype=np.int64))
        else:
            out[name] = np.setdiff1d(subset.indices, public_single)
    return {name: out[name] for name in SUBSETS if name in out}


@dataclass
class SubsetScore:
    """One subset's correlations; n scored of n_expected (pairs count once)."""

    n: int
    n_expected: int
    pearson: float | None
    spearman: float | None


def _correlations(measured: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    from scipy.stats import pearsonr, spearmanr

    return float(pearsonr(measured, predicted)[0]), float(spearmanr(measured, predicted)[0])


def score_subset(indices: np.ndarray, measured: np.ndarray, predicted: np.ndarray) -> SubsetScore:
    """Pearson r and Spearman ρ of one subset, on the indices with a prediction.

    Parameters
    ----------
    indices : numpy.ndarray
        (n,) test indices, or (n, 2) (alt, ref) pairs: scored on the pair differences.
    measured, predicted : numpy.ndarray
        (N_TEST,) float64 by test index; NaN where unknown.

    Returns
    -------
    SubsetScore
        n = the rows (pairs) with finite measured and predicted values; r and ρ None below 3 of them.
    """
    if indices.ndim == 2:
        # The official scorer reads each (alt, ref) pair as (ref, alt) = pair and takes expr[alt] - expr[ref],
        # i.e. ref - alt: the same r and ρ as alt - ref, computed here in its orientation to match it exactly.
        m = measured[indices[:, 1]] - measured[indices[:, 0]]
        p = predicted[indices[:, 1]] - predicted[indices[:, 0]]
    else:
        m, p = measured[indices], predicted[indices]
    ok = np.isfinite(m) & np.isfinite(p)
    n = int(ok.sum())
    if n < 3:
        return SubsetScore(n, len(indices), None, None)
    r, rho = _correlations(m[ok], p[ok])
    return SubsetScore(n, len(indices), r, rho)


def score(data: DreamData, predicted: np.ndarray, split: str) -> dict:
    """Score predictions by test index the official way (renormalised where subsets are missing).

    Parameters
    ----------
    data : DreamData
        Measurements, subsets and public indices (:func:`crmnet.data.dream2022.load`).
    predicted : numpy.ndarray
        (N_TEST,) float64 predictions by test index; NaN where there is none.
    split : {"public", "final"}
        Which indices count (:func:`split_indices`).

    Returns
    -------
    dict
        ``split``, ``subsets`` (name → ``n``, ``n_expected``, ``coverage``, ``pearson``, ``pearson_r2``,
        ``spearman``), ``pearson_score``, ``spearman_score``, ``missing_subsets``, ``partial``,
        ``weights_present`` and ``measured`` (where the measurements came from).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    if predicted.shape != (N_TEST,):
        raise ValueError(f"predicted must have shape ({N_TEST},), not {predicted.shape}")
    subsets, pearson, spearman, missing = {}, {}, {}, []
    for name, indices in split_indices(data, split).items():
        s = score_subset(indices, data.measured, predicted)
        if s.pearson is None:
            missing.append(name)
            continue
        pearson[name], spearman[name] = s.pearson, s.spearman
        subsets[name] = {"n": s.n, "n_expected": s.n_expected, "coverage": s.n / s.n_expected,
                         "pearson": s.pearson, "pearson_r2": s.pearson ** 2, "spearman": s.spearman}
    missing += [name for name in SUBSETS if name not in subsets and name not in missing]
    p_score, weight = weighted_score(pearson, squared=True)
    s_score, _ = weighted_score(spearman, squared=False)
    return {
        "split": split,
        "subsets": subsets,
        "pearson_score": p_score,
        "spearman_score": s_score,
        "missing_subsets": [name for name in SUBSETS if name in missing],
        "partial": bool(missing) or any(v["n"] < v["n_expected"] for v in subsets.values()),
        "weights_present": weight,
        "measured": "labelled test set" if data.full else "public leaderboard (ground.json)",
    }


def needed_indices(data: DreamData, split: str) -> np.ndarray:
    """(k,) sorted test indices of the split that have a known sequence (what a model must predict)."""
    wanted = np.unique(np.concatenate([ix.reshape(-1) for ix in split_indices(data, split).values()]))
    known = np.array([data.sequences[i] is not None for i in wanted], dtype=bool)
    return wanted[known] if len(wanted) else wanted
