"""Regression metrics for expression predictions, their bootstrap intervals, and model comparisons.

Contract (docs/architecture.md, "Metrics JSON"): :func:`compute_metrics` returns exactly the keys
``n, pearson_r, pearson_p, spearman_r, r2, pearson_r_squared, mse, mae``, all computed in float64:

* ``r2`` is the coefficient of determination ``1 - SS_res / SS_tot`` of the predictions as they are;
* ``pearson_r_squared`` is Pearson's r squared, which is what the CRMnet paper calls "R²";
* ``pearson_p`` is the two-tailed p-value of Pearson's r (t test with n - 2 degrees of freedom, the same
  value as :func:`scipy.stats.pearsonr`); it underflows to 0.0 for the correlations seen on the test sets.

Everything is vectorised over bootstrap replicates, so 1,000 replicates of 5,000 points take well under a
second. :class:`StreamingMetrics` computes the same Pearson r, R², MSE and MAE batch by batch on the
device (the training loop's validation), reducible across data-parallel processes. :func:`compare_models`
tests whether two models' correlations with the same measurements differ, which must account for the two
predictions being correlated with each other: a paired bootstrap of Δr = r_a − r_b (resampling sequences,
both models together) and Steiger's (1980) Z test for dependent correlations sharing one variable.

Related sequences (drift lineages, SSWM trajectories, promoter classes) are not independent evidence:
given ``groups`` (n,), :func:`bootstrap_ci` and :func:`compare_models` resample whole groups (a cluster
bootstrap; singleton groups reproduce the row bootstrap draw for draw), and the comparison's ``p`` is a
Wald test of Steiger's Fisher-z difference with the cluster bootstrap's standard error. Many comparisons
at once are corrected by :func:`adjust_pvalues` (Benjamini-Hochberg, Benjamini-Yekutieli, Holm). Whether a
pooled r mostly reflects differences between groups is :func:`crmnet.evaluation.modality.multimodality`.
"""

from __future__ import annotations

import math

import numpy as np

METRIC_KEYS = ("n", "pearson_r", "pearson_p", "spearman_r", "r2", "pearson_r_squared", "mse", "mae")
# Metrics a bootstrap interval is computed for (n and the p-value have no useful interval).
BOOTSTRAP_KEYS = ("pearson_r", "spearman_r", "r2", "pearson_r_squared", "mse", "mae")


def _check_pair(y_true, y_pred, what: str = "predictions") -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 1:
        raise ValueError(f"measured values and {what} must be 1-D, got shapes {y.shape} and {p.shape}")
    if len(y) != len(p):
        raise ValueError(f"{len(y)} measured values but {len(p)} {what}")
    if len(y) < 3:
        raise ValueError(f"need at least 3 pairs to compute metrics, got {len(y)}")
    for name, arr in (("measured values", y), (what, p)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} {name} are not finite (first at index {int(np.flatnonzero(bad)[0])})")
    return y, p


def _pearson(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis. y, p: (..., n) → (...); NaN where either side is constant."""
    yc = y - y.mean(axis=-1, keepdims=True)
    pc = p - p.mean(axis=-1, keepdims=True)
    denom = np.sqrt((yc * yc).sum(axis=-1) * (pc * pc).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (yc * pc).sum(axis=-1) / denom
    # Rounding can push |r| a hair past 1 for (anti)identical inputs.
    return np.clip(r, -1.0, 1.0)


def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank) along the last axis, as Spearman's rho needs."""
    from scipy.stats import rankdata

    return rankdata(x, axis=-1, method="average")


def pearson_pvalue(r: float, n: int) -> float:
    """Two-tailed p-value of Pearson's r from n pairs (t = r √((n−2)/(1−r²)), n − 2 degrees of freedom)."""
    from scipy.stats import t as t_dist

    if not np.isfinite(r):
        return float("nan")
    if abs(r) >= 1.0:
        return 0.0
    t = abs(r) * math.sqrt((n - 2) / ((1.0 - r) * (1.0 + r)))
    return float(2.0 * t_dist.sf(t, n - 2))


def _metric_arrays(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """The metrics of BOOTSTRAP_KEYS along the last axis of y, p: (..., n)."""
    r = _pearson(y, p)
    resid = y - p
    ss_res = (resid * resid).sum(axis=-1)
    yc = y - y.mean(axis=-1, keepdims=True)
    ss_tot = (yc * yc).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = 1.0 - ss_res / ss_tot
    return {
        "pearson_r": r,
        "spearman_r": _pearson(_rank(y), _rank(p)),
        "r2": np.where(ss_tot > 0, r2, np.nan),
        "pearson_r_squared": r * r,
        "mse": ss_res / y.shape[-1],
        "mae": np.abs(resid).mean(axis=-1),
    }


def compute_metrics(y_true, y_pred) -> dict:
    """All metrics of measured ``y_true`` (n,) against predictions ``y_pred`` (n,), keys :data:`METRIC_KEYS`.

    Correlations are NaN when either side is constant.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Measured values, finite, n ≥ 3.
    y_pred : array-like, shape (n,)
        Predictions of the same rows.

    Returns
    -------
    dict
        ``n, pearson_r, pearson_p, spearman_r, r2`` (1 − SS_res/SS_tot), ``pearson_r_squared, mse, mae``.

    Raises
    ------
    ValueError
        Mismatched lengths, fewer than 3 pairs or non-finite values.
    """
    y, p = _check_pair(y_true, y_pred)
    vals = {k: float(v) for k, v in _metric_arrays(y, p).items()}
    out = {"n": len(y), "pearson_r": vals["pearson_r"], "pearson_p": pearson_pvalue(vals["pearson_r"], len(y))}
    out.update({k: vals[k] for k in ("spearman_r", "r2", "pearson_r_squared", "mse", "mae")})
    return out


class StreamingMetrics:
    """Pearson r (and its p-value), R², r², MSE, MAE and a mean loss, accumulated batch by batch.

    The one streaming implementation of these metrics: the trainer's validation after every epoch uses
    it, and its result for the best epoch is the run's ``metrics.json``. Eight float64 sums live on the
    device (no host synchronisation per batch); targets and predictions are shifted by a fixed
    ``center`` first (e.g. the mean validation target), so the sums of squares keep their precision for
    tens of millions of rows. :meth:`all_reduce` adds the sums of every data-parallel process, so the
    metrics are those of the whole split. With ``ranks=True`` the predictions are kept on the device as
    well and Spearman's rho (which has no streaming form) is computed by :meth:`compute`, gathered
    over processes.

    Why not ``torchmetrics`` (``PearsonCorrCoef``, ``R2Score``): its states are in the input's dtype
    (float32 under autocast) and it would be a dependency of training alone, absent from the bare GPU
    machines this trainer is checked on; eight sums and one ``all_reduce`` are all it would do here.
    The p-value is scipy's t test (:func:`pearson_pvalue`).

    Parameters
    ----------
    device : torch.device or str
        Where the sums live (the model's device).
    center : float
        Subtracted from targets and predictions before squaring (the metrics do not depend on it).
    ranks : bool
        Keep the predictions to report ``spearman_r`` too.
    """

    _N, _SY, _SYY, _SP, _SPP, _SYP, _SSE, _SAE, _LOSS = range(9)

    def __init__(self, device="cpu", center: float = 0.0, ranks: bool = False):
        import torch

        self.center = float(center)
        self.sums = torch.zeros(9, dtype=torch.float64, device=device)
        self._kept: list[tuple] | None = [] if ranks else None

    def update(self, y_true, y_pred, loss=None) -> None:
        """Add a batch. y_true, y_pred: (B,) tensors; loss: optional scalar tensor, the batch's mean loss."""
        import torch

        t = y_true.detach().double() - self.center
        p = y_pred.detach().double() - self.center
        r = t - p
        n = torch.tensor(float(t.numel()), dtype=torch.float64, device=t.device)
        lsum = loss.detach().double() * n if loss is not None else torch.zeros_like(n)
        self.sums += torch.stack([n, t.sum(), (t * t).sum(), p.sum(), (p * p).sum(), (t * p).sum(),
                                  (r * r).sum(), r.abs().sum(), lsum])
        if self._kept is not None:
            self._kept.append((y_true.detach().float(), y_pred.detach().float()))

    def all_reduce(self) -> None:
        """Sum over the processes of an initialised ``torch.distributed`` group (a no-op otherwise)."""
        import torch.distributed as tdist

        if tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1:
            tdist.all_reduce(self.sums)
            if self._kept is not None:
                mine = self._arrays()
                every = [None] * tdist.get_world_size()
                tdist.all_gather_object(every, mine)
                self._kept = [tuple(map(_as_tensor, pair)) for pair in every if len(pair[0])]

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        import torch

        if not self._kept:
            return np.empty(0), np.empty(0)
        y, p = (torch.cat(part).cpu().numpy() for part in zip(*self._kept))
        return y, p

    def compute(self) -> dict:
        """The metrics so far: keys of :data:`METRIC_KEYS` (``spearman_r`` only with ``ranks``) + ``loss``.

        Raises ``ValueError`` when fewer than 3 pairs were added.
        """
        n, sy, syy, sp, spp, syp, sse, sae, sloss = (float(v) for v in self.sums.cpu())
        if n < 3:
            raise ValueError(f"need at least 3 pairs to compute metrics, got {int(n)}")
        vy, vp, cov = syy - sy * sy / n, spp - sp * sp / n, syp - sy * sp / n
        r = min(1.0, max(-1.0, cov / math.sqrt(vy * vp))) if vy > 0 and vp > 0 else float("nan")
        out = {"n": int(n), "pearson_r": r, "pearson_p": pearson_pvalue(r, int(n))}
        if self._kept is not None:
            y, p = self._arrays()
            out["spearman_r"] = float(_pearson(_rank(y), _rank(p)))
        out.update({"r2": 1.0 - sse / vy if vy > 0 else float("nan"), "pearson_r_squared": r * r,
                    "mse": sse / n, "mae": sae / n, "loss": sloss / n})
        return out


def _as_tensor(a):
    import torch

    return torch.from_numpy(np.asarray(a))


def group_codes(groups, n: int) -> np.ndarray:
    """Integer cluster codes (n,) of group labels, numbered in order of first appearance.

    Parameters
    ----------
    groups : array-like (n,)
        Any labels (lineage ids, promoter classes), compared as text (3 and "3" are one group); an empty,
        None or NaN label is an error (a row without a group cannot be resampled with it).
    n : int
        The number of rows the labels must cover.

    Returns
    -------
    numpy.ndarray (n,) int64
        0 for the first row's group, 1 for the next new group, ... (so singleton groups number the rows
        0..n-1, which makes a grouped bootstrap of singletons the row bootstrap, draw for draw).
    """
    labels = [str(g) for g in np.asarray(groups, dtype=object).ravel()]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} group labels for {n} rows")
    missing = [i for i, g in enumerate(labels) if g in ("", "None", "nan", "NaN")]
    if missing:
        raise ValueError(f"{len(missing)} rows have no group label (first at index {missing[0]})")
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(g, len(index)) for g in labels), dtype=np.int64, count=n)
    if len(index) < 2:
        raise ValueError("a grouped bootstrap needs at least 2 groups, got 1")
    return codes


def _boot_indices(n: int, n_boot: int, seed: int, codes: np.ndarray | None = None, chunk: int = 256):
    """Yield (b, m) int index blocks of bootstrap resamples, drawn from one seeded generator.

    Without ``codes`` rows are resampled (m = n). With cluster ``codes`` (n,) (:func:`group_codes`) the
    G groups are resampled with replacement, each drawn group bringing all its rows: a replicate's size
    varies with the groups drawn, so a block holds the replicates of equal size (one per block when sizes
    differ). The draws are those of the row bootstrap with n replaced by G.
    """
    rng = np.random.default_rng(seed)
    if codes is not None:
        order = np.argsort(codes, kind="stable")
        sizes = np.bincount(codes)
        starts = np.cumsum(sizes) - sizes
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        done += b
        if codes is None:
            yield rng.integers(0, n, size=(b, n))
            continue
        reps = [_cluster_rows(d, order, starts, sizes) for d in rng.integers(0, len(sizes), size=(b, len(sizes)))]
        if len({len(r) for r in reps}) == 1:
            yield np.stack(reps)
        else:
            yield from (r[None, :] for r in reps)


def _cluster_rows(drawn: np.ndarray, order: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The rows (m,) of the drawn groups (G,), each group's rows contiguous in ``order``."""
    lengths = sizes[drawn]
    offsets = np.repeat(starts[drawn] - (np.cumsum(lengths) - lengths), lengths)
    return order[offsets + np.arange(int(lengths.sum()))]


def _interval(samples: np.ndarray, level: float) -> list[float]:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(samples, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def _check_boot(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")


def bootstrap_ci(y_true, y_pred, n_boot: int = 1000, seed: int = 0, level: float = 0.95, groups=None) -> dict:
    """Seeded percentile bootstrap intervals for every metric in :data:`BOOTSTRAP_KEYS`.

    Parameters
    ----------
    y_true, y_pred : array-like (n,)
        Measured values and predictions.
    n_boot, seed, level : int, int, float
        Replicates, generator seed, interval coverage.
    groups : array-like (n,), optional
        Cluster labels (lineages, trajectories, promoter classes): whole groups are resampled (a cluster
        bootstrap), so related sequences are not counted as independent evidence. Singleton groups give
        the row bootstrap, draw for draw.

    Returns
    -------
    dict
        ``{"level", "n_boot", "seed", <metric>: [low, high], ...}``, plus ``"resampled": "groups"`` and
        ``"n_groups"`` with ``groups``; the same seed gives the same intervals.
    """
    _check_boot(n_boot, level)
    y, p = _check_pair(y_true, y_pred)
    codes = None if groups is None else group_codes(groups, len(y))
    samples: dict[str, list[np.ndarray]] = {k: [] for k in BOOTSTRAP_KEYS}
    for idx in _boot_indices(len(y), n_boot, seed, codes):
        for k, v in _metric_arrays(y[idx], p[idx]).items():
            samples[k].append(v)
    out: dict = {"level": level, "n_boot": n_boot, "seed": seed}
    if codes is not None:
        out.update(resampled="groups", n_groups=int(codes.max()) + 1)
    out.update({k: _interval(np.concatenate(v), level) for k, v in samples.items()})
    return out


def steiger_z(r_ya: float, r_yb: float, r_ab: float, n: int, *, delta_r: float | None = None,
              one_minus_r_ab: float | None = None) -> tuple[float, float]:
    """Steiger's (1980, eq. 14-15) Z test of H0: ρ(y, a) = ρ(y, b) for two correlations sharing y.

    Uses Fisher's z of each correlation and the pooled r̄ = (r_ya + r_yb) / 2 in the covariance term;
    r_ab is the correlation of the two predictors with each other.

    Parameters
    ----------
    r_ya, r_yb, r_ab : float
        The three correlations.
    n : int
        Pairs (at least 4).
    delta_r, one_minus_r_ab : float, optional
        r_ya − r_yb and 1 − r_ab computed without cancellation (:func:`compare_models` computes both from
        the standardised difference of the predictions). For nearly identical predictors both are tiny and
        subtracting rounded correlations would leave mostly rounding; by default they are the differences.

    Returns
    -------
    (Z, two-tailed p)
        Z = 0, p = 1 when the correlations are equal (identical predictors included). NaN, NaN where the
        test is undefined: a correlation that is NaN (constant input) or exactly ±1 while the other is not
        (Fisher's z is infinite); never an infinity.
    """
    from scipy.stats import norm

    if n < 4:
        raise ValueError(f"Steiger's test needs at least 4 pairs, got {n}")
    delta_r = r_ya - r_yb if delta_r is None else delta_r
    delta = 1.0 - r_ab if one_minus_r_ab is None else one_minus_r_ab
    if not all(math.isfinite(v) for v in (r_ya, r_yb, r_ab, delta_r, delta)):
        return float("nan"), float("nan")
    if delta_r == 0.0 or r_ya == r_yb:
        return 0.0, 1.0
    if max(abs(r_ya), abs(r_yb)) >= 1.0:
        return float("nan"), float("nan")
    rbar = (r_ya + r_yb) / 2.0
    q = 1.0 - rbar * rbar
    # 2 − 2c of Steiger's eq. 15 rewritten in δ = 1 − r_ab (exact algebra): no cancellation as r_ab → 1.
    var = 2.0 * delta / q - (rbar * delta / q) ** 2
    # atanh(r_ya) − atanh(r_yb) = atanh(Δr / (1 − r_ya r_yb)), exact and accurate for a small Δr
    diff = math.atanh(delta_r / (1.0 - r_ya * r_yb))
    if not var > 0.0:
        return float("nan"), float("nan")
    z = diff * math.sqrt(n - 3) / math.sqrt(var)
    return z, float(2.0 * norm.sf(abs(z)))


def _standardized_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(r_ya − r_yb, 1 − r_ab) from the standardised difference of a and b, free of cancellation.

    With unit-norm centred vectors ã, b̃, ỹ: r_ya − r_yb = ỹ·(ã − b̃) and 1 − r_ab = |ã − b̃|² / 2.
    A difference within float64 rounding (b an exact affine copy of a, computed in other units) is 0:
    the ratio of two rounding errors would otherwise pass for a Z. NaN when y, a or b is constant.
    """
    def unit(v):
        c = v - v.mean()
        norm = math.sqrt(float(c @ c))
        return c / norm if norm > 0 else np.full_like(c, np.nan)

    ua = unit(a)
    d = ua - unit(b)
    if np.abs(d).max() <= 1e-12 * np.abs(ua).max():
        d = np.zeros_like(d)
    return float(unit(y) @ d), float(d @ d) / 2.0


def compare_models(y, pred_a, pred_b, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                   groups=None) -> dict:
    """Test whether model a's Pearson r with ``y`` differs from model b's on the same sequences.

    Parameters
    ----------
    y, pred_a, pred_b : array-like (n,)
        Measurements and the two models' predictions, aligned on the same sequences.
    n_boot, seed, level : int, int, float
        Paired-bootstrap replicates, seed and interval coverage.
    groups : array-like (n,), optional
        Cluster labels: the paired bootstrap resamples whole groups, and ``p`` is the cluster-robust Wald
        test below instead of Steiger's, which assumes independent sequences.

    Returns
    -------
    dict
        r_a, r_b, r_ab, delta_r = r_a − r_b with its paired-bootstrap interval and two-sided bootstrap p
        (both models resampled together, so their dependence is kept), Steiger's Z and p, Δmse = mse_a −
        mse_b with its interval, and ``p`` with ``p_method``: the comparison's p-value for multiplicity
        correction (:func:`adjust_pvalues`). Without groups that is Steiger's p. With groups it is
        ``cluster_p``, a Wald test of Fisher's Δz = atanh r_a − atanh r_b (Steiger's statistic) whose
        standard error is the cluster bootstrap's (``cluster_z`` = Δz / sd of Δz*): valid for related
        sequences, and unlike the bootstrap p not floored at 2 / (n_boot + 1). ``n_groups`` with groups.
    """
    _check_boot(n_boot, level)
    y, a = _check_pair(y, pred_a, "predictions of model a")
    _, b = _check_pair(y, pred_b, "predictions of model b")
    n = len(y)
    codes = None if groups is None else group_codes(groups, n)
    r_a, r_b, r_ab = (float(_pearson(u, v)) for u, v in ((y, a), (y, b), (a, b)))
    pairs, dmse = [], []
    for idx in _boot_indices(n, n_boot, seed, codes):
        yy = y[idx]
        pairs.append(np.stack([_pearson(yy, a[idx]), _pearson(yy, b[idx])], axis=-1))
        dmse.append(((yy - a[idx]) ** 2).mean(axis=-1) - ((yy - b[idx]) ** 2).mean(axis=-1))
    rs = np.concatenate(pairs)
    d = rs[:, 0] - rs[:, 1]
    # Two-sided bootstrap p: twice the smaller tail beyond 0, with the +1 correction so it is never 0.
    tail = min(int((d <= 0).sum()), int((d >= 0).sum()))
    delta_r, one_minus_r_ab = _standardized_difference(y, a, b)
    z, p_z = steiger_z(r_a, r_b, r_ab, n, delta_r=delta_r, one_minus_r_ab=one_minus_r_ab)
    bootstrap_p = 1.0 if not d.any() else min(1.0, 2.0 * (tail + 1) / (len(d) + 1))
    out = {
        "n": n,
        "r_a": r_a,
        "r_b": r_b,
        "r_ab": r_ab,
        "delta_r": delta_r if math.isfinite(delta_r) else r_a - r_b,
        "delta_r_ci": _interval(d, level),
        "bootstrap_p": bootstrap_p,
        "steiger_z": z,
        "steiger_p": p_z,
        "delta_mse": float(((y - a) ** 2).mean() - ((y - b) ** 2).mean()),
        "delta_mse_ci": _interval(np.concatenate(dmse), level),
        "level": level,
        "n_boot": n_boot,
        "seed": seed,
        "p": p_z,
        "p_method": "steiger",
    }
    if not math.isfinite(p_z) and math.isfinite(r_a) and math.isfinite(r_b):
        # Steiger undefined (a correlation of exactly ±1): the paired bootstrap still compares them
        out.update(p=bootstrap_p, p_method="bootstrap")
    if codes is not None:
        cz, cp = _cluster_wald(r_a, r_b, rs, delta_r)
        out.update(n_groups=int(codes.max()) + 1, cluster_z=cz, cluster_p=cp, p=cp, p_method="cluster_wald")
    return out


def _cluster_wald(r_a: float, r_b: float, rs: np.ndarray, delta_r: float) -> tuple[float, float]:
    """Wald Z and two-tailed p of Fisher's Δz, its standard error from bootstrap pairs rs (B, 2) of (r_a*, r_b*).

    Z = 0, p = 1 for equal correlations; NaN, NaN where undefined (a correlation of ±1 or NaN, or no
    resampling variance while the correlations differ), never an infinity.
    """
    from scipy.stats import norm

    if delta_r == 0.0 or r_a == r_b:
        return 0.0, 1.0
    if not (math.isfinite(delta_r) and max(abs(r_a), abs(r_b)) < 1.0):
        return float("nan"), float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        dz = np.arctanh(np.clip(rs, -1.0, 1.0)) @ np.array([1.0, -1.0])
    dz = dz[np.isfinite(dz)]
    se = float(np.std(dz, ddof=1)) if len(dz) > 1 else float("nan")
    if not se > 0.0:
        return float("nan"), float("nan")
    z = math.atanh(delta_r / (1.0 - r_a * r_b)) / se
    return z, float(2.0 * norm.sf(abs(z)))


P_ADJUST_METHODS = ("bh", "by", "holm")


def adjust_pvalues(pvalues, method: str = "bh") -> np.ndarray:
    """p-values adjusted for multiple comparisons (NaN entries stay NaN and do not count as tests).

    Parameters
    ----------
    pvalues : array-like (m,)
        One p-value per comparison of the family (e.g. every pairwise model comparison of a run).
    method : {"bh", "by", "holm"}
        "bh": Benjamini-Hochberg q-values (false discovery rate, valid under independence or positive
        dependence, as between comparisons sharing models and test sets); "by": Benjamini-Yekutieli (any
        dependence); both by :func:`scipy.stats.false_discovery_control`. "holm": Holm's step-down
        (family-wise error rate).

    Returns
    -------
    numpy.ndarray (m,) float64
    """
    from scipy.stats import false_discovery_control

    if method not in P_ADJUST_METHODS:
        raise ValueError(f"unknown p-value adjustment {method!r}; known: {', '.join(P_ADJUST_METHODS)}")
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError("p-values must lie between 0 and 1")
    if not ok.any():
        return out
    if method == "holm":
        q = p[ok]
        order = np.argsort(q, kind="stable")
        m = len(q)
        stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * q[order]))
        adjusted = np.empty(m)
        adjusted[order] = stepped
        out[ok] = adjusted
    else:
        out[ok] = false_discovery_control(p[ok], method=method)
    return out
