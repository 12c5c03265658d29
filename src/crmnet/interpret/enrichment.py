"""Figure 5F and 5G statistics: attribution at known-motif matches, expression of sequences with a motif.

* **Figure 5F** is tested at the *sequence* level, so that the positions of one hit (correlated, and as
  many as the motif is wide) are not counted as independent observations: for every sequence with at
  least one hit of the motif, the mean attribution over the positions its hits cover (*matched*) and the
  mean over the rest of its variable region (*unmatched*: the matched positions are not part of the
  control). The paired differences get a two-sided Wilcoxon signed-rank test (repressor sites carry
  negative attributions), Benjamini-Hochberg over the motifs. The effect is reported two ways that
  cannot flip sign with the direction of the attribution: the mean paired difference with its 95 %
  t-interval, and ``abs_ratio``, the mean |attribution| at matched over unmatched positions.
* **Figure 5G**: measured expression of sequences with at least one hit against those without, two-sided
  Mann-Whitney U, BH over motifs; the mHG p-value of the hit-holding sequences on the expression ranking
  (high first and low first) is reported beside it.

A motif without a hit gets a row with ``note = "no hits"`` and no statistics (None), never NaN means.
"""

from __future__ import annotations

import math

import numpy as np

from crmnet.interpret.scanning import Hits
from crmnet.interpret.stats import add_q, mhg

NO_HITS = "no hits"
# Every row has every column (None where a motif has nothing to report), in this order.
_F_COLUMNS = ("motif", "matrix_id", "n_hits", "n_sequences", "n_positions", "mean_matched", "sem_matched",
              "mean_unmatched", "sem_unmatched", "difference", "ci_low", "ci_high", "abs_ratio", "wilcoxon_p",
              "q_value", "mean_all", "note")
_G_COLUMNS = ("motif", "matrix_id", "n_sequences", "mean_with", "sem_with", "mean_without", "sem_without",
              "mean_all", "sem_all", "mannwhitney_p", "q_value", "mhg_p_top", "mhg_p_bottom", "note")


def _mean_sem(x: np.ndarray) -> tuple[float | None, float | None]:
    if len(x) == 0:
        return None, None
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else None


def _masked_means(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n,) mean of ``values`` (n, W) over ``mask`` (n, W) per row (rows with an empty mask: NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask, values, 0.0).sum(axis=1) / mask.sum(axis=1)


def paired_difference(matched: np.ndarray, unmatched: np.ndarray) -> dict:
    """Paired comparison of per-sequence means: mean difference, its 95 % t-interval, Wilcoxon signed-rank.

    Parameters
    ----------
    matched, unmatched : ndarray, shape (m,)
        Per-sequence means, paired by index.

    Returns
    -------
    dict
        ``difference`` (mean of matched − unmatched), ``ci_low``, ``ci_high`` (None for ``m < 2``) and
        ``wilcoxon_p`` (two-sided; 1.0 when every difference is 0).
    """
    from scipy.stats import t, wilcoxon

    d = np.asarray(matched, dtype=np.float64) - np.asarray(unmatched, dtype=np.float64)
    out: dict = {"difference": float(d.mean()), "ci_low": None, "ci_high": None}
    if len(d) > 1:
        half = float(t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
        out["ci_low"], out["ci_high"] = out["difference"] - half, out["difference"] + half
    out["wilcoxon_p"] = float(wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return out


def saliency_enrichment(hits: Hits, per_position: np.ndarray, region: np.ndarray) -> list[dict]:
    """Figure 5F: attribution at each motif's matched positions versus the rest of the same sequences.

    Parameters
    ----------
    hits : Hits
        Known-motif hits (already limited to ``region``).
    per_position : ndarray, shape (n, W)
        Signed attribution of the observed base at each position.
    region : ndarray, shape (n, W), bool
        Positions that count (the variable region the model saw).

    Returns
    -------
    list of dict
        One row per motif: n_hits, n_sequences, n_positions, mean/sem over sequences of the matched and
        unmatched means, difference with ci_low/ci_high, abs_ratio, wilcoxon_p, q_value (BH over the
        motifs with hits), mean_all (all region positions, for reference) and note.
    """
    per_position = np.asarray(per_position, dtype=np.float64)
    mean_all = float(per_position[region].mean()) if region.any() else None
    rows = []
    for k, m in enumerate(hits.motifs):
        matched_mask = hits.covered(k) & region
        rest = region & ~matched_mask
        seqs = np.flatnonzero(matched_mask.any(axis=1) & rest.any(axis=1))
        row: dict = dict.fromkeys(_F_COLUMNS)
        row.update({"motif": m.name, "matrix_id": m.matrix_id, "n_hits": int((hits.motif == k).sum()),
                    "n_sequences": len(seqs), "n_positions": int(matched_mask[seqs].sum()), "mean_all": mean_all,
                    "note": NO_HITS if len(seqs) == 0 else ""})
        rows.append(row)
        if len(seqs) == 0:
            continue
        values, on, off = per_position[seqs], matched_mask[seqs], rest[seqs]
        matched, unmatched = _masked_means(values, on), _masked_means(values, off)
        row["mean_matched"], row["sem_matched"] = _mean_sem(matched)
        row["mean_unmatched"], row["sem_unmatched"] = _mean_sem(unmatched)
        abs_off = _masked_means(np.abs(values), off).mean()
        row["abs_ratio"] = float(_masked_means(np.abs(values), on).mean() / abs_off) if abs_off > 0 else None
        row.update(paired_difference(matched, unmatched))
    add_q(rows, "wilcoxon_p")
    return rows


def expression_enrichment(hits: Hits, expression: np.ndarray) -> list[dict]:
    """Figure 5G: measured expression of the sequences holding each motif versus those without it.

    Parameters
    ----------
    hits : Hits
        Known-motif hits.
    expression : ndarray, shape (n,)
        Measured expression of the scanned sequences.

    Returns
    -------
    list of dict
        One row per motif: n_sequences (with a hit), mean/sem with, mean without, mean/sem of all,
        mannwhitney_p (with vs without), q_value (BH over the motifs tested), mhg_p_top / mhg_p_bottom
        and note.
    """
    from scipy.stats import mannwhitneyu

    expression = np.asarray(expression, dtype=np.float64)
    order = np.argsort(-expression, kind="stable")
    has = hits.contains()
    mean_all, sem_all = _mean_sem(expression)
    rows = []
    for k, m in enumerate(hits.motifs):
        inside, outside = expression[has[k]], expression[~has[k]]
        row: dict = dict.fromkeys(_G_COLUMNS)
        row.update({"motif": m.name, "matrix_id": m.matrix_id, "n_sequences": len(inside), "mean_all": mean_all,
                    "sem_all": sem_all, "note": NO_HITS if len(inside) == 0 else ""})
        rows.append(row)
        if len(inside) == 0:
            continue
        row["mean_with"], row["sem_with"] = _mean_sem(inside)
        row["mean_without"], row["sem_without"] = _mean_sem(outside)
        row["mannwhitney_p"] = (float(mannwhitneyu(inside, outside, alternative="two-sided").pvalue)
                                if len(outside) else None)
        row["mhg_p_top"] = mhg(has[k][order])[1]
        row["mhg_p_bottom"] = mhg(has[k][order[::-1]])[1]
    add_q(rows, "mannwhitney_p")
    return rows
