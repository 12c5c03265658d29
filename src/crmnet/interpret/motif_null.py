"""Is attribution at a motif's matches specific to the motif? A null from column-shuffled matrices.

Figure 5F's paired difference (mean attribution at a motif's matches minus the rest of the same sequences)
can be large for reasons that have nothing to do with the motif: a matrix rich in the bases the model
likes anywhere (GC, poly-dA:dT) picks positions that score high whatever their order. The null keeps the
matrix's composition and information and destroys its order: each of ``n`` shuffles permutes the columns
of the count matrix (never the identity), is scanned with the same FIMO threshold over the same region, and
gets the same statistic. Per motif:

* ``null_mean``, ``null_sd`` and ``null_n`` (shuffles with at least one hit) of the shuffled differences;
* ``null_z`` = (observed − null mean) / null sd;
* ``null_p``, the empirical p that a shuffle reaches the observed difference in the direction of the
  observed effect: (1 + #{shuffles at least as extreme}) / (1 + null_n), so never below 1 / (1 + n);
* ``null_q``, Benjamini-Hochberg over the motifs, and ``specific`` = ``null_q ≤ alpha`` (0.05).

A motif matched in fewer than :data:`MIN_SEQUENCES` sequences gets no null p (its difference is too
noisy to rank against anything) and stays out of the BH family. With the default 30 shuffles the smallest
p is 1/31 ≈ 0.032, so a motif is called specific only when no shuffle reaches its effect; with m motifs
tested, k of them at that p get q = 0.032·m/k, so more motifs need more shuffles (``--shuffles 100``).
"""

from __future__ import annotations

import numpy as np

from crmnet.data.jaspar import Motif
from crmnet.interpret.enrichment import saliency_enrichment
from crmnet.interpret.scanning import scan
from crmnet.interpret.stats import add_q

N_SHUFFLES = 30
MIN_SEQUENCES = 5
NULL_COLUMNS = ("null_n", "null_mean", "null_sd", "null_z", "null_p", "null_q", "specific")


def shuffled_motifs(motif: Motif, n: int, rng: np.random.Generator) -> list[Motif]:
    """``n`` copies of ``motif`` with their columns permuted (each permutation other than the identity).

    Parameters
    ----------
    motif : Motif
    n : int
    rng : numpy Generator

    Returns
    -------
    list of Motif
        Named ``NAME~shuffleI``; a motif one column wide is returned ``n`` times unchanged.
    """
    width = motif.width
    out = []
    for i in range(n):
        order = rng.permutation(width)
        while width > 1 and (order == np.arange(width)).all():
            order = rng.permutation(width)
        out.append(Motif(f"{motif.name}~shuffle{i + 1}", motif.matrix_id, motif.counts[:, order]))
    return out


def _empirical_p(observed: float, null: np.ndarray) -> float:
    extreme = (null >= observed) if observed >= 0 else (null <= observed)
    return float((1 + extreme.sum()) / (1 + len(null)))


def shuffle_null(rows: list[dict], motifs: list[Motif], onehot: np.ndarray, per_position: np.ndarray,
                 region: np.ndarray, *, threshold: float = 1e-4, n_shuffles: int = N_SHUFFLES, seed: int = 0,
                 alpha: float = 0.05) -> list[dict]:
    """Add the column-shuffle null (:data:`NULL_COLUMNS`) to Figure 5F rows, in place.

    Parameters
    ----------
    rows : list of dict
        :func:`~crmnet.interpret.enrichment.saliency_enrichment` of ``motifs`` (same order).
    motifs : list of Motif
    onehot : ndarray, shape (n, 4, W)
        The scanned sequences (ACGT one-hot).
    per_position : ndarray, shape (n, W)
        The signed attribution the rows were computed from.
    region : ndarray, shape (n, W), bool
    threshold : float
        FIMO p-value threshold (the one the rows used).
    n_shuffles : int
        Shuffled matrices per motif (at least 1).
    seed : int
    alpha : float
        BH level for ``specific``.

    Returns
    -------
    list of dict
        One row per shuffled matrix (motif, shuffle, n_sequences, difference), for a table.
    """
    if n_shuffles < 1:
        raise ValueError(f"n_shuffles must be at least 1, got {n_shuffles}")
    rng = np.random.default_rng(seed)
    shuffled = [s for m in motifs for s in shuffled_motifs(m, n_shuffles, rng)]
    null_rows = saliency_enrichment(scan(shuffled, onehot, threshold=threshold, region=region),
                                    per_position, region)
    table = []
    for k, row in enumerate(rows):
        mine = null_rows[k * n_shuffles : (k + 1) * n_shuffles]
        table += [{"motif": row["motif"], "shuffle": i + 1, "n_sequences": r["n_sequences"],
                   "difference": r["difference"]} for i, r in enumerate(mine)]
        null = np.array([r["difference"] for r in mine if r["difference"] is not None], dtype=np.float64)
        row.update(dict.fromkeys(NULL_COLUMNS))
        row["null_n"] = len(null)
        if row.get("difference") is None or len(null) == 0 or row["n_sequences"] < MIN_SEQUENCES:
            continue
        row["null_mean"] = float(null.mean())
        sd = float(null.std(ddof=1)) if len(null) > 1 else 0.0
        row["null_sd"] = sd if len(null) > 1 else None
        row["null_z"] = (row["difference"] - row["null_mean"]) / sd if sd > 0 else None
        row["null_p"] = _empirical_p(row["difference"], null)
    add_q(rows, "null_p", "null_q")
    for row in rows:
        row["specific"] = None if row["null_q"] is None else bool(row["null_q"] <= alpha)
    return table
