"""Known motifs and de novo discovery: FIMO scanning, the figure-5F/5G statistics, k-mer enrichment,
the minimum-hypergeometric (mHG) test, TF-MoDISco, TOMTOM matching and ground-truth recovery.

Contract:

* Sequences are ``(n, 4, W)`` ACGT one-hot in sequence coordinates (:func:`crmnet.interpret.attribution.sequence_onehot`),
  integer codes ``(n, W)`` where k-mers are counted. ``region`` ``(n, W)`` bool limits every count to the
  80-nt variable region by default: the constant flanks are the same in every sequence and carry no
  information about expression.
* **Scanning** is memelite's FIMO (both strands, p-value threshold, default 1e-4); a hit counts only if it
  lies wholly inside ``region``.
* **Figure 5F**: for each motif, attributions at positions covered by its hits versus all positions of the
  region (control); two-sided Mann-Whitney U (repressor sites carry negative attributions), BH over motifs.
  **Figure 5G**: measured expression of sequences with at least one hit versus all sequences; two-sided
  Mann-Whitney U of sequences with versus without a hit, BH over motifs; the mHG p-value of the
  hit-containing sequences on the expression ranking is reported alongside.
* **k-mers**: canonical (strand-merged) k-mers and gapped k-mers (``k/2`` bases, a gap of ``g`` N, ``k/2``
  bases) counted once per sequence, top versus bottom expressed sequences (2,000 each by default, halved
  when the set is smaller than both), one-sided Fisher exact tests in both directions (activating: more in
  the top set; repressing: more in the bottom set), Benjamini-Hochberg over every test.
* **mHG** (Eden et al. 2007, DRIMust): for each k-mer, the minimum over cut-offs ``n`` of the
  hypergeometric tail of the number of sequences with the k-mer among the ``n`` highest (or lowest)
  expressed; its exact p-value by dynamic programming over the ``(n, b)`` lattice, computed as the
  probability mass a random ranking sends across the threshold (accurate for tiny p-values).
* Significant k-mers are **merged into motifs** greedily (best first; a k-mer joins a seed when it aligns at
  a shift of at most ``max_shift`` on either strand with no mismatching informative base and at least
  ``k − max_shift`` shared ones); the motif's counts are its members' bases weighted by ``−log10 q``.
* Every discovered motif is **matched to the yeast JASPAR motifs with TOMTOM** (memelite): p-value,
  E-value (p × number of targets) and q-value (BH over all query × target pairs).
* **Recovery** (simulations): a discovered motif is a true positive when TOMTOM matches it to a planted
  motif at q ≤ 0.05 or E ≤ 1; precision = true positives / discovered motifs, recall = planted motifs
  matched by at least one discovered motif / planted motifs.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crmnet.config import Config
from crmnet.data.construct import FLANKS
from crmnet.data.encoding import COMPLEMENT
from crmnet.data.jaspar import BASES, Motif
from crmnet.fsutil import atomic_file


# --------------------------------------------------------------------------------------------- tables
def write_tsv(path: str | os.PathLike, rows: list[dict], overwrite: bool = False) -> Path:
    """Write dict rows as a tab-separated table (floats with 6 significant digits), atomically."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)

    def fmt(v) -> str:
        if isinstance(v, float | np.floating):
            return f"{float(v):.6g}"
        return str(v)

    with atomic_file(path, overwrite=overwrite) as fh:
        fh.write("\t".join(columns) + "\n")
        for row in rows:
            fh.write("\t".join(fmt(row.get(c, "")) for c in columns) + "\n")
    return Path(path)


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of ``p`` (any shape)."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        return p.copy()
    return false_discovery_control(p.ravel(), method="bh").reshape(p.shape)


# --------------------------------------------------------------------------------------------- scanning
@dataclass
class Hits:
    """FIMO hits as parallel arrays. motif: index into ``motifs``; start/end: 0-based, end exclusive."""

    motifs: list[Motif]
    motif: np.ndarray
    seq: np.ndarray
    start: np.ndarray
    end: np.ndarray
    strand: np.ndarray  # +1 / -1
    score: np.ndarray
    pvalue: np.ndarray
    n_sequences: int
    width: int

    def contains(self) -> np.ndarray:
        """(n_motifs, n) bool: sequence has at least one hit of the motif."""
        out = np.zeros((len(self.motifs), self.n_sequences), dtype=bool)
        out[self.motif, self.seq] = True
        return out

    def covered(self, k: int) -> np.ndarray:
        """(n, W) bool: positions covered by a hit of motif ``k``."""
        sel = self.motif == k
        diff = np.zeros((self.n_sequences, self.width + 1), dtype=np.int32)
        np.add.at(diff, (self.seq[sel], self.start[sel]), 1)
        np.add.at(diff, (self.seq[sel], self.end[sel]), -1)
        return np.cumsum(diff, axis=1)[:, : self.width] > 0

    def rows(self, ids: list[str] | None = None) -> list[dict]:
        order = np.lexsort((self.start, self.seq, self.motif))
        return [
            {
                "motif": self.motifs[self.motif[i]].name, "matrix_id": self.motifs[self.motif[i]].matrix_id,
                "sequence": ids[self.seq[i]] if ids is not None else int(self.seq[i]),
                "start": int(self.start[i]), "end": int(self.end[i]), "strand": "+" if self.strand[i] > 0 else "-",
                "score": float(self.score[i]), "p_value": float(self.pvalue[i]),
            }
            for i in order
        ]


def scan(motifs: list[Motif], onehot: np.ndarray, threshold: float = 1e-4, region: np.ndarray | None = None) -> Hits:
    """FIMO (memelite) of ``motifs`` over ``onehot`` (n, 4, W), both strands, hits with p ≤ ``threshold``
    lying wholly inside ``region`` (n, W) when given."""
    from memelite import fimo

    n, _, width = onehot.shape
    keys = [f"{i}" for i in range(len(motifs))]  # unique even when two motifs share a name
    tables = fimo({k: m.pwm for k, m in zip(keys, motifs)}, onehot.astype(np.float32), threshold=threshold)
    cols: dict[str, list[np.ndarray]] = {c: [] for c in ("motif", "seq", "start", "end", "strand", "score", "pvalue")}
    for k, table in enumerate(tables):
        if len(table) == 0:
            continue
        cols["motif"].append(np.full(len(table), k, dtype=np.int64))
        cols["seq"].append(table["sequence_name"].to_numpy(dtype=np.int64))
        cols["start"].append(table["start"].to_numpy(dtype=np.int64))
        cols["end"].append(table["end"].to_numpy(dtype=np.int64))
        cols["strand"].append(np.where(table["strand"].to_numpy() == "+", 1, -1).astype(np.int8))
        cols["score"].append(table["score"].to_numpy(dtype=np.float64))
        cols["pvalue"].append(table["p-value"].to_numpy(dtype=np.float64))
    empty = {"motif": np.int64, "seq": np.int64, "start": np.int64, "end": np.int64, "strand": np.int8,
             "score": np.float64, "pvalue": np.float64}
    arrays = {c: np.concatenate(v) if v else np.zeros(0, empty[c]) for c, v in cols.items()}
    if region is not None and len(arrays["seq"]):
        csum = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(region, axis=1)], axis=1)
        covered = csum[arrays["seq"], arrays["end"]] - csum[arrays["seq"], arrays["start"]]
        inside = covered == arrays["end"] - arrays["start"]
        arrays = {c: v[inside] for c, v in arrays.items()}
    return Hits(list(motifs), n_sequences=n, width=width, **arrays)


# ----------------------------------------------------------------------------------- figure 5F and 5G
def saliency_enrichment(hits: Hits, per_position: np.ndarray, region: np.ndarray) -> list[dict]:
    """Figure 5F: mean attribution at positions matched by each motif versus all region positions."""
    from scipy.stats import mannwhitneyu

    control = per_position[region]
    rows = []
    for k, m in enumerate(hits.motifs):
        matched = per_position[hits.covered(k) & region]
        p = float(mannwhitneyu(matched, control, alternative="two-sided").pvalue) if len(matched) else float("nan")
        rows.append({
            "motif": m.name, "matrix_id": m.matrix_id, "n_hits": int((hits.motif == k).sum()),
            "n_positions": len(matched),
            "mean_matched": float(matched.mean()) if len(matched) else float("nan"),
            "sem_matched": float(matched.std(ddof=1) / math.sqrt(len(matched))) if len(matched) > 1 else float("nan"),
            "mean_all": float(control.mean()), "sem_all": float(control.std(ddof=1) / math.sqrt(len(control))),
            "ratio": float(matched.mean() / control.mean()) if len(matched) and control.mean() != 0 else float("nan"),
            "mannwhitney_p": p,
        })
    _add_q(rows, "mannwhitney_p")
    return rows


def expression_enrichment(hits: Hits, expression: np.ndarray) -> list[dict]:
    """Figure 5G: mean measured expression of sequences containing each motif versus all sequences."""
    from scipy.stats import mannwhitneyu

    expression = np.asarray(expression, dtype=np.float64)
    order = np.argsort(-expression, kind="stable")
    has = hits.contains()
    rows = []
    for k, m in enumerate(hits.motifs):
        inside, outside = expression[has[k]], expression[~has[k]]
        ok = len(inside) > 0 and len(outside) > 0
        p = float(mannwhitneyu(inside, outside, alternative="two-sided").pvalue) if ok else float("nan")
        rows.append({
            "motif": m.name, "matrix_id": m.matrix_id, "n_sequences": len(inside),
            "mean_with": float(inside.mean()) if len(inside) else float("nan"),
            "sem_with": float(inside.std(ddof=1) / math.sqrt(len(inside))) if len(inside) > 1 else float("nan"),
            "mean_all": float(expression.mean()),
            "sem_all": float(expression.std(ddof=1) / math.sqrt(len(expression))),
            "mean_without": float(outside.mean()) if len(outside) else float("nan"),
            "mannwhitney_p": p,
            "mhg_p_top": mhg(has[k][order])[1] if len(inside) else float("nan"),
            "mhg_p_bottom": mhg(has[k][order[::-1]])[1] if len(inside) else float("nan"),
        })
    _add_q(rows, "mannwhitney_p")
    return rows


def _add_q(rows: list[dict], key: str) -> None:
    p = np.array([r[key] for r in rows], dtype=np.float64)
    ok = np.isfinite(p)
    q = np.full(len(p), np.nan)
    q[ok] = bh_adjust(p[ok])
    for r, v in zip(rows, q):
        r["q_value"] = float(v)


# ------------------------------------------------------------------------------------------ k-mers
def pattern_name(k: int, gap: int) -> str:
    half = k // 2
    return "X" * (k - half) + "N" * gap + "X" * half


def kmer_ids(codes: np.ndarray, region: np.ndarray, k: int, gap: int = 0) -> np.ndarray:
    """Canonical ids of the (gapped) k-mer starting at each position.

    codes: (n, W) uint8 (A=0 … N=4); region: (n, W) bool. The pattern is ``k - k//2`` bases, ``gap``
    ignored positions, ``k//2`` bases. Returns (n, P) int64, ``-1`` where the window leaves the region or
    holds an N. The id is the smaller of the forward and reverse-complement ids (the pattern is symmetric
    under reverse complement only when both halves are equal, i.e. ``k`` even or ``gap`` 0).
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
    digits = [(kid >> (2 * (k - 1 - i))) & 3 for i in range(k)]
    half = k - k // 2
    return "".join(BASES[d] for d in digits[:half]) + "N" * gap + "".join(BASES[d] for d in digits[half:])


def presence_counts(ids: np.ndarray, rows: np.ndarray, n_kmers: int) -> np.ndarray:
    """Number of sequences among ``rows`` holding each k-mer at least once: (n_kmers,) int64."""
    sub = ids[rows]
    r = np.broadcast_to(np.arange(len(rows))[:, None], sub.shape)
    ok = sub >= 0
    pairs = np.unique(r[ok].astype(np.int64) * n_kmers + sub[ok])
    return np.bincount(pairs % n_kmers, minlength=n_kmers)


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


def top_bottom(expression: np.ndarray, n_top: int, n_bottom: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the ``n_top`` highest and ``n_bottom`` lowest expressed, disjoint (halved if needed)."""
    n = len(expression)
    if n_top + n_bottom > n:
        n_top = n_bottom = n // 2
    order = np.argsort(-np.asarray(expression), kind="stable")
    return order[:n_top], order[n - n_bottom :]


def kmer_enrichment(codes: np.ndarray, expression: np.ndarray, region: np.ndarray, config: DiscoveryConfig) -> list[dict]:
    """Fisher exact tests of every (gapped) k-mer, top versus bottom expressed; rows sorted by q-value."""
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
    _add_q(rows, "p_value")
    rows.sort(key=lambda r: (r["q_value"], r["p_value"]))
    return rows


# --------------------------------------------------------------------------------------------- mHG
# The mHG kernels are plain functions here, compiled with numba on first use (:func:`_mhg_kernels`) so that
# importing this module does not import numba. Compiling replaces each module global by its compiled
# version, which is how the kernels find each other, and lets numba cache them on disk.
def _log_tail(N, B, n, b):
    """log P(X >= b) for X ~ Hypergeometric(N population, B successes, n draws); -inf if impossible."""
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
    """Probability that a uniformly random ranking of B ones among N reaches a lattice point (n, b) whose
    tail is <= the statistic: the mass leaving the safe region, summed as it leaves (no 1 - x cancellation)."""
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
    """mHG of a ranked binary list: (statistic, exact p-value, cut-off n where the minimum is reached)."""
    stats, ps, cuts = mhg_many(np.asarray(labels, dtype=np.bool_)[None, :])
    return float(stats[0]), float(ps[0]), int(cuts[0])


def mhg_many(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mHG of many ranked lists at once. labels: (m, N) bool. Returns statistics (m,), p-values (m,), cut-offs."""
    log_stats, cuts, ps = _mhg_kernels()(np.ascontiguousarray(labels, dtype=np.bool_))
    return np.exp(log_stats), ps, cuts


def kmer_mhg(codes: np.ndarray, expression: np.ndarray, region: np.ndarray, config: DiscoveryConfig) -> list[dict]:
    """DRIMust-style mHG test of each k-mer over the expression ranking, both directions; sorted by q."""
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
    _add_q(rows, "p_value")
    rows.sort(key=lambda r: (r["q_value"], r["p_value"]))
    return rows


# ------------------------------------------------------------------------------ k-mers → motifs
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
    """Greedy merge of significant k-mer rows (sorted best first) into motifs, one list per direction."""
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


# --------------------------------------------------------------------------------------- TF-MoDISco
def modisco_motifs(onehot: np.ndarray, hypothetical: np.ndarray, *, trim: float = 0.3, n_leiden_runs: int = 10,
                   min_metacluster_size: int = 100, max_seqlets: int = 20000, window: int = 15,
                   flank: int = 5) -> list[Motif]:
    """TF-MoDISco (modisco-lite) patterns from attribution maps, trimmed to the columns whose total
    |contribution| is at least ``trim`` × the largest; counts = position frequencies × seqlet count.

    onehot, hypothetical: (n, 4, W), channels A, C, G, T.
    """
    from modiscolite.tfmodisco import TFMoDISco

    hyp = hypothetical - hypothetical.mean(axis=1, keepdims=True)  # off-simplex component removed
    pos, neg = TFMoDISco(
        one_hot=np.ascontiguousarray(onehot.transpose(0, 2, 1), dtype=np.float32),
        hypothetical_contribs=np.ascontiguousarray(hyp.transpose(0, 2, 1), dtype=np.float32),
        sliding_window_size=window, flank_size=flank, min_metacluster_size=min_metacluster_size,
        max_seqlets_per_metacluster=max_seqlets, n_leiden_runs=n_leiden_runs, verbose=False,
        # Seqlets are window + 2 flank long; modisco's defaults trim to 30 and re-add 10, which is more
        # than a 110-nt promoter's seqlets hold, and every pattern would be dropped.
        trim_to_window_size=window, initial_flank_to_add=flank,
    )
    motifs = []
    for sign, patterns in (("pos", pos), ("neg", neg)):
        for i, pattern in enumerate(patterns or []):
            contrib = np.abs(pattern.contrib_scores).sum(axis=1)
            keep = np.flatnonzero(contrib >= trim * contrib.max())
            ppm = pattern.sequence[keep[0] : keep[-1] + 1].T
            n_seqlets = len(pattern.seqlets)
            motifs.append(Motif(f"modisco_{sign}_{i + 1}", f"seqlets={n_seqlets}", ppm * n_seqlets + 1e-3))
    return motifs


# ------------------------------------------------------------------------------------------ TOMTOM
def tomtom_match(queries: list[Motif], targets: list[Motif]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TOMTOM (memelite) of every query against every target (both strands).

    Returns p-values, E-values (p × number of targets) and q-values (BH over all pairs), each (nq, nt).
    """
    from memelite import tomtom

    if not queries:
        z = np.zeros((0, len(targets)))
        return z, z, z
    p = tomtom([q.pwm for q in queries], [t.pwm for t in targets])[0].astype(np.float64)
    p = np.clip(np.nan_to_num(p, nan=1.0), 0.0, 1.0)
    return p, p * len(targets), bh_adjust(p)


def match_rows(queries: list[Motif], targets: list[Motif], source: str) -> list[dict]:
    """One row per discovered motif: its best JASPAR match with p, E and q."""
    p, e, q = tomtom_match(queries, targets)
    rows = []
    for i, m in enumerate(queries):
        j = int(np.argmin(p[i])) if len(targets) else -1
        rows.append({
            "source": source, "motif": m.name, "detail": m.matrix_id, "consensus": m.consensus, "width": m.width,
            "best_match": targets[j].name if j >= 0 else "", "best_match_id": targets[j].matrix_id if j >= 0 else "",
            "p_value": float(p[i, j]) if j >= 0 else float("nan"), "e_value": float(e[i, j]) if j >= 0 else float("nan"),
            "q_value": float(q[i, j]) if j >= 0 else float("nan"),
        })
    return rows


def recovery(queries: list[Motif], targets: list[Motif], planted: list[str], q_max: float = 0.05,
             e_max: float = 1.0) -> dict:
    """Precision and recall of discovered motifs against the planted ones (names of ``targets``).

    A discovered motif is a true positive when TOMTOM matches it to any planted motif at q ≤ ``q_max``
    or E ≤ ``e_max``; a planted motif is recovered when at least one discovered motif matches it so.
    """
    planted_upper = {p.upper() for p in planted}
    cols = [j for j, t in enumerate(targets) if t.name.upper() in planted_upper]
    missing = planted_upper - {targets[j].name.upper() for j in cols}
    if missing:
        raise ValueError(f"planted motifs not among the TOMTOM targets: {sorted(missing)}")
    _, e, q = tomtom_match(queries, targets)
    hit = (q[:, cols] <= q_max) | (e[:, cols] <= e_max) if len(queries) else np.zeros((0, len(cols)), bool)
    true_pos = int(hit.any(axis=1).sum())
    found = sorted({targets[cols[j]].name for j in np.flatnonzero(hit.any(axis=0))})
    return {
        "n_discovered": len(queries), "true_positives": true_pos,
        "precision": true_pos / len(queries) if queries else float("nan"),
        "n_planted": len(cols), "recovered": found, "recall": len(found) / len(cols) if cols else float("nan"),
    }


# --------------------------------------------------------------------------------------------- figures
def enrichment_figure(rows: list[dict], key: str, control: str, ylabel: str, control_label: str, title: str):
    """Figure 5F/5G: per motif, mean ± SEM of ``key`` beside the control bar, starred by BH q-value."""
    from matplotlib.figure import Figure

    from crmnet.plot import format_p

    fig = Figure(figsize=(1.3 * len(rows) + 2.5, 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(rows))
    mean = np.array([r[key] for r in rows], dtype=float)
    sem = np.nan_to_num(np.array([r[key.replace("mean", "sem")] for r in rows], dtype=float))
    ctrl = rows[0][control] if rows else 0.0
    ctrl_sem = rows[0][control.replace("mean", "sem")] if rows else 0.0
    ax.bar(x, np.nan_to_num(mean), yerr=sem, color="#4c72b0", capsize=3, label="matched by the motif")
    ax.bar([len(rows)], [ctrl], yerr=[ctrl_sem], color="#999999", capsize=3, label=control_label)
    for i, r in enumerate(rows):
        q = r["q_value"]
        stars = "***" if q < 1e-3 else "**" if q < 1e-2 else "*" if q < 0.05 else "n.s."
        if np.isfinite(mean[i]):
            ax.annotate(f"{stars}\n{format_p(r['mannwhitney_p'])}", (i, mean[i] + sem[i]), ha="center",
                        va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(list(x) + [len(rows)], [r["motif"] for r in rows] + ["all"], rotation=30)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.margins(y=0.2)
    return fig


def motif_logos_figure(motifs: list[Motif], labels: list[str]):
    """Information-content logos of discovered motifs, one row each, with a label (e.g. the best match)."""
    from matplotlib.figure import Figure
    from tangermeme.plot import plot_logo

    from crmnet.data.jaspar import information_content

    n = max(len(motifs), 1)
    width = max((m.width for m in motifs), default=6)
    fig = Figure(figsize=(max(5.0, 0.35 * width + 2), 1.5 * n), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n, 1, squeeze=False)[:, 0])
    for ax, m, label in zip(axes, motifs, labels):
        plot_logo(information_content(m.pwm), ax=ax)
        ax.set_ylim(0, 2)
        ax.set_ylabel("bits")
        ax.set_title(f"{m.name}: {label}", fontsize=8, loc="left")
    return fig


# ------------------------------------------------------------------------------------- pipeline
def discover(
    sequences: list[str],
    expression: np.ndarray,
    out: str | os.PathLike,
    config: DiscoveryConfig | None = None,
    *,
    attributions=None,
    truth: dict | None = None,
    targets: list[Motif] | None = None,
    mhg_test: bool = True,
    modisco_options: dict | None = None,
    overwrite: bool = False,
    source: str | None = None,
) -> dict:
    """De novo discovery (k-mers, mHG, and TF-MoDISco when ``attributions`` are given), every motif
    matched to ``targets`` (default: all yeast JASPAR CORE motifs) with TOMTOM, written into ``out``.

    With a simulation ``truth``, precision and recall of each method against the planted motifs.
    Returns the summary dict.
    """
    from crmnet.data.construct import variable_region
    from crmnet.data.encoding import Encoding, encode
    from crmnet.data.jaspar import load_yeast_motifs, write_meme
    from crmnet.fsutil import atomic_path, write_text_atomic
    from crmnet.plot import save_figure

    config = config or DiscoveryConfig()
    targets = targets if targets is not None else load_yeast_motifs()
    expression = np.asarray(expression, dtype=np.float64)
    width = max(len(s) for s in sequences)
    codes, _ = encode(sequences, Encoding(length=width, channels="ACGT"), source=source)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    region = variable_region(lengths, width, config.flanks)
    found: dict[str, list[Motif]] = {}
    kmer_rows = kmer_enrichment(codes, expression, region, config)
    found["kmer"] = merge_kmers(kmer_rows, config, "kmer")
    mhg_rows: list[dict] = []
    if mhg_test:
        mhg_rows = kmer_mhg(codes, expression, region, config)
        found["mhg"] = merge_kmers(mhg_rows, config, "mhg")
    if attributions is not None:
        if len(attributions) != len(sequences):
            raise ValueError(f"{len(attributions)} attribution maps for {len(sequences)} sequences")
        # Only the contributions are limited to the variable region: a seqlet reaching into a flank still
        # needs its bases (an all-zero one-hot column makes modisco's frequencies 0/0).
        mask = attributions.mask & region[:, : attributions.mask.shape[1]]
        found["modisco"] = modisco_motifs(attributions.onehot, attributions.hypothetical * mask[:, None, :],
                                          **(modisco_options or {}))
    summary: dict = {"n_sequences": len(sequences), "config": config.to_dict(), "n_targets": len(targets),
                     "methods": {}}
    planted = [m["name"] for m in truth["motifs"]] if truth is not None else None
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        write_tsv(tmp / "kmers.tsv", [r for r in kmer_rows if r["q_value"] <= config.alpha] or kmer_rows[:50])
        if mhg_test:
            write_tsv(tmp / "kmers_mhg.tsv", [r for r in mhg_rows if r["q_value"] <= config.alpha] or mhg_rows[:50])
        all_rows = []
        for method, motifs in found.items():
            rows = match_rows(motifs, targets, method)
            all_rows += rows
            entry: dict = {"n_motifs": len(motifs), "motifs": rows}
            if planted is not None:
                entry["recovery"] = recovery(motifs, targets, planted)
            summary["methods"][method] = entry
            if motifs:
                labels = [f"{r['consensus']} ~ {r['best_match']} (q = {r['q_value']:.2g}, E = {r['e_value']:.2g})"
                          for r in rows]
                save_figure(motif_logos_figure(motifs, labels), tmp / f"discovered_{method}")
        write_tsv(tmp / "discovered_motifs.tsv", all_rows)
        discovered = [m for motifs in found.values() for m in motifs]
        if discovered:
            write_meme(discovered, tmp / "discovered_motifs.meme")
        write_text_atomic(tmp / "summary.json", json.dumps(summary, indent=2, default=float))
        write_text_atomic(tmp / "summary.md", _discovery_markdown(summary, planted))
    return summary


def _discovery_markdown(s: dict, planted: list[str] | None) -> str:
    lines = [f"# De novo motif discovery on {s['n_sequences']} sequences", "",
             (f"Each motif matched with TOMTOM (memelite) against {s['n_targets']} S. cerevisiae JASPAR CORE "
              "motifs; E = p × targets, q = Benjamini-Hochberg over all pairs."), ""]
    for method, entry in s["methods"].items():
        lines += [f"## {method}: {entry['n_motifs']} motifs", ""]
        if "recovery" in entry:
            r = entry["recovery"]
            lines += [(f"Against the planted motifs ({', '.join(planted or [])}): precision "
                       f"{r['precision']:.2f} ({r['true_positives']}/{r['n_discovered']}), recall {r['recall']:.2f} "
                       f"({len(r['recovered'])}/{r['n_planted']}: {', '.join(r['recovered']) or 'none'})."), ""]
        if entry["motifs"]:
            lines += ["| motif | consensus | best JASPAR match | p | E | q |", "|---|---|---|---|---|---|"]
            lines += [f"| {r['motif']} | {r['consensus']} | {r['best_match_id']} {r['best_match']} | "
                      f"{r['p_value']:.2g} | {r['e_value']:.2g} | {r['q_value']:.2g} |" for r in entry["motifs"]]
            lines.append("")
    return "\n".join(lines)
