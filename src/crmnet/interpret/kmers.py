"""k-mer discovery: (gapped) k-mers enriched among high or low expressed sequences, merged into motifs.

* Sequences are integer codes ``(n, W)`` (A0 C1 G2 T3 N4); ``region`` ``(n, W)`` bool limits every count to
  the 80-nt variable region (the constant flanks are the same in every sequence).
* **k-mers**: canonical (strand-merged) k-mers and gapped k-mers (``k − k//2`` bases, a gap of ``g`` N,
  ``k//2`` bases) counted once per sequence, top versus bottom expressed sequences (2,000 each by default,
  halved when the set is smaller than both), one-sided Fisher exact tests in both directions (activating:
  more in the top set; repressing: more in the bottom set), Benjamini-Hochberg over every test.
* **mHG** (:func:`crmnet.interpret.stats.mhg`): for each k-mer, the minimum-hypergeometric statistic of the
  sequences holding it over the whole expression ranking, high first and low first.
* Significant k-mers are **merged into motifs** greedily (best first; a k-mer joins a seed when it aligns
  at a shift of at most ``max_shift`` on either strand with no mismatching informative base and at least
  ``k − max_shift`` shared ones); a motif's counts are its members' bases weighted by ``−log10 q``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from crmnet.config import Config
from crmnet.data.construct import FLANKS
from crmnet.data.encoding import COMPLEMENT
from crmnet.data.jaspar import BASES, Motif
from crmnet.interpret.stats import add_q, mhg_many


@dataclass
class DiscoveryConfig(Config):
    """De novo discovery settings.

    k: informative bases per k-mer; gaps: gap lengths of the gapped k-mers (0 = ungapped).
    n_top, n_bottom: expressed sequences compared (halved if the set has fewer than both).
    min_count: k-mers seen in fewer sequences (top + bottom) are not tested.
    alpha: q-value (BH) threshold for k-mers and for mHG k-mers.
    max_shift: alignment shift allowed when merging k-mers into motifs; max_motifs per source and direction.
    mhg_gaps: gap lengths whose k-mers get the mHG test (it costs O(N · B) per k-mer).
    flanks: constant (left, right) flank lengths excluded from counting.
    """

    k: int = 6
    gaps: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    n_top: int = 2000
    n_bottom: int = 2000
    min_count: int = 5
    alpha: float = 0.05
    max_shift: int = 2
    max_motifs: int = 10
    mhg_gaps: tuple[int, ...] = (0,)
    flanks: tuple[int, int] = FLANKS

    def __post_init__(self) -> None:
        if not 3 <= self.k <= 12:
            raise ValueError(f"k must be between 3 and 12, not {self.k}")
        if min(self.gaps + self.mhg_gaps) < 0:
            raise ValueError("gaps must be non-negative")
        if any(self.gaps + self.mhg_gaps) and self.k % 2:
            raise ValueError(f"gapped k-mers need an even k (two equal halves), not {self.k}")
        if self.n_top < 1 or self.n_bottom < 1:
            raise ValueError("n_top and n_bottom must be positive")


def kmer_ids(codes: np.ndarray, region: np.ndarray, k: int, gap: int = 0) -> np.ndarray:
    """Canonical ids of the (gapped) k-mer starting at each position.

    The pattern is ``k - k//2`` bases, ``gap`` ignored positions, ``k//2`` bases. The id is the smaller of
    the forward and reverse-complement ids (the pattern is symmetric under reverse complement only when
    both halves are equal, i.e. ``k`` even or ``gap`` 0).

    Parameters
    ----------
    codes : ndarray, shape (n, W), uint8
        A=0, C=1, G=2, T=3, N=4.
    region : ndarray, shape (n, W), bool
        Positions a k-mer may cover.
    k, gap : int
        Informative bases and gap length.

    Returns
    -------
    ndarray, shape (n, P), int64
        ``P = W − k − gap + 1`` starts; ``-1`` where the window leaves the region or holds an N.
    """
    offsets = np.array([i if i < k - k // 2 else i + gap for i in range(k)])
    span = k + gap
    n, width = codes.shape
    positions = width - span + 1
    if positions <= 0:
        return np.full((n, 0), -1, dtype=np.int64)
    cols = np.arange(positions)[:, None] + offsets[None, :]  # (P, k)
    window = codes[:, cols].astype(np.int64)  # (n, P, k)
    valid = (window < 4).all(-1) & region[:, :positions] & region[:, span - 1 :]
    window = np.minimum(window, 3)
    powers = 4 ** np.arange(k - 1, -1, -1)
    fwd = window @ powers
    rev = COMPLEMENT[window[..., ::-1]] @ powers
    return np.where(valid, np.minimum(fwd, rev), -1)


def kmer_string(kid: int, k: int, gap: int) -> str:
    """The bases of k-mer id ``kid`` (see :func:`kmer_ids`), the gap written as N: ``"ACGNNTTA"``."""
    digits = [(kid >> (2 * (k - 1 - i))) & 3 for i in range(k)]
    half = k - k // 2
    return "".join(BASES[d] for d in digits[:half]) + "N" * gap + "".join(BASES[d] for d in digits[half:])


def presence_counts(ids: np.ndarray, rows: np.ndarray, n_kmers: int) -> np.ndarray:
    """Number of sequences among ``rows`` holding each k-mer at least once.

    Parameters
    ----------
    ids : ndarray, shape (n, P), int64
        k-mer ids (:func:`kmer_ids`), -1 for none.
    rows : ndarray, shape (m,), int
        The sequences counted.
    n_kmers : int
        Number of possible ids (``4 ** k``).

    Returns
    -------
    ndarray, shape (n_kmers,), int64
    """
    sub = ids[rows]
    r = np.broadcast_to(np.arange(len(rows))[:, None], sub.shape)
    ok = sub >= 0
    pairs = np.unique(r[ok].astype(np.int64) * n_kmers + sub[ok])
    return np.bincount(pairs % n_kmers, minlength=n_kmers)


def top_bottom(expression: np.ndarray, n_top: int, n_bottom: int) -> tuple[np.ndarray, np.ndarray]:
    """The highest and lowest expressed sequences, disjoint (both halved to ``n // 2`` if needed).

    Parameters
    ----------
    expression : ndarray, shape (n,)
    n_top, n_bottom : int

    Returns
    -------
    top, bottom : ndarray, shape (n_top,) and (n_bottom,), int64
        Row indices, highest first and lowest last.
    """
    n = len(expression)
    if n_top + n_bottom > n:
        n_top = n_bottom = n // 2
    order = np.argsort(-np.asarray(expression), kind="stable")
    return order[:n_top], order[n - n_bottom :]


def kmer_enrichment(codes: np.ndarray, expression: np.ndarray, region: np.ndarray, config: DiscoveryConfig) -> list[dict]:
    """Fisher exact tests of every (gapped) k-mer, top versus bottom expressed sequences.

    Parameters
    ----------
    codes : ndarray, shape (n, W), uint8
    expression : ndarray, shape (n,)
    region : ndarray, shape (n, W), bool
    config : DiscoveryConfig

    Returns
    -------
    list of dict
        kmer, gap, direction (``top``/``bottom``), n_top, n_bottom, frac_top, frac_bottom, p_value,
        q_value (BH over every test); sorted by q-value.
    """
    from scipy.stats import hypergeom

    top, bottom = top_bottom(expression, config.n_top, config.n_bottom)
    n_kmers = 4**config.k
    rows = []
    for gap in config.gaps:
        ids = kmer_ids(codes, region, config.k, gap)
        a = presence_counts(ids, top, n_kmers)
        c = presence_counts(ids, bottom, n_kmers)
        tested = np.flatnonzero(a + c >= config.min_count)
        total, n_t = len(top) + len(bottom), len(top)
        # One-sided Fisher exact test = hypergeometric tail of the top-set count.
        p_up = hypergeom.sf(a[tested] - 1, total, a[tested] + c[tested], n_t)
        p_down = hypergeom.cdf(a[tested], total, a[tested] + c[tested], n_t)
        for j, kid in enumerate(tested):
            for direction, p in (("top", p_up[j]), ("bottom", p_down[j])):
                rows.append({
                    "kmer": kmer_string(int(kid), config.k, gap), "gap": gap, "direction": direction,
                    "n_top": int(a[kid]), "n_bottom": int(c[kid]),
                    "frac_top": a[kid] / len(top), "frac_bottom": c[kid] / len(bottom),
                    "p_value": float(p),
                })
    add_q(rows, "p_value")
    rows.sort(key=lambda r: (r["q_value"], r["p_value"]))
    return rows


def kmer_mhg(codes: np.ndarray, expression: np.ndarray, region: np.ndarray, config: DiscoveryConfig) -> list[dict]:
    """DRIMust-style mHG test of each k-mer over the expression ranking, high first and low first.

    Parameters
    ----------
    codes : ndarray, shape (n, W), uint8
    expression : ndarray, shape (n,)
    region : ndarray, shape (n, W), bool
    config : DiscoveryConfig
        ``mhg_gaps`` and ``min_count`` apply.

    Returns
    -------
    list of dict
        kmer, gap, direction, n_sequences, mhg, cutoff, p_value, q_value; sorted by q-value.
    """
    expression = np.asarray(expression, dtype=np.float64)
    n = len(expression)
    n_kmers = 4**config.k
    rows = []
    for gap in config.mhg_gaps:
        ids = kmer_ids(codes, region, config.k, gap)
        counts = presence_counts(ids, np.arange(n), n_kmers)
        tested = np.flatnonzero(counts >= config.min_count)
        lookup = np.full(n_kmers, -1, dtype=np.int64)
        lookup[tested] = np.arange(len(tested))
        has = np.zeros((len(tested), n), dtype=np.bool_)
        r = np.broadcast_to(np.arange(n)[:, None], ids.shape)
        ok = ids >= 0
        col = lookup[ids[ok]]
        has[col[col >= 0], r[ok][col >= 0]] = True
        for direction, order in (("top", np.argsort(-expression, kind="stable")), ("bottom", np.argsort(expression, kind="stable"))):
            stats, ps, cuts = mhg_many(has[:, order])
            for j, kid in enumerate(tested):
                rows.append({
                    "kmer": kmer_string(int(kid), config.k, gap), "gap": gap, "direction": direction,
                    "n_sequences": int(counts[kid]), "mhg": float(stats[j]), "cutoff": int(cuts[j]),
                    "p_value": float(ps[j]),
                })
    add_q(rows, "p_value")
    rows.sort(key=lambda r: (r["q_value"], r["p_value"]))
    return rows


def _revcomp(s: str) -> str:
    return s[::-1].translate(str.maketrans("ACGTN", "TGCAN"))


def _align(seed: str, other: str, max_shift: int, min_shared: int) -> int | None:
    """Shift of ``other`` against ``seed`` with no mismatching informative base and enough shared ones."""
    best = None
    for shift in sorted(range(-max_shift, max_shift + 1), key=abs):
        shared = 0
        clash = False
        for i, ch in enumerate(other):
            j = i + shift
            if 0 <= j < len(seed) and ch != "N" and seed[j] != "N":
                if ch != seed[j]:
                    clash = True
                    break
                shared += 1
        if not clash and shared >= min_shared:
            best = shift
            break
    return best


def merge_kmers(rows: list[dict], config: DiscoveryConfig, source: str) -> list[Motif]:
    """Greedy merge of significant k-mers into motifs, separately for each direction.

    Parameters
    ----------
    rows : list of dict
        :func:`kmer_enrichment` or :func:`kmer_mhg` rows, sorted best first.
    config : DiscoveryConfig
        ``alpha``, ``max_shift``, ``max_motifs`` and ``k`` apply.
    source : str
        Name prefix: motifs are ``{source}_{direction}_{i}``.

    Returns
    -------
    list of Motif
        Counts ``(4, w)`` of the weighted member bases; ``matrix_id`` holds the seed and member count.
    """
    motifs: list[Motif] = []
    min_shared = config.k - config.max_shift
    for direction in ("top", "bottom"):
        sig = [r for r in rows if r["direction"] == direction and r["q_value"] <= config.alpha]
        used = [False] * len(sig)
        for s, seed_row in enumerate(sig):
            if used[s] or sum(m.name.startswith(f"{source}_{direction}") for m in motifs) >= config.max_motifs:
                continue
            seed = seed_row["kmer"]
            members: list[tuple[str, int, float]] = []
            for t, row in enumerate(sig):
                if used[t]:
                    continue
                for cand in (row["kmer"], _revcomp(row["kmer"])):
                    shift = _align(seed, cand, config.max_shift, min_shared)
                    if shift is not None:
                        weight = min(-math.log10(max(row["q_value"], 1e-300)), 300.0)
                        members.append((cand, shift, weight))
                        used[t] = True
                        break
            lo = min(sh for _, sh, _ in members)
            width = max(sh + len(c) for c, sh, _ in members) - lo
            counts = np.zeros((4, width))
            for cand, shift, weight in members:
                for i, ch in enumerate(cand):
                    if ch != "N":
                        counts[BASES.index(ch), shift - lo + i] += weight
            # Columns no member informs (gaps) stay uniform: a small count spread over the four bases.
            counts += 0.01 * max(counts.sum(0).max(), 1.0) / 4
            name = f"{source}_{direction}_{len([m for m in motifs if m.name.startswith(f'{source}_{direction}')]) + 1}"
            motifs.append(Motif(name, f"{seed}|n={len(members)}", counts))
    return motifs
