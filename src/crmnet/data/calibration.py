"""Summary statistics that compare a promoter data set with the real Vaishnav et al. random promoters.

The calibrated simulator (:mod:`crmnet.data.calibrated`) is fitted to, and checked against, these numbers;
``benchmarks/calibrate_simulator.py`` prints them side by side for simulated and real data. Every statistic
is computed on the **variable region** only (the sequence between the constant flanks), so the flanks,
identical in every construct, contribute nothing:

* base composition (fraction of A, C, G, T);
* Spearman ρ between expression and GC fraction, and between expression and the number of 5-nt windows
  that are all A or all T (poly-dA:dT tracts);
* Pearson r of a two-feature linear model (GC fraction, poly-dA:dT windows), 5-fold cross-validated;
* Pearson r of a 6-mer ridge regression (counts of the 4,096 6-mers), 5-fold cross-validated with the
  ridge penalty chosen inside each training fold by exact leave-one-out (kernel form, so n ≪ 4,096 is
  cheap);
* JASPAR motif sites per sequence (log2-odds score at least the motif's mean site score minus
  ``site_margin`` bits, either strand, as in :mod:`crmnet.data.simulate`) and the in-sample R² of a
  linear model of expression on the per-motif site counts;
* the value distribution: quantiles, the fraction of integer values and the fractions at exactly the
  bounds 0 and 17.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse, stats

from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK
from crmnet.data.encoding import CODE_N, Encoding, encode

KMER = 6
RIDGE_ALPHAS = tuple(10.0 ** np.arange(-1, 5.01, 0.5))
FOLDS = 5
BOUNDS = (0.0, 17.0)


def variable_regions(sequences: Sequence[str]) -> np.ndarray:
    """The variable regions of construct sequences, as codes padded with ``N``.

    A sequence that starts with the left flank and ends with the right flank loses both; otherwise only
    the flank that is present is cut (a few real random-set rows lack part of a flank).

    Parameters
    ----------
    sequences : list of str, length n

    Returns
    -------
    (n, W) uint8 codes (``A0 C1 G2 T3``, ``N`` = 4 pads the end), ``W`` the longest variable region.
    """
    cut = []
    for s in sequences:
        s = s.upper().lstrip("N")
        s = s.removeprefix(LEFT_FLANK)
        s = s.removesuffix(RIGHT_FLANK)
        cut.append(s)
    width = max(len(s) for s in cut)
    codes, _ = encode(cut, Encoding(length=width, pad="end", truncate="end", channels="ACGT"))
    return codes


def composition(codes: np.ndarray) -> np.ndarray:
    """Fraction of A, C, G, T over all non-``N`` positions of codes (n, W); returns (4,)."""
    counts = np.bincount(codes.ravel(), minlength=5)[:4].astype(np.float64)
    return counts / counts.sum()


def gc_fraction(codes: np.ndarray) -> np.ndarray:
    """GC fraction of each row of codes (n, W), ``N`` excluded; returns (n,)."""
    known = (codes < CODE_N).sum(axis=1)
    return ((codes == 1) | (codes == 2)).sum(axis=1) / np.maximum(known, 1)


def polyat_windows(codes: np.ndarray, run: int = 5) -> np.ndarray:
    """Number of ``run``-nt windows that are all A or all T in each row of codes (n, W); returns (n,) int."""
    n, width = codes.shape
    total = np.zeros(n, dtype=np.int64)
    for base in (0, 3):
        hit = np.ones((n, width - run + 1), dtype=bool)
        for j in range(run):
            hit &= codes[:, j : width - run + 1 + j] == base
        total += hit.sum(axis=1)
    return total


def kmer_index(codes: np.ndarray, k: int = KMER) -> tuple[np.ndarray, np.ndarray]:
    """Base-4 index of every k-mer window of codes (n, W): (n, W − k + 1) int64 and a validity mask (no ``N``)."""
    n, width = codes.shape
    index = np.zeros((n, width - k + 1), dtype=np.int64)
    valid = np.ones_like(index, dtype=bool)
    for j in range(k):
        window = codes[:, j : width - k + 1 + j]
        index = index * 4 + np.minimum(window, 3)
        valid &= window < CODE_N
    return index, valid


def kmer_counts(codes: np.ndarray, k: int = KMER) -> sparse.csr_matrix:
    """Sparse (n, 4^k) counts of the k-mers (forward strand) in each row of codes (n, W)."""
    index, valid = kmer_index(codes, k)
    rows = np.broadcast_to(np.arange(len(codes))[:, None], index.shape)
    return sparse.csr_matrix(
        (np.ones(int(valid.sum())), (rows[valid], index[valid])), shape=(len(codes), 4**k), dtype=np.float64
    )


def _loo_alpha(eigval: np.ndarray, eigvec: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> float:
    """The penalty with the smallest exact leave-one-out error of kernel ridge with K = V diag(λ) Vᵀ."""
    proj = eigvec.T @ y
    best, best_err = alphas[0], np.inf
    for alpha in alphas:
        shrink = eigval / (eigval + alpha)
        fitted = eigvec @ (shrink * proj)
        hat_diag = (eigvec**2) @ shrink
        err = float(np.mean(((y - fitted) / (1.0 - hat_diag)) ** 2))
        if err < best_err:
            best, best_err = alpha, err
    return float(best)


def fit_ridge(x: sparse.spmatrix | np.ndarray, y: np.ndarray,
              alphas: Sequence[float] = RIDGE_ALPHAS) -> tuple[np.ndarray, float, float]:
    """Ridge regression of y on x with the penalty chosen by exact leave-one-out, in kernel form.

    Parameters
    ----------
    x : (n, p) features (sparse or dense); y : (n,) targets.

    Returns
    -------
    weights (p,), intercept, alpha: ``prediction = x @ weights + intercept``.
    """
    x = sparse.csr_matrix(x, dtype=np.float64)
    mean = np.asarray(x.mean(axis=0)).ravel()
    y_mean = float(y.mean())
    # The centred Gram matrix (x − 1·meanᵀ)(x − 1·meanᵀ)ᵀ from the sparse x, never densifying x itself.
    xm = x @ mean
    gram = (x @ x.T).toarray() - xm[:, None] - xm[None, :] + float(mean @ mean)
    eigval, eigvec = np.linalg.eigh(gram)
    eigval = np.clip(eigval, 0.0, None)
    alpha = _loo_alpha(eigval, eigvec, y - y_mean, alphas)
    dual = eigvec @ ((eigvec.T @ (y - y_mean)) / (eigval + alpha))
    weights = x.T @ dual - mean * dual.sum()
    return weights, float(y_mean - mean @ weights), alpha


def _folds(n: int, folds: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n) % folds


def cv_pearson(x, y: np.ndarray, folds: int = FOLDS, seed: int = 0, ridge: bool = True) -> float:
    """Pearson r of out-of-fold predictions: ridge (penalty chosen inside each training fold) or OLS.

    x : (n, p) features; y : (n,) targets. Folds are a seeded random partition.
    """
    fold = _folds(len(y), folds, seed)
    pred = np.empty(len(y), dtype=np.float64)
    for f in range(folds):
        train, test = fold != f, fold == f
        if ridge:
            w, b, _ = fit_ridge(x[train], y[train])
        else:
            design = np.column_stack([np.ones(int(train.sum())), x[train]])
            coef = np.linalg.lstsq(design, y[train], rcond=None)[0]
            w, b = coef[1:], coef[0]
        pred[test] = x[test] @ w + b
    return float(stats.pearsonr(pred, y)[0])


def motif_site_counts(codes: np.ndarray, log_odds: Sequence[np.ndarray], thresholds: Sequence[float]) -> np.ndarray:
    """Sites per sequence and motif: windows of either strand scoring at least the motif's threshold.

    Parameters
    ----------
    codes : (n, W) uint8; ``N`` never scores (a window touching one is not a site).
    log_odds : M arrays (4, w_m), rows A, C, G, T; thresholds : M thresholds in the same units.

    Returns
    -------
    (n, M) int64 counts.
    """
    n, width = codes.shape
    padded = np.where(codes < CODE_N, codes, 4)
    out = np.zeros((n, len(log_odds)), dtype=np.int64)
    for m, (lo, t) in enumerate(zip(log_odds, thresholds)):
        w = lo.shape[1]
        for matrix in (lo, lo[::-1, ::-1]):
            table = np.vstack([matrix, np.full((1, w), -np.inf)])  # row 4: N
            score = np.zeros((n, width - w + 1))
            for j in range(w):
                score += table[padded[:, j : width - w + 1 + j], j]
            out[:, m] += (score >= t).sum(axis=1)
    return out


def r_squared(x: np.ndarray, y: np.ndarray) -> float:
    """In-sample R² of an OLS fit of y (n,) on x (n, p) with an intercept."""
    design = np.column_stack([np.ones(len(y)), x])
    resid = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return float(1.0 - resid.var() / y.var())


def summarize(codes: np.ndarray, values: np.ndarray, motifs=None, seed: int = 0) -> dict:
    """Every calibration statistic of one data set.

    Parameters
    ----------
    codes : (n, W) uint8 variable regions (see :func:`variable_regions`); values : (n,) expression.
    motifs : ``(names, log_odds, thresholds)`` of the motifs to count, or None to skip motif statistics.

    Returns
    -------
    dict of plain floats and lists (JSON-ready).
    """
    values = np.asarray(values, dtype=np.float64)
    gc = gc_fraction(codes)
    tracts = polyat_windows(codes)
    comp = composition(codes)
    q = np.quantile(values, [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    out = {
        "n": len(values),
        "composition": dict(zip("ACGT", np.round(comp, 4).tolist())),
        "rho_gc": float(stats.spearmanr(gc, values)[0]),
        "rho_polyat": float(stats.spearmanr(tracts, values)[0]),
        "r_gc_polyat": cv_pearson(np.column_stack([gc, tracts]), values, seed=seed, ridge=False),
        "r_kmer_ridge": cv_pearson(kmer_counts(codes), values, seed=seed),
        "quantiles": dict(zip(["q01", "q05", "q25", "q50", "q75", "q95", "q99"], np.round(q, 3).tolist())),
        "mean": float(values.mean()),
        "sd": float(values.std()),
        "frac_integer": float(np.mean(values == np.round(values))),
        "frac_at_bounds": float(np.mean((values <= BOUNDS[0]) | (values >= BOUNDS[1]))),
    }
    if motifs is not None:
        names, log_odds, thresholds = motifs
        counts = motif_site_counts(codes, log_odds, thresholds)
        out["motif_sites_per_seq"] = dict(zip(names, np.round(counts.mean(axis=0), 4).tolist()))
        out["motif_r2"] = r_squared(counts.astype(np.float64), values)
    return out


def fit_half(codes: np.ndarray) -> np.ndarray:
    """The declared fitting half of a set of variable regions: a fixed hash of each region's bases.

    Membership depends on the sequence alone (BLAKE2b of its bases, lowest bit), so a variable region
    falls on the same side in every file that holds it (the defined-random set shares 1,730 regions with
    the complex HQ set) and repeated rows never straddle the halves.

    Parameters
    ----------
    codes : (n, W) uint8 variable regions (see :func:`variable_regions`)

    Returns
    -------
    (n,) bool, True for the fitting half.
    """
    import hashlib

    return np.array([hashlib.blake2b(row[row < CODE_N].tobytes(), digest_size=1).digest()[0] % 2 == 0
                     for row in np.asarray(codes, dtype=np.uint8)], dtype=bool)


def planted_motifs(config=None) -> tuple[list[str], list[np.ndarray], list[float]]:
    """``(names, log_odds, thresholds)`` of the planted-motif preset's motifs, for :func:`summarize`.

    The thresholds are the ones :mod:`crmnet.data.simulate` binds with (mean site score − ``site_margin``).
    """
    from crmnet.data.simulate import SimulatorConfig, _prepare_motifs

    prepared = _prepare_motifs(config or SimulatorConfig())
    return [m.name for m in prepared], [m.log_odds for m in prepared], [m.threshold for m in prepared]
