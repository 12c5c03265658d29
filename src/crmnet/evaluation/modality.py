"""Whether a pooled r comes from differences between groups rather than the ranking within them.

A pooled Pearson r over a set that mixes groups with different mean expression (promoter classes in
the native test sets, drift lineages, SSWM trajectories) is high for any model that only tells the groups
apart. :func:`multimodality` compares the pooled r with the r *within* groups and flags the set when the
pooled r exceeds it by ``gap`` or more:

* with ``groups`` (a lineage or class per row), the within-group r is the pooled within-group
  correlation: Pearson r of measured and predicted values after subtracting each group's means (the
  correlation an ANCOVA with a group factor sees); the size-weighted mean of per-group r (groups of
  ``min_group`` rows or more) is reported beside it;
* without groups, the measured values are tested for bimodality with a two-component Gaussian mixture
  (EM, deterministic start at the quartiles): the set is bimodal when the mixture is strongly preferred
  by BIC (ΔBIC > 10, Kass & Raftery 1995), both components hold at least 5 % of the rows, and they are
  separated by Ashman's D = √2·|μ₁ − μ₂| / √(σ₁² + σ₂²) > 2 (a two-Gaussian mixture with D ≤ 2 has one
  mode). Only then are the rows assigned to their more likely component and the within-mode r computed
  as above. Modes defined on the measured values also narrow each mode's range, which lowers the r within
  them even for one linear relation (range restriction), so the within-mode r is compared not with the
  pooled r but with what selection on y alone would leave of it: Thorndike's case II,
  r_k = r·√u_k / √(1 − r² + r²·u_k) with u_k the mode's share of the measured variance
  (``expected_within_r``, size-weighted over modes). The set is flagged when the mean within-mode r
  falls ``gap`` or more below that: the model ranks within the modes worse than a single linear
  relation with the same pooled r would.
"""

from __future__ import annotations

import math

import numpy as np

from crmnet.evaluation.metrics import _check_pair, _pearson, group_codes

BIC_STRONG = 10.0  # ΔBIC above which the evidence for two components is "very strong"
ASHMAN_D = 2.0  # the separation beyond which a two-Gaussian mixture is bimodal
MIN_WEIGHT = 0.05  # a "mode" of fewer rows than this is a tail, not a mode


def multimodality(y_true, y_pred, groups=None, *, gap: float = 0.1, min_group: int = 3) -> dict:
    """Pooled Pearson r against the r within groups (or within modes of the measured values).

    Parameters
    ----------
    y_true, y_pred : array-like (n,)
        Measured values and predictions.
    groups : array-like (n,), optional
        Group labels (lineages, classes). Without them the groups are the modes of ``y_true``, if any.
    gap : float
        Flag the set when the within-group r falls this far below its reference (the module docstring).
    min_group : int
        Smallest group whose own r enters ``mean_group_r``.

    Returns
    -------
    dict
        ``method`` ("groups" or "mixture"), ``pooled_r``, ``within_r``, ``mean_group_r``, ``n_groups``,
        ``between_fraction`` (share of the measured variance between groups, η²), ``flag`` (bool) and
        ``message`` (one line, or None). The mixture method adds ``mixture`` (weights, means, sds,
        ``ashman_d``, ``delta_bic``, ``bimodal``) and ``expected_within_r``; when the measured values are
        not bimodal the within-group values are None and the flag is False.
    """
    y, p = _check_pair(y_true, y_pred)
    pooled = float(_pearson(y, p))
    if groups is not None:
        out = {"method": "groups", "pooled_r": pooled, **_within(y, p, group_codes(groups, len(y)), min_group)}
    else:
        mix = two_component_mixture(y)
        out = {"method": "mixture", "pooled_r": pooled, "mixture": mix}
        codes = mix.pop("assignment")
        if mix["bimodal"]:
            out.update(_within(y, p, codes, min_group), expected_within_r=_restricted_r(pooled, y, codes))
        else:
            out.update(within_r=None, mean_group_r=None, n_groups=1, between_fraction=None,
                       expected_within_r=None)
    # Groups: pooled vs pooled-within r. Modes of y: the mean within-mode r vs its range-restricted expectation.
    ref, got = ((pooled, out["within_r"]) if groups is not None
                else (out["expected_within_r"], out["mean_group_r"]))
    out["flag"] = bool(ref is not None and got is not None and math.isfinite(ref) and math.isfinite(got)
                       and ref - got >= gap)
    out["message"] = _message(out) if out["flag"] else None
    return out


def _within(y: np.ndarray, p: np.ndarray, codes: np.ndarray, min_group: int) -> dict:
    """Pooled within-group r, size-weighted mean per-group r and η² of y for cluster codes (n,)."""
    k = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=k)
    yc = y - (np.bincount(codes, y, k) / sizes)[codes]
    pc = p - (np.bincount(codes, p, k) / sizes)[codes]
    within = float(_pearson(yc, pc)) if (yc != 0).any() and (pc != 0).any() else float("nan")
    rs, ws = [], []
    order = np.argsort(codes, kind="stable")
    for rows in np.split(order, np.cumsum(sizes)[:-1]):
        if len(rows) >= min_group:
            r = float(_pearson(y[rows], p[rows]))
            if math.isfinite(r):
                rs.append(r)
                ws.append(len(rows))
    total = float(((y - y.mean()) ** 2).sum())
    return {"within_r": within, "mean_group_r": float(np.average(rs, weights=ws)) if rs else float("nan"),
            "n_groups": k, "between_fraction": 1.0 - float((yc * yc).sum()) / total if total > 0 else float("nan")}


def _restricted_r(r: float, y: np.ndarray, codes: np.ndarray) -> float:
    """Size-weighted mean over groups of Thorndike's case II r after selecting each group on y alone."""
    k = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=k)
    means = np.bincount(codes, y, k) / sizes
    u = np.bincount(codes, (y - means[codes]) ** 2, k) / sizes / y.var()
    with np.errstate(invalid="ignore", divide="ignore"):
        rk = r * np.sqrt(u) / np.sqrt(1.0 - r * r + r * r * u)
    return float(np.average(rk, weights=sizes))


def _message(out: dict) -> str:
    between = f"{out['between_fraction']:.0%} of the measured variance between them"
    if out["method"] == "groups":
        return (f"pooled Pearson r {out['pooled_r']:.3f} but {out['within_r']:.3f} within the {out['n_groups']} "
                f"groups ({between}): the pooled r mostly reflects differences between groups")
    return (f"measured values are bimodal (Ashman's D {out['mixture']['ashman_d']:.2f}, {between}); Pearson r "
            f"within the modes {out['mean_group_r']:.3f} vs {out['expected_within_r']:.3f} expected from the "
            f"narrower range alone (pooled r {out['pooled_r']:.3f}): the pooled r mostly reflects telling the "
            "modes apart")


def two_component_mixture(y, max_iter: int = 500, tol: float = 1e-10) -> dict:
    """A two-component 1-D Gaussian mixture fitted by EM, and whether it makes ``y`` bimodal.

    Parameters
    ----------
    y : array-like (n,)
        Values (n ≥ 10; constant values are never bimodal).
    max_iter, tol : int, float
        EM stops after max_iter steps or when the mean log-likelihood gains less than tol.

    Returns
    -------
    dict
        weights, means, sds (lists of 2, by increasing mean), ``ashman_d``, ``delta_bic`` (BIC of one
        Gaussian − BIC of the mixture: > 0 favours the mixture), ``bimodal`` (ΔBIC > 10, both weights ≥
        5 %, D > 2) and ``assignment`` (n,) int: each value's more likely component.
    """
    from scipy.special import logsumexp
    from scipy.stats import norm

    y = np.asarray(y, dtype=np.float64).ravel()
    n, var = len(y), float(y.var())
    if n < 10 or var == 0.0:
        return {"weights": None, "means": None, "sds": None, "ashman_d": None, "delta_bic": None,
                "bimodal": False, "assignment": np.zeros(n, dtype=np.int64)}
    # A floor on the variances keeps a component from collapsing onto one repeated value.
    floor = 1e-3 * var
    w, mu, sd = np.array([0.5, 0.5]), np.quantile(y, [0.25, 0.75]), np.full(2, math.sqrt(var) / 2)
    prev = -math.inf
    for _ in range(max_iter):
        logp = np.log(w) + norm.logpdf(y[:, None], mu, sd)  # (n, 2)
        ll = logsumexp(logp, axis=1)
        resp = np.exp(logp - ll[:, None])
        nk = np.maximum(resp.sum(axis=0), 1e-12)
        w, mu = nk / n, resp.T @ y / nk
        sd = np.sqrt(np.maximum((resp * (y[:, None] - mu) ** 2).sum(axis=0) / nk, floor))
        if ll.mean() - prev < tol:
            break
        prev = ll.mean()
    logp = np.log(w) + norm.logpdf(y[:, None], mu, sd)
    ll2 = float(logsumexp(logp, axis=1).sum())
    ll1 = float(norm.logpdf(y, y.mean(), math.sqrt(var)).sum())
    delta_bic = (-2 * ll1 + 2 * math.log(n)) - (-2 * ll2 + 5 * math.log(n))
    order = np.argsort(mu)
    w, mu, sd = w[order], mu[order], sd[order]
    d = float(math.sqrt(2.0) * abs(mu[1] - mu[0]) / math.sqrt(sd[0] ** 2 + sd[1] ** 2))
    return {"weights": w.tolist(), "means": mu.tolist(), "sds": sd.tolist(), "ashman_d": d,
            "delta_bic": delta_bic, "bimodal": bool(delta_bic > BIC_STRONG and w.min() >= MIN_WEIGHT and d > ASHMAN_D),
            "assignment": np.argsort(order)[np.argmax(logp, axis=1)]}
