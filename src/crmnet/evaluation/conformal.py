"""Calibrated prediction intervals: split conformal prediction on labelled sequences.

**Calibration** (:func:`fit_calibration`, ``crmnet calibrate``). A model predicts a labelled set it was not
trained on; the *scores* are its absolute residuals ``|y − ŷ|`` (method ``absolute``) or, for an ensemble,
residuals divided by the members' spread ``|y − ŷ| / (σ + c)`` (method ``normalized``, locally adaptive:
wide where the members disagree; ``c`` is the median spread on the calibration set, so a sequence the
members agree on is not given a zero-width interval). The scores do not depend on the level, so a level
is chosen at prediction time: the interval at level ``1 − α`` is ``ŷ ± q·scale`` with ``q`` the
``⌈(n + 1)(1 − α)⌉``-th smallest of the ``n`` scores (:func:`conformal_quantile`; infinite when that
exceeds ``n``). If the scored sequences are exchangeable with the calibration set, the interval holds the
measured value with probability at least ``1 − α`` (and at most ``1 − α + 1/(n + 1)`` without ties).

**Which score** (``method="auto"``): ``normalized`` only where it narrows intervals without losing
coverage. The calibration set is split in two random halves; each score is fitted on one half and
measured on the other (both ways) at levels 0.8 and 0.9; ``normalized`` is chosen when its mean width is
smaller at both levels and its coverage is not below the nominal level by more than two binomial standard
errors. A single model has no spread, so its score is ``absolute``. The comparison is kept in the
calibration (``selection``). Variance heads would enter the same way; no registered model has one.

**Where it is kept**: in the checkpoint's ``extra`` (``calibration``; ``delta_calibration`` for variant
effects), with the calibration set's size, file name, SHA-256 and medium, so ``evaluate`` can say when a
scored set is not the calibration set. Under such a shift the guarantee does not hold and the coverage is
only what is measured (:func:`interval_table`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from crmnet.config import Config
from crmnet.errors import InputError

METHODS = ("auto", "absolute", "normalized")
#: levels at which ``method="auto"`` compares the two scores
SELECTION_LEVELS = (0.8, 0.9)
#: levels at which ``evaluate`` reports coverage and mean width
REPORT_LEVELS = (0.5, 0.8, 0.9, 0.95)
#: checkpoint ``extra`` keys of an expression and a variant-effect calibration
KEYS = {"expression": "calibration", "delta": "delta_calibration"}


def check_level(level: float, option: str = "--interval") -> float:
    """``level`` as a float when it lies strictly between 0 and 1, else a one-line InputError naming ``option``."""
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise InputError(None, f"{option} must lie strictly between 0 and 1 (e.g. 0.9 for a 90% interval), "
                               f"got {level}")
    return float(level)


def mean_and_spread(members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Members' predictions (n, K) → mean (n,) and population standard deviation (n,) (0 for K = 1)."""
    members = np.asarray(members, dtype=np.float64)
    return members.mean(axis=1), members.std(axis=1)


def conformal_quantile(scores, level: float) -> float:
    """The split-conformal quantile: the ``⌈(n + 1)·level⌉``-th smallest score (inf beyond ``n``).

    Parameters
    ----------
    scores : (n,) array
    level : float in (0, 1)

    Returns
    -------
    float
    """
    s = np.sort(np.asarray(scores, dtype=np.float64))
    k = math.ceil(round((len(s) + 1) * level, 9))  # round: (n+1)·level = 90.00000000000001 is 90
    return float("inf") if k > len(s) else float(s[k - 1])


@dataclass
class Calibration(Config):
    """A conformal calibration (the module docstring says what each field means).

    scores: the sorted scores; offset: ``c`` of the normalised score; members: ensemble size; source,
    sha256, medium, test_set: the calibration set; selection: the held-out comparison of the scores.
    """

    method: str = "absolute"
    target: str = "expression"
    scores: tuple[float, ...] = ()
    offset: float = 0.0
    members: int = 1
    source: str = ""
    sha256: str = ""
    medium: str | None = None
    test_set: str | None = None
    selection: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """The calibration set's size."""
        return len(self.scores)

    def scale(self, spread, n: int) -> np.ndarray:
        """Per-sequence scale (n,): 1, or ``spread + offset`` for the normalised score."""
        if self.method == "absolute":
            return np.ones(n)
        if spread is None:
            raise ValueError("a normalised calibration needs the ensemble's spread")
        return np.asarray(spread, dtype=np.float64) + self.offset

    def halfwidth(self, level: float, spread=None, n: int | None = None) -> np.ndarray:
        """Half the interval's width at ``level`` for each sequence: (n,)."""
        n = len(spread) if n is None else n
        return conformal_quantile(self.scores, level) * self.scale(spread, n)

    def interval(self, prediction, level: float, spread=None) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each (n,), around ``prediction`` (n,) at ``level``."""
        prediction = np.asarray(prediction, dtype=np.float64)
        h = self.halfwidth(check_level(level), spread, len(prediction))
        return prediction - h, prediction + h


def scores_of(method: str, y, prediction, spread=None, offset: float = 0.0) -> np.ndarray:
    """Conformity scores (n,): ``|y − ŷ|`` or ``|y − ŷ| / (spread + offset)``."""
    resid = np.abs(np.asarray(y, np.float64) - np.asarray(prediction, np.float64))
    if method == "absolute":
        return resid
    return resid / (np.asarray(spread, np.float64) + offset)


def _offset(spread) -> float:
    return float(np.median(spread))


def _fit(method: str, y, pred, spread) -> Calibration:
    offset = _offset(spread) if method == "normalized" else 0.0
    scores = np.sort(scores_of(method, y, pred, spread, offset))
    return Calibration(method=method, scores=tuple(scores.tolist()), offset=offset)


def _held_out(y, pred, spread, seed: int) -> dict:
    """Each score fitted on one random half, measured on the other (both ways): coverage and mean width."""
    order = np.random.default_rng(seed).permutation(len(y))
    halves = (order[: len(y) // 2], order[len(y) // 2 :])
    out: dict = {}
    for method in ("absolute", "normalized"):
        per_level = {}
        for level in SELECTION_LEVELS:
            hit = width = 0.0
            for fit, held in (halves, halves[::-1]):
                cal = _fit(method, y[fit], pred[fit], spread[fit])
                lo, hi = cal.interval(pred[held], level, spread[held])
                hit += float(((y[held] >= lo) & (y[held] <= hi)).mean()) / 2
                width += float((hi - lo).mean()) / 2
            se = math.sqrt(level * (1 - level) / max(len(y) // 2, 1))
            per_level[str(level)] = {"coverage": hit, "mean_width": width, "binomial_se": se}
        out[method] = per_level
    return out


def fit_calibration(y, prediction, spread=None, method: str = "auto", seed: int = 0) -> Calibration:
    """Calibrate on labelled predictions: the scores, and the method chosen as the module docstring says.

    Parameters
    ----------
    y, prediction : (n,) measured and predicted values (n ≥ 2)
    spread : (n,) the ensemble members' spread, or None for a single model
    method : ``auto``, ``absolute`` or ``normalized``
    seed : the random halves of ``auto``

    Returns
    -------
    Calibration
        Without the calibration set's description (the caller adds it).
    """
    if method not in METHODS:
        raise InputError(None, f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    y, prediction = np.asarray(y, np.float64), np.asarray(prediction, np.float64)
    if len(y) < 2:
        raise InputError(None, f"calibration needs at least 2 labelled sequences, got {len(y)}")
    informative = spread is not None and _offset(spread) > 0
    if method == "normalized" and not informative:
        raise InputError(None, "--method normalized needs an ensemble whose members disagree (the median spread "
                               "is 0 or there is one model); use --method absolute")
    if not informative:
        chosen, selection = "absolute", {"reason": "one model (or members that agree): no spread to normalise by"}
    else:
        selection = _held_out(y, prediction, np.asarray(spread, np.float64), seed)
        a, b = selection["absolute"], selection["normalized"]
        narrower = all(b[k]["mean_width"] < a[k]["mean_width"] for k in a)
        kept = all(b[k]["coverage"] >= float(k) - 2 * b[k]["binomial_se"] for k in b)
        best = "normalized" if narrower and kept else "absolute"
        chosen = best if method == "auto" else method
        selection["reason"] = (f"held-out halves (seed {seed}): normalised intervals are "
                               f"{'narrower' if narrower else 'not narrower'} at levels {', '.join(a)} and "
                               f"{'keep' if kept else 'lose'} coverage; {best} is better"
                               + ("" if method == "auto" else f"; {method} was asked for"))
    cal = _fit(chosen, y, prediction, spread)
    cal.selection = selection
    return cal


def coverage(y, lower, upper) -> float:
    """The fraction of ``y`` (n,) inside [lower, upper]."""
    y = np.asarray(y, np.float64)
    return float(((y >= lower) & (y <= upper)).mean())


def interval_table(y, prediction, spread, cal: Calibration, levels=REPORT_LEVELS) -> dict:
    """Empirical coverage and mean width of ``cal``'s intervals on a labelled set, per nominal level.

    Returns
    -------
    dict
        level (as text) → ``nominal``, ``coverage``, ``mean_width``, ``n`` and ``binomial_se`` (the standard
        error of a coverage measured on n exchangeable sequences).
    """
    out = {}
    for level in levels:
        lo, hi = cal.interval(prediction, level, spread)
        n = len(lo)
        out[str(level)] = {"nominal": level, "coverage": coverage(y, lo, hi), "mean_width": float((hi - lo).mean()),
                           "n": n, "binomial_se": math.sqrt(level * (1 - level) / max(n, 1))}
    return out


def calibration_of(model, target: str = "expression") -> Calibration | None:
    """The calibration a loaded checkpoint carries (``model.checkpoint_meta``), or None."""
    extra = (getattr(model, "checkpoint_meta", None) or {}).get("extra") or {}
    found = extra.get(KEYS[target])
    return None if found is None else Calibration.from_dict(found)


def require_calibration(model, checkpoint: str | None, target: str = "expression") -> Calibration:
    """The model's calibration, or a one-line InputError saying how to calibrate it.

    For ``target="delta"`` the variant-effect calibration, else the expression one (for its union bound).
    """
    cal = calibration_of(model, target)
    if cal is None and target == "delta":
        cal = calibration_of(model)
    if cal is not None:
        return cal
    name = checkpoint or "CKPT"
    if target == "delta":
        raise InputError(checkpoint, "has no calibration for variant effects nor for expression: run `crmnet "
                                     f"calibrate --checkpoint {name} --data LABELLED --out CAL.pt` (or --pairs "
                                     "with measured deltas) and use CAL.pt")
    raise InputError(checkpoint, f"has no calibration, so it cannot give intervals: run `crmnet calibrate "
                                 f"--checkpoint {name} --data LABELLED --out CAL.pt` on measured sequences it was not "
                                 "trained on, then use CAL.pt")


def shift_note(cal: Calibration, sha256: str, name: str, medium: str | None) -> str:
    """A sentence on whether a scored set is the calibration set (in-sample) or another one (shift)."""
    if cal.sha256 and cal.sha256 == sha256:
        return (f"{name} is the calibration set itself: its coverage is in-sample (at least nominal by "
                "construction), not a test")
    media = "" if medium is None or cal.medium is None or medium == cal.medium else \
        f"; medium {medium} vs {cal.medium}"
    return (f"{name} is not the calibration set ({cal.test_set or cal.source}{media}): the conformal guarantee "
            "holds only for sequences exchangeable with it, so this coverage is measured, not guaranteed")


def interval_coverage(cal: Calibration, test, pred: np.ndarray, spread: np.ndarray) -> dict:
    """What ``evaluate`` reports for a calibrated model on a labelled set.

    Parameters
    ----------
    cal : Calibration
    test : crmnet.evaluation.testsets.LoadedTest
    pred, spread : (n,) the model's predictions and members' spread on ``test``

    Returns
    -------
    dict
        ``intervals`` (:func:`interval_table`: coverage and mean width next to each nominal level) and
        ``calibration_note`` (:func:`shift_note`: whether ``test`` is the calibration set).
    """
    from crmnet.data.catalogue import TEST_SETS
    from crmnet.fsutil import file_digest

    medium = TEST_SETS[test.name].medium if test.name in TEST_SETS else None
    return {"intervals": interval_table(test.measured, pred, spread, cal),
            "calibration_note": shift_note(cal, file_digest(test.source), test.name, medium)}

