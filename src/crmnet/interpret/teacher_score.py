"""How well a student's attributions recover a teacher's in-silico saturation mutagenesis (ISM).

In teacher mode (:mod:`crmnet.workflows.teacher`) the expression landscape *is* a model, so its own ISM is
the exact answer to "what does each base do": the change in the teacher's prediction for every substitution.
A student trained on the teacher's noisy labels is interpreted with any method (saliency, ISM, DeepLIFT/SHAP,
integrated gradients) and its map is scored here against that answer, sequence by sequence.

Everything is computed from **substitution effects** ``D[b, j] = h[b, j] − h[observed base, j]`` of a map's
hypothetical scores ``h`` (zero at the observed base). For ISM these are exactly the prediction changes
(tangermeme's centring cancels); for a gradient they are its first-order estimate; for DeepLIFT/SHAP's
hypothetical contributions, the difference of contributions. Being differences, they ignore any offset
common to the four bases at a position (the part of a gradient that points off the one-hot simplex), so
all methods are compared on the same footing. Two per-position importances follow:

* ``observed``: ``−mean_b D[b, j]`` over the four bases, the observed base's score centred over the four
  bases (for ISM: the stored ``per_position``; for saliency: gradient-corrected input × gradient). Signed:
  positive where the observed base raises expression relative to the alternatives.
* ``magnitude``: ``mean |D[b, j]|`` over the three substitutions, how much mutating position ``j`` matters.

Per sequence, over the positions both maps saw inside the variable region, :func:`score_against_teacher`
reports the Pearson and Spearman correlation of each importance, the Pearson correlation of the student's
map as displayed (``per_position``, the observed base's uncentred score: the paper's input × gradient) with
the teacher's ``observed`` importance, the Pearson correlation of the full substitution map
(3 substitutions × positions, which also asks *which* base matters), the overlap of the ``k`` most
important positions, the AUROC with which the student's magnitude ranks the teacher's top ``k``
positions above the rest, and the sign agreement at the teacher's top ``k`` positions. A student identical
to the teacher (a centred map, as ISM is) scores 1 on all of them; a map unrelated to the teacher's scores
≈0 correlation, AUROC ≈0.5, overlap ≈ k / positions and sign agreement ≈0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from crmnet.data.construct import FLANKS, variable_region
from crmnet.errors import InputError
from crmnet.interpret.attribution import Attributions

METRICS = ("pearson_displayed", "pearson_observed", "spearman_observed", "pearson_magnitude",
           "spearman_magnitude", "pearson_substitutions", "topk_overlap", "topk_auroc", "topk_sign_agreement")


def substitution_effects(attr: Attributions, fill: float = 0.0) -> np.ndarray:
    """Effect of substituting each base at each position, ``h[b, j] − h[observed, j]``.

    For ISM maps this is the change in prediction of each single mutant (the Explain page's Δ).

    Parameters
    ----------
    attr : Attributions
        ``n`` maps of width ``W``.
    fill : float
        The value at positions with no observed base (``N``, padding, unseen); NaN marks them as missing.

    Returns
    -------
    ndarray, shape (n, 4, W), float64
        Zero at the observed base, ``fill`` at positions with no observed base.
    """
    hyp = attr.hypothetical.astype(np.float64)
    observed = (attr.onehot * hyp).sum(axis=1, keepdims=True)
    present = attr.onehot.sum(axis=1, keepdims=True) > 0
    return np.where(present, hyp - observed, fill)


def importance(attr: Attributions, kind: str = "observed") -> np.ndarray:
    """Per-position importance of a map (see the module docstring).

    Parameters
    ----------
    attr : Attributions
    kind : {"observed", "magnitude"}
        The observed base's score centred over the four bases (signed), or the mean absolute effect of
        the three substitutions.

    Returns
    -------
    ndarray, shape (n, W), float64
    """
    effects = substitution_effects(attr)
    if kind == "observed":
        return -effects.mean(axis=1)
    if kind == "magnitude":
        return np.abs(effects).sum(axis=1) / 3.0
    raise ValueError(f"importance kind must be 'observed' or 'magnitude', not {kind!r}")


def masked_pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` and ``b`` over the ``mask``-ed entries.

    Parameters
    ----------
    a, b : ndarray, shape (n, m)
    mask : ndarray, shape (n, m), bool

    Returns
    -------
    ndarray, shape (n,), float64
        NaN where a row has fewer than two entries or either side is constant on them.
    """
    a, b = np.where(mask, a, 0.0), np.where(mask, b, 0.0)  # entries outside the mask may be NaN
    w = mask.astype(np.float64)
    count = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        da = np.where(mask, a - (w * a).sum(axis=1, keepdims=True) / count[:, None], 0.0)
        db = np.where(mask, b - (w * b).sum(axis=1, keepdims=True) / count[:, None], 0.0)
        denom = np.sqrt((da * da).sum(axis=1) * (db * db).sum(axis=1))
        r = (da * db).sum(axis=1) / denom
    # Rounding can leave a constant row a ~1e-16 spread: such a row has no correlation to speak of.
    scale = np.maximum(np.abs(a).max(axis=1), np.abs(b).max(axis=1))
    degenerate = (count < 2) | (denom <= 1e-12 * np.maximum(scale, 1e-300) ** 2 * count)
    return np.where(degenerate, np.nan, np.clip(r, -1.0, 1.0))


def _masked_ranks(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average ranks (1 = smallest) of each row over ``mask``; NaN elsewhere."""
    return rankdata(np.where(mask, x, np.nan), axis=1, nan_policy="omit")


def _top_k(x: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """(n, W) bool: the ``k`` largest entries of each row inside ``mask`` (ties broken by position)."""
    order = np.argsort(np.where(mask, -x, np.inf), axis=1, kind="stable")[:, :k]
    top = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(top, order, True, axis=1)
    return top & mask


def _auroc(score: np.ndarray, positive: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-row AUROC of ``score`` separating ``positive`` from the other ``mask``-ed entries (ties count ½)."""
    ranks = _masked_ranks(score, mask)
    n_pos = (positive & mask).sum(axis=1).astype(np.float64)
    n_neg = mask.sum(axis=1) - n_pos
    u = np.where(positive & mask, ranks, 0.0).sum(axis=1) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


@dataclass
class TeacherScore:
    """Per-sequence agreement of a student's map with the teacher's ISM.

    values: metric name (:data:`METRICS`) → (n,) float64, NaN where undefined for a sequence (e.g. a
        constant map). k: top positions used. positions: (n,) int, positions scored per sequence.
    method: the student's attribution method.
    """

    values: dict[str, np.ndarray]
    k: int
    positions: np.ndarray
    method: str

    def summary(self) -> dict:
        """Mean and median of every metric over the sequences where it is defined, and ``n``.

        Returns
        -------
        dict
            ``{"method", "n", "k", "chance_topk_overlap", METRIC: {"mean", "median", "n"}}``.
        """
        out = {"method": self.method, "n": len(self.positions), "k": self.k,
               "chance_topk_overlap": float(np.mean(self.k / np.maximum(self.positions, 1)))}
        for name, v in self.values.items():
            ok = v[np.isfinite(v)]
            out[name] = {"mean": float(ok.mean()) if ok.size else float("nan"),
                         "median": float(np.median(ok)) if ok.size else float("nan"), "n": int(ok.size)}
        return out


def _check_same_sequences(student: Attributions, teacher: Attributions) -> None:
    if len(student) != len(teacher) or student.onehot.shape != teacher.onehot.shape:
        raise InputError(None, f"the student's {len(student)} maps of width {student.onehot.shape[2]} and the "
                               f"teacher's {len(teacher)} of width {teacher.onehot.shape[2]} are not of the same "
                               "sequences")
    both = student.mask & teacher.mask
    if not np.array_equal(student.onehot.argmax(1)[both], teacher.onehot.argmax(1)[both]):
        raise InputError(None, "the student's and the teacher's maps are of different sequences")


def score_against_teacher(student: Attributions, teacher: Attributions, k: int = 10,
                          flanks: tuple[int, int] = FLANKS) -> TeacherScore:
    """Score ``student``'s attributions against the ``teacher``'s ISM of the same sequences.

    Parameters
    ----------
    student : Attributions
        ``n`` maps of width ``W`` by any method (``hypothetical`` scores are used, see the module docstring).
    teacher : Attributions
        The teacher's ISM of the same ``n`` sequences (e.g. ``FILE.ism.npz`` of ``crmnet simulate
        --teacher``, read with :meth:`Attributions.load`).
    k : int
        How many of the teacher's most important positions (by ``magnitude``) count as its top positions.
    flanks : (int, int)
        Constant flank lengths excluded from scoring (the teacher's ISM leaves them at 0).

    Returns
    -------
    TeacherScore
        Per-sequence :data:`METRICS`, each (n,).
    """
    _check_same_sequences(student, teacher)
    if k < 1:
        raise ValueError(f"k must be positive, not {k}")
    width = teacher.onehot.shape[2]
    region = student.mask & teacher.mask & variable_region(teacher.lengths, width, flanks)
    region &= teacher.onehot.sum(axis=1) > 0  # N: no observed base, no substitution effects
    if (region.sum(axis=1) <= k).any():
        raise ValueError(f"k={k} leaves no positions outside the teacher's top k in some sequence")
    s_obs, t_obs = importance(student, "observed"), importance(teacher, "observed")
    s_mag, t_mag = importance(student, "magnitude"), importance(teacher, "magnitude")
    s_sub, t_sub = substitution_effects(student), substitution_effects(teacher)
    substituted = region[:, None, :] & (teacher.onehot == 0)  # the 3 substitutions at every scored position
    n = len(teacher)
    t_top, s_top = _top_k(t_mag, region, k), _top_k(s_mag, region, k)
    nonzero = t_top & (t_obs != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sign = (nonzero & (np.sign(s_obs) == np.sign(t_obs))).sum(axis=1) / nonzero.sum(axis=1)
    values = {
        "pearson_displayed": masked_pearson(student.per_position.astype(np.float64), t_obs, region),
        "pearson_observed": masked_pearson(s_obs, t_obs, region),
        "spearman_observed": masked_pearson(_masked_ranks(s_obs, region), _masked_ranks(t_obs, region), region),
        "pearson_magnitude": masked_pearson(s_mag, t_mag, region),
        "spearman_magnitude": masked_pearson(_masked_ranks(s_mag, region), _masked_ranks(t_mag, region), region),
        "pearson_substitutions": masked_pearson(s_sub.reshape(n, -1), t_sub.reshape(n, -1),
                                                substituted.reshape(n, -1)),
        "topk_overlap": (t_top & s_top).sum(axis=1) / k,
        "topk_auroc": _auroc(s_mag, t_top, region),
        "topk_sign_agreement": sign,
    }
    return TeacherScore(values, k, region.sum(axis=1), student.method)
