"""The expression conservation coefficient (ECC) of Vaishnav et al. 2022 for any model.

For each native promoter the file of orthologous variable regions (80 nt, one row per distinct sequence
found among 1,011 *S. cerevisiae* isolates, with the number of isolates carrying it) gives a population.
Per promoter:

1. the **consensus**: the most frequent base at each position, weighted by isolates (ties: A < C < G < T);
2. each ortholog's Hamming distance ``k`` to it;
3. two neutral controls: **sim**, one sequence per isolate (``num_isolates`` copies of each row), the
   consensus mutated at ``k`` distinct random positions to a random other base; **sim_v2**, one such
   sequence per distinct ortholog, weighted by its isolates;
4. every sequence predicted inside the constant flanks of the construct;
5. the isolate-weighted standard deviations (denominator Σf − 1, 0 for one sequence): σ_actual over the
   orthologs, σ_sim, σ_sim_v2;
6. ``ECC = log2((σ_sim + e)/(σ_actual + e)) − median_promoters log2((σ_sim + e)/(σ_sim_v2 + e))`` with e
   the float64 machine epsilon, undefined where σ_actual = 0. ECC > 0: expression more conserved than
   neutral mutation at the same divergence would leave it.

Rows containing N are dropped (as in the authors' analysis). Each promoter draws its controls from its
own generator ``(seed, index in the file)``, so the first N promoters get the same controls whatever
``--limit`` is. Sequences are deduplicated per promoter before prediction.

The model's **mutational robustness threshold** follows as in the authors' ``ecc_mr_fr`` notebook: twice
the weighted standard deviation of σ_actual² over the promoters with ECC > 0, each promoter weighted by its
isolates (:func:`robustness_epsilon`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK
from crmnet.errors import InputError

MACHINE_EPS = float(np.finfo(np.float64).eps)
HEADER = ("proName", "ortho_seq", "num_isolates")
_CODE = np.full(256, 255, dtype=np.uint8)
for _i, _b in enumerate(b"ACGTN"):
    _CODE[_b] = _i
    _CODE[ord(chr(_b).lower())] = _i


@dataclass
class Promoter:
    """One promoter's orthologs: ``codes`` (m, 80) uint8 A0 C1 G2 T3, ``weights`` (m,) isolates each."""

    name: str
    index: int
    codes: np.ndarray
    weights: np.ndarray
    dropped_n: int


def _parse_row(text: str, source: str, line: int, length: int | None) -> tuple[str, np.ndarray, int]:
    parts = text.split("\t")
    if len(parts) != 3:
        raise InputError(source, f"expected 3 tab-separated columns (proName, ortho_seq, num_isolates), "
                                 f"found {len(parts)}", line=line)
    name, seq, count = parts
    codes = _CODE[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]
    if (codes == 255).any():
        bad = seq[int(np.flatnonzero(codes == 255)[0])]
        raise InputError(source, f"invalid character {bad!r} in ortho_seq", line=line)
    if length is not None and len(codes) != length:
        raise InputError(source, f"ortho_seq has {len(codes)} nt, the rows before have {length}", line=line)
    try:
        n = int(count)
    except ValueError:
        raise InputError(source, f"num_isolates {count!r} is not an integer", line=line) from None
    if n < 1:
        raise InputError(source, f"num_isolates must be at least 1, got {n}", line=line)
    return name, codes, n


def iter_promoters(path, limit: int | None = None) -> Iterator[Promoter]:
    """Read an orthologs file (``proName  ortho_seq  num_isolates``, header, plain or gzip) per promoter.

    Parameters
    ----------
    path : path-like
        The file; a promoter's rows must be consecutive.
    limit : int or None
        Stop after the first ``limit`` promoters of the file.

    Yields
    ------
    Promoter
        In file order; promoters whose every row contains N are skipped (their index still counts).
    """
    from crmnet.data.streams import display_name, text_lines

    source = display_name(path)
    seen: set[str] = set()
    name, rows, weights, dropped, length, index = None, [], [], 0, None, -1
    lines = text_lines(path)
    first = next(lines, None)
    if first is None or tuple(first[1].strip().split("\t")) != HEADER:
        raise InputError(source, "expected the header 'proName<TAB>ortho_seq<TAB>num_isolates'", line=1)
    for line, text in lines:
        if not text.strip():
            continue
        pro, codes, n = _parse_row(text, source, line, length)
        length = len(codes)
        if pro != name:
            if pro in seen:
                raise InputError(source, f"the rows of promoter {pro!r} are not consecutive", line=line)
            if name is not None and rows:
                yield Promoter(name, index, np.stack(rows), np.array(weights, np.int64), dropped)
            index += 1
            if limit is not None and index >= limit:
                return
            seen.add(pro)
            name, rows, weights, dropped = pro, [], [], 0
        if (codes == 4).any():
            dropped += 1
            continue
        rows.append(codes)
        weights.append(n)
    if name is not None and rows:
        yield Promoter(name, index, np.stack(rows), np.array(weights, np.int64), dropped)


def consensus(codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The isolate-weighted majority base per position.

    Parameters
    ----------
    codes : (m, L) uint8 codes 0–3
    weights : (m,) isolates per row

    Returns
    -------
    (L,) uint8
    """
    counts = np.zeros((codes.shape[1], 4), dtype=np.float64)
    for b in range(4):
        counts[:, b] = ((codes == b) * weights[:, None]).sum(axis=0)
    return counts.argmax(axis=1).astype(np.uint8)


def mutate_at_distance(reference: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copies of ``reference``, copy i mutated at ``k[i]`` distinct random positions to a random other base.

    Parameters
    ----------
    reference : (L,) uint8
    k : (n,) int, each in [0, L]
    rng : numpy Generator

    Returns
    -------
    (n, L) uint8; row i is at Hamming distance exactly ``k[i]`` from ``reference``.
    """
    n, length = len(k), len(reference)
    out = np.repeat(reference[None, :], n, axis=0)
    moved = np.flatnonzero(k > 0)
    if len(moved):
        ranks = rng.random((len(moved), length)).argsort(axis=1).argsort(axis=1)
        hit = ranks < k[moved, None]
        shift = rng.integers(1, 4, size=hit.shape, dtype=np.uint8)
        sub = out[moved]
        sub[hit] = (sub[hit] + shift[hit]) % 4
        out[moved] = sub
    return out


def weighted_sd(values: np.ndarray, weights: np.ndarray) -> float:
    """Weighted standard deviation with denominator Σw − 1 (frequency weights); 0 for one value.

    Parameters
    ----------
    values, weights : (m,) arrays

    Returns
    -------
    float
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if len(values) <= 1:
        return 0.0
    mean = np.average(values, weights=weights)
    return float(np.sqrt((weights * (values - mean) ** 2).sum() / (weights.sum() - 1)))


@dataclass
class PromoterSet:
    """One promoter's sequences to predict and how each statistic reads them back.

    ``unique`` (u, 80) uint8 distinct sequences; ``groups`` maps ``actual``, ``sim`` and ``sim_v2`` to
    (index into ``unique``, weight) arrays.
    """

    promoter: Promoter
    consensus: np.ndarray
    mean_hamming: float
    unique: np.ndarray
    groups: dict


def controls(promoter: Promoter, seed: int) -> PromoterSet:
    """Consensus, neutral controls and the distinct sequences of one promoter (see the module docstring)."""
    rng = np.random.default_rng([seed, promoter.index])
    cons = consensus(promoter.codes, promoter.weights)
    k = (promoter.codes != cons).sum(axis=1)
    sim = mutate_at_distance(cons, np.repeat(k, promoter.weights), rng)
    sim_v2 = mutate_at_distance(cons, k, rng)
    every = np.concatenate([promoter.codes, sim, sim_v2])
    unique, inverse = np.unique(every, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    m, s = len(promoter.codes), len(sim)
    sim_idx, sim_w = np.unique(inverse[m : m + s], return_counts=True)
    groups = {
        "actual": (inverse[:m], promoter.weights),
        "sim": (sim_idx, sim_w),
        "sim_v2": (inverse[m + s :], promoter.weights),
    }
    mean_k = float(np.average(k, weights=promoter.weights))
    return PromoterSet(promoter, cons, mean_k, unique, groups)


def _flanked(variable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    left = _CODE[np.frombuffer(LEFT_FLANK.encode(), np.uint8)]
    right = _CODE[np.frombuffer(RIGHT_FLANK.encode(), np.uint8)]
    n = len(variable)
    codes = np.concatenate([np.repeat(left[None], n, 0), variable, np.repeat(right[None], n, 0)], axis=1)
    return codes, np.full(n, codes.shape[1], dtype=np.int64)


def _sigma_row(ps: PromoterSet, pred: np.ndarray) -> dict:
    row = {"promoter": ps.promoter.name, "n_orthologs": len(ps.promoter.codes),
           "n_isolates": int(ps.promoter.weights.sum()), "mean_hamming": ps.mean_hamming,
           "consensus": "".join("ACGT"[c] for c in ps.consensus)}
    for key in ("actual", "sim", "sim_v2"):
        idx, w = ps.groups[key]
        row[f"sigma_{key}"] = weighted_sd(pred[idx], w)
    return row


def promoter_sigmas(promoters: Iterator[Promoter], predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
                    seed: int, batch: int = 16384, on_promoter: Callable[[int, int], None] | None = None
                    ) -> list[dict]:
    """σ_actual, σ_sim and σ_sim_v2 of every promoter, predicting ``batch`` sequences or more at a time.

    Parameters
    ----------
    promoters : iterator of Promoter
    predict : callable
        Codes (B, 110) uint8 and lengths (B,) → (B,) predictions (e.g. a ``ModelPredictor``).
    seed : int
        Seed of the neutral controls.
    batch : int
        Sequences gathered before each call of ``predict``.
    on_promoter : callable or None
        Called with (promoters done, sequences predicted) after each batch (progress).

    Returns
    -------
    list of dict
        One row per promoter: promoter, n_orthologs, n_isolates, mean_hamming, consensus, sigma_actual,
        sigma_sim, sigma_sim_v2 (and ``n_predicted``, the distinct sequences predicted for it).
    """
    rows: list[dict] = []
    pending: list[PromoterSet] = []

    def flush() -> None:
        variable = np.concatenate([p.unique for p in pending])
        pred = np.asarray(predict(*_flanked(variable)), dtype=np.float64)
        at = 0
        for ps in pending:
            row = _sigma_row(ps, pred[at : at + len(ps.unique)])
            row["n_predicted"] = len(ps.unique)
            rows.append(row)
            at += len(ps.unique)
        if on_promoter is not None:
            on_promoter(len(pending), at)
        pending.clear()

    size = 0
    for promoter in promoters:
        pending.append(controls(promoter, seed))
        size += len(pending[-1].unique)
        if size >= batch:
            flush()
            size = 0
    if pending:
        flush()
    return rows


def add_ecc(rows: list[dict]) -> float:
    """Add ``ecc_uncorrected``, ``ecc`` and the sim/sim_v2 log ratio to every row; return the correction.

    Parameters
    ----------
    rows : list of dict
        From :func:`promoter_sigmas` (modified in place; NaN where σ_actual = 0).

    Returns
    -------
    float
        The correction: the median over all promoters of log2((σ_sim + e)/(σ_sim_v2 + e)).
    """
    e = MACHINE_EPS
    sim = np.array([r["sigma_sim"] for r in rows], dtype=np.float64)
    v2 = np.array([r["sigma_sim_v2"] for r in rows], dtype=np.float64)
    actual = np.array([r["sigma_actual"] for r in rows], dtype=np.float64)
    correction = float(np.median(np.log2((sim + e) / (v2 + e)))) if rows else float("nan")
    raw = np.where(actual == 0, np.nan, np.log2((sim + e) / (actual + e)))
    for r, u in zip(rows, raw):
        r["ecc_uncorrected"] = float(u)
        r["ecc"] = float(u - correction)
    return correction


def robustness_epsilon(sigma_actual: np.ndarray, ecc: np.ndarray, weights: np.ndarray) -> float:
    """The mutational robustness threshold ε from a model's ECC (Vaishnav et al.'s ``ecc_mr_fr``).

    Parameters
    ----------
    sigma_actual : (P,) σ_actual per promoter
    ecc : (P,) ECC per promoter (NaN where undefined)
    weights : (P,) isolates per promoter

    Returns
    -------
    float
        2 × weighted SD (denominator Σw − 1) of σ_actual² over the promoters with ECC > 0; NaN if none.
    """
    keep = np.nan_to_num(np.asarray(ecc, dtype=np.float64), nan=-np.inf) > 0
    if not keep.any():
        return float("nan")
    return 2.0 * weighted_sd(np.asarray(sigma_actual, np.float64)[keep] ** 2, np.asarray(weights)[keep])


def summarize(rows: list[dict], correction: float, epsilon: float) -> dict:
    """Counts and medians of an ECC table (finite ECC, fraction above zero with its one-sided binomial p).

    Parameters
    ----------
    rows : list of dict
        With ``ecc`` (from :func:`add_ecc`).
    correction, epsilon : float
        From :func:`add_ecc` and :func:`robustness_epsilon`.

    Returns
    -------
    dict
    """
    from scipy.stats import binomtest

    ecc = np.array([r["ecc"] for r in rows], dtype=np.float64)
    finite = ecc[np.isfinite(ecc)]
    above = int((finite > 0).sum())
    p = float(binomtest(above, len(finite), 0.5, alternative="greater").pvalue) if len(finite) else float("nan")
    return {
        "promoters": len(rows), "finite_ecc": len(finite),
        "fraction_above_zero": above / len(finite) if len(finite) else float("nan"),
        "binomial_p_above_zero": p,
        "median_ecc": float(np.median(finite)) if len(finite) else float("nan"),
        "correction": correction, "robustness_epsilon": epsilon,
        "sequences_predicted": int(sum(r["n_predicted"] for r in rows)),
        "distinct_orthologs": int(sum(r["n_orthologs"] for r in rows)),
    }


def count_promoters(path) -> int:
    """Distinct promoters of an orthologs file (a cheap first pass, for the progress total)."""
    from crmnet.data.streams import text_lines

    names = set()
    for line, text in text_lines(path):
        if line > 1:
            names.add(text.split("\t", 1)[0])
    return len(names)


def divergence_weights(path) -> dict[str, int]:
    """``proName → num_valid_hamming`` from the authors' promoter divergence table (header, tab-separated)."""
    from crmnet.data.streams import display_name, text_lines

    source = display_name(path)
    lines = text_lines(path)
    first = next(lines, (1, ""))[1].split("\t")
    if "proName" not in first or "num_valid_hamming" not in first:
        raise InputError(source, "expected a header with proName and num_valid_hamming", line=1)
    name_at, n_at = first.index("proName"), first.index("num_valid_hamming")
    out = {}
    for line, text in lines:
        parts = text.split("\t")
        try:
            out[parts[name_at]] = int(parts[n_at])
        except (IndexError, ValueError):
            raise InputError(source, "num_valid_hamming is missing or not an integer", line=line) from None
    return out


def run_ecc(predict, orthologs, *, seed: int, limit: int | None = None, divergence=None,
            batch: int = 16384, progress: bool = True) -> tuple[list[dict], dict]:
    """The ECC of every promoter of an orthologs file under one predictor, with its summary.

    Parameters
    ----------
    predict : callable
        Codes (B, 110) uint8, lengths (B,) → (B,) predictions.
    orthologs : path-like
        The orthologs file (see :func:`iter_promoters`).
    seed : int
        Seed of the neutral controls.
    limit : int or None
        The first ``limit`` promoters only.
    divergence : path-like or None
        The authors' divergence table: ε then weights promoters by its ``num_valid_hamming`` (as their
        notebook does) instead of the isolates counted in the orthologs file.
    batch : int
        Sequences per call of ``predict``.
    progress : bool
        Show progress (promoters and sequences).

    Returns
    -------
    rows : list of dict
        The ECC table (:func:`promoter_sigmas` columns plus ``ecc_uncorrected``, ``ecc``).
    summary : dict
        :func:`summarize`, with ``weights`` saying where ε's weights came from.
    """
    from crmnet.progress import progress as bar

    total = count_promoters(orthologs)
    total = total if limit is None else min(limit, total)
    with bar(total=total, desc="ecc", unit="promoter", enable=progress) as meter:
        rows = promoter_sigmas(iter_promoters(orthologs, limit), predict, seed, batch,
                               on_promoter=lambda n, _: meter.update(n))
    correction = add_ecc(rows)
    weights = np.array([r["n_isolates"] for r in rows], dtype=np.float64)
    source = "isolates in the orthologs file"
    if divergence is not None:
        table = divergence_weights(divergence)
        missing = [r["promoter"] for r in rows if r["promoter"] not in table]
        if missing:
            raise InputError(str(divergence), f"no num_valid_hamming for {len(missing)} promoters, "
                                              f"e.g. {missing[0]!r}")
        weights = np.array([table[r["promoter"]] for r in rows], dtype=np.float64)
        source = "num_valid_hamming of the divergence table"
    epsilon = robustness_epsilon(np.array([r["sigma_actual"] for r in rows]),
                                 np.array([r["ecc"] for r in rows]), weights)
    summary = summarize(rows, correction, epsilon)
    summary["epsilon_weights"] = source
    return rows, summary


def store_epsilon(checkpoint, summary: dict) -> None:
    """Rewrite ``checkpoint`` (atomically) with ``extra["robustness_epsilon"]`` from an ECC summary.

    Parameters
    ----------
    checkpoint : path-like
        A crmnet checkpoint; every other field is kept as it is.
    summary : dict
        From :func:`run_ecc`: ``robustness_epsilon`` and the run that gave it.
    """
    import torch

    from crmnet.fsutil import atomic_file
    from crmnet.models.checkpoint import read_checkpoint

    value = summary["robustness_epsilon"]
    if not np.isfinite(value) or value <= 0:
        raise InputError(str(checkpoint), f"no epsilon to store: the ECC gave {value}")
    payload = read_checkpoint(checkpoint)
    payload.setdefault("extra", {})["robustness_epsilon"] = {
        "value": float(value),
        "source": (f"crmnet ecc on {Path(summary['orthologs']).name}, {summary['promoters']:,} promoters, "
                   f"seed {summary['seed']}, {summary['finite_ecc']:,} finite ECC"),
    }
    with atomic_file(checkpoint, overwrite=True, mode="wb") as fh:
        torch.save(payload, fh)


def epsilon_for(model, given: float | None = None) -> tuple[float, str]:
    """The robustness threshold ε for ``model`` and where it came from.

    Parameters
    ----------
    model : nn.Module
        A loaded checkpoint (its stored ε, from :func:`store_epsilon`, is used when ``given`` is None).
    given : float, optional
        An ε the user chose (``--epsilon``, the page's field); it wins.

    Returns
    -------
    epsilon : float
    source : str
        ``--epsilon``, the checkpoint's own (with its provenance), or the default (Vaishnav et al.'s
        transformer's 0.1616).
    """
    from crmnet.design.evolvability import EPSILON

    stored = checkpoint_epsilon(model)
    if given is not None:
        return given, "--epsilon"
    if stored is not None:
        return stored[0], f"the checkpoint's own, from {stored[1]}"
    return EPSILON, "default: Vaishnav et al.'s transformer's; `crmnet ecc --write-epsilon` derives the model's own"


def checkpoint_epsilon(model) -> tuple[float, str] | None:
    """(ε, where it came from) stored in a loaded model's checkpoint by :func:`store_epsilon`, or None."""
    stored = (getattr(model, "checkpoint_meta", None) or {}).get("extra", {}).get("robustness_epsilon")
    if not stored:
        return None
    return float(stored["value"]), str(stored["source"])
