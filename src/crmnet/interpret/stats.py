"""Statistics shared by the interpretation stage: Benjamini-Hochberg q-values and the exact mHG test.

**mHG** (Eden et al. 2007, the statistic of DRIMust): for a ranked binary list (does the sequence at rank
``i`` hold a motif?), the minimum over cut-offs ``n`` of the hypergeometric tail of the number of ones
among the first ``n``. Its exact p-value is computed by dynamic programming over the ``(n, b)`` lattice as
the probability mass a uniformly random ranking sends across the threshold, summed as it crosses, so that
tiny p-values keep their precision (no ``1 − x`` cancellation).
"""

from __future__ import annotations

import math

import numpy as np


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values.

    Parameters
    ----------
    p : ndarray, any shape
        p-values, all finite.

    Returns
    -------
    ndarray, same shape as ``p``
        The q-values over all entries (:func:`crmnet.evaluation.metrics.adjust_pvalues`, method ``"bh"``).
    """
    from crmnet.evaluation.metrics import adjust_pvalues

    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        return p.copy()
    return adjust_pvalues(p, "bh").reshape(p.shape)


def add_q(rows: list[dict], key: str, out: str = "q_value") -> None:
    """Add BH q-values of ``row[key]`` over the rows whose p-value is finite (the others get None).

    Parameters
    ----------
    rows : list of dict
        Modified in place: ``row[out]`` is set on every row.
    key : str
        The p-value field.
    out : str
        The q-value field to write.
    """
    p = np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=np.float64)
    ok = np.isfinite(p)
    q = np.full(len(p), np.nan)
    q[ok] = bh_adjust(p[ok])
    for r, v in zip(rows, q):
        r[out] = float(v) if np.isfinite(v) else None


# The mHG kernels are plain functions here, compiled with numba on first use (:func:`_mhg_kernels`) so that
# importing this module does not import numba. Compiling replaces each module global by its compiled
# version, which is how the kernels find each other, and lets numba cache them on disk.
def _log_tail(N, B, n, b):
    """The log P(X >= b) for X ~ Hypergeometric(N population, B successes, n draws); -inf if impossible."""
    hi = min(n, B)
    if b > hi:
        return -np.inf
    b = max(b, max(0, n - (N - B)))
    lc = math.lgamma(B + 1) + math.lgamma(N - B + 1) + math.lgamma(n + 1) + math.lgamma(N - n + 1) - math.lgamma(N + 1)
    first = lc - math.lgamma(b + 1) - math.lgamma(B - b + 1) - math.lgamma(n - b + 1) - math.lgamma(N - B - n + b + 1)
    total = 1.0
    term = 1.0
    for x in range(b, hi):
        term *= (n - x) * (B - x) / ((x + 1.0) * (N - B - n + x + 1.0))  # pmf(x + 1) / pmf(x)
        total += term
        if term < total * 1e-16:
            break
    return first + math.log(total)


def _statistic(labels):
    """labels: (N,) bool in rank order → (log mHG = min over cut-offs of the log tail, that cut-off)."""
    N = labels.shape[0]
    B = 0
    for i in range(N):
        B += labels[i]
    best, at, b = 0.0, N, 0
    for i in range(N):
        if labels[i]:
            b += 1
            v = _log_tail(N, B, i + 1, b)
            if v < best:
                best, at = v, i + 1
    return best, at


def _pvalue(N, B, log_stat):
    """The mHG p-value: exact probability of a statistic at least as extreme.

    Probability that a uniformly random ranking of B ones among N reaches a lattice point (n, b) whose
    tail is <= the statistic: the mass leaving the safe region, summed as it leaves (no 1 - x cancellation).
    """
    if B == 0 or B == N:
        return 1.0
    thr = log_stat + 1e-9
    f = np.zeros(B + 2)
    g = np.zeros(B + 2)
    f[0] = 1.0
    crossed = 0.0
    # Smallest b whose tail at the current n is <= the statistic; nondecreasing in n (more draws make a
    # given count likelier), so f is zero from bstar on and each row stops there.
    bstar = 1
    for n in range(N):
        top = min(n, B, bstar - 1)
        for b in range(top + 2):
            g[b] = 0.0
        left = N - n
        for b in range(top + 1):
            up = (B - b) / left
            g[b + 1] += f[b] * up
            g[b] += f[b] * (1.0 - up)
        n1 = n + 1
        while bstar <= min(n1, B) and _log_tail(N, B, n1, bstar) > thr:
            bstar += 1
        for b in range(top + 2):
            if b >= bstar:
                crossed += g[b]
                f[b] = 0.0
            else:
                f[b] = g[b]
    return min(crossed, 1.0)


def _mhg_rows(labels_matrix):
    m, N = labels_matrix.shape
    stats = np.zeros(m)
    cuts = np.zeros(m, dtype=np.int64)
    ps = np.ones(m)
    for j in range(m):
        s, at = _statistic(labels_matrix[j])
        B = 0
        for i in range(N):
            B += labels_matrix[j, i]
        stats[j], cuts[j] = s, at
        ps[j] = _pvalue(N, B, s) if s < 0.0 else 1.0
    return stats, cuts, ps


_COMPILED: list = []


def _mhg_kernels():
    """Compile (once per process; numba caches on disk) the mHG kernels; returns the row kernel."""
    if not _COMPILED:
        import numba

        for name in ("_log_tail", "_statistic", "_pvalue", "_mhg_rows"):  # callees first
            globals()[name] = numba.njit(cache=True)(globals()[name])
        _COMPILED.append(globals()["_mhg_rows"])
    return _COMPILED[0]


def mhg(labels: np.ndarray) -> tuple[float, float, int]:
    """The mHG statistic of one ranked binary list.

    Parameters
    ----------
    labels : ndarray, shape (N,), bool
        ``labels[i]``: the item at rank ``i`` (best first) is in the set.

    Returns
    -------
    statistic : float
        The minimum hypergeometric tail over the cut-offs.
    p_value : float
        Its exact p-value under uniformly random rankings.
    cutoff : int
        The cut-off ``n`` where the minimum is reached.
    """
    stats, ps, cuts = mhg_many(np.asarray(labels, dtype=np.bool_)[None, :])
    return float(stats[0]), float(ps[0]), int(cuts[0])


def mhg_many(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mHG statistic of many ranked lists at once (see :func:`mhg`).

    Parameters
    ----------
    labels : ndarray, shape (m, N), bool
        One ranked list per row.

    Returns
    -------
    statistics, p_values : ndarray, shape (m,), float64
    cutoffs : ndarray, shape (m,), int64
    """
    log_stats, cuts, ps = _mhg_kernels()(np.ascontiguousarray(labels, dtype=np.bool_))
    return np.exp(log_stats), ps, cuts
