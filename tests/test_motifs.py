"""Known-motif scanning, figure-5F/5G statistics, k-mers, mHG, merging, TOMTOM matching and recovery.

Tests that run memelite's TOMTOM are marked ``slow``: its numba JIT costs minutes on a cold cache. Recovery
scoring itself is tested on hand-made match matrices.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import hypergeom

from crmnet.data.construct import variable_region
from crmnet.data.encoding import Encoding, encode
from crmnet.data.jaspar import load_yeast_motifs
from crmnet.interpret.attribution import sequence_onehot
from crmnet.interpret.denovo import discover
from crmnet.interpret.enrichment import expression_enrichment, saliency_enrichment
from crmnet.interpret.kmers import (
    DiscoveryConfig,
    kmer_enrichment,
    kmer_ids,
    kmer_mhg,
    kmer_string,
    merge_kmers,
)
from crmnet.interpret.matching import Matches, tomtom_match
from crmnet.interpret.scanning import Hits, scan
from crmnet.interpret.scoring import recovery
from crmnet.interpret.stats import bh_adjust, mhg
from crmnet.tables import format_p, markdown_table, write_tsv

LEFT, RIGHT = "TGCATTTTTTTCACATC", "GGTTACGGCTGTT"


def _random(rng, n: int, width: int = 80) -> list[str]:
    return ["".join(rng.choice(list("ACGT"), width)) for _ in range(n)]


def _codes(seqs):
    width = max(map(len, seqs))
    return encode(seqs, Encoding(length=width, channels="ACGT"))[0]


def _brute_force_mhg_p(labels: np.ndarray) -> float:
    n, b = len(labels), int(labels.sum())

    def stat(lab):
        counts = np.cumsum(lab)
        return min(hypergeom.sf(counts[i] - 1, n, b, i + 1) for i in range(n) if lab[i])

    observed = stat(labels)
    hits = total = 0
    for ones in itertools.combinations(range(n), b):
        lab = np.zeros(n, bool)
        lab[list(ones)] = True
        total += 1
        hits += stat(lab) <= observed * (1 + 1e-9)
    return hits / total


@pytest.mark.parametrize("ones", [[0, 2, 3, 9], [1, 2, 5, 6, 13], [0, 1, 2], [4, 7, 8, 11, 12]])
def test_mhg_p_value_is_exact(ones):
    labels = np.zeros(14, bool)
    labels[ones] = True
    stat, p, cut = mhg(labels)
    counts = np.cumsum(labels)
    assert stat == pytest.approx(hypergeom.sf(counts[cut - 1] - 1, 14, len(ones), cut))
    assert p == pytest.approx(_brute_force_mhg_p(labels), rel=1e-9)


def test_mhg_tiny_p_values_keep_their_precision(rng):
    labels = np.zeros(3000, bool)
    labels[:40] = True
    labels[rng.choice(3000, 60, replace=False)] = True
    stat, p, _ = mhg(labels)
    assert 0 < p < 1e-40 and stat <= p <= 3000 * stat  # Bonferroni over the cut-offs bounds it
    null = np.zeros((200, 500), bool)
    for row in null:
        row[rng.choice(500, 30, replace=False)] = True
    ps = np.array([mhg(row)[1] for row in null])
    assert 0.01 < np.mean(ps < 0.1) < 0.2  # calibrated under the null


def test_kmer_ids_are_strand_symmetric(rng):
    seqs = _random(rng, 5, 40)
    rc = [s[::-1].translate(str.maketrans("ACGT", "TGCA")) for s in seqs]
    codes, rcodes = _codes(seqs), _codes(rc)
    region = np.ones(codes.shape, bool)
    for gap in (0, 3):
        fwd, rev = kmer_ids(codes, region, 6, gap), kmer_ids(rcodes, region, 6, gap)
        np.testing.assert_array_equal(fwd, rev[:, ::-1])
    ids = kmer_ids(_codes(["AAACCCGGGTTT"]), np.ones((1, 12), bool), 6, 0)
    assert kmer_string(int(ids[0, 3]), 6, 0) in ("CCCGGG",)
    assert kmer_string(int(kmer_ids(_codes(["ACGTNACGTT"]), np.ones((1, 10), bool), 4, 0)[0, 5]), 4, 0) in ("ACGT",)
    assert (kmer_ids(_codes(["ACGTNACGTT"]), np.ones((1, 10), bool), 4, 0)[0, 1:5] == -1).all()


def _planted_set(rng, n=600, motif="TTACCCGG"):
    """Sequences whose expression rises with a planted REB1 site and falls with a UME6-like repressor."""
    seqs, expr = [], []
    for i in range(n):
        var = list("".join(rng.choice(list("ACGT"), 80)))
        y = rng.normal(0, 1)
        if i % 3 == 0:
            s = int(rng.integers(0, 70))
            site = motif if rng.random() < 0.5 else motif[::-1].translate(str.maketrans("ACGT", "TGCA"))
            var[s : s + len(site)] = site
            y += 3
        seqs.append(LEFT + "".join(var) + RIGHT)
        expr.append(y)
    return seqs, np.array(expr)


def test_kmer_enrichment_and_mhg_find_the_planted_site(rng):
    seqs, expr = _planted_set(rng)
    codes = _codes(seqs)
    region = variable_region(np.full(len(seqs), 110), 110)
    config = DiscoveryConfig(gaps=(0, 2), n_top=200, n_bottom=200, max_motifs=3)
    rows = kmer_enrichment(codes, expr, region, config)
    best = rows[0]
    assert best["direction"] == "top" and best["q_value"] < 1e-10
    canon = {"TTACCC", "GGGTAA", "TACCCG", "CGGGTA", "ACCCGG", "CCGGGT"}
    assert best["kmer"] in canon
    mhg_rows = kmer_mhg(codes, expr, region, config)
    assert mhg_rows[0]["kmer"] in canon and mhg_rows[0]["direction"] == "top" and mhg_rows[0]["q_value"] < 1e-10
    motifs = merge_kmers(rows, config, "kmer")
    assert motifs[0].name == "kmer_top_1" and motifs[0].width >= 7
    assert motifs[0].consensus in ("TTACCCGG", "CCGGGTAA") or "ACCCG" in motifs[0].consensus + _rc(motifs[0].consensus)


def _rc(s: str) -> str:
    return s[::-1].translate(str.maketrans("ACGT", "TGCA"))


@pytest.mark.slow  # memelite's FIMO: tens of seconds of numba JIT on a cold cache
def test_scan_finds_sites_and_respects_the_region():
    reb1, rap1 = load_yeast_motifs(["REB1", "RAP1"])
    filler = "A" * 30
    seqs = [filler + reb1.consensus + filler, filler + reb1.reverse_complement().consensus + filler, filler * 3]
    x = sequence_onehot(seqs)
    hits = scan([reb1, rap1], x, threshold=1e-4)
    rows = [(int(s), int(st), int(k)) for s, st, k in zip(hits.seq, hits.start, hits.strand)]
    assert (0, 30, 1) in rows and (1, 30, -1) in rows
    assert hits.contains()[0].tolist() == [True, True, False]
    assert hits.covered(0)[0, 30:39].all() and not hits.covered(0)[0, :30].any()
    region = np.ones((3, x.shape[2]), bool)
    region[0, 35] = False
    assert 0 not in scan([reb1], x, threshold=1e-4, region=region).seq


def _hits(motifs, n, width, seq, start, end):
    k = len(seq)
    return Hits(motifs, np.zeros(k, np.int64), np.array(seq), np.array(start), np.array(end), np.ones(k, np.int8),
                np.ones(k), np.full(k, 1e-5), n, width)


def test_figure_5f_is_a_paired_test_over_sequences(rng):
    from scipy.stats import wilcoxon

    reb1, rap1, nhp10 = load_yeast_motifs(["REB1", "RAP1", "NHP10"])
    n, width = 200, 50
    per = rng.normal(0, 0.1, (n, width))
    per[:40, 10:19] -= 1.0  # a repressor-like motif: negative attribution at its sites
    seq = list(range(40)) + [100]
    k = [0] * 40 + [1]
    hits = Hits([reb1, rap1, nhp10], np.array(k), np.array(seq), np.array([10] * 41), np.array([19] * 41),
                np.ones(41, np.int8), np.ones(41), np.full(41, 1e-5), n, width)
    region = np.ones((n, width), bool)
    region[:, 45:] = False
    f = {r["motif"]: r for r in saliency_enrichment(hits, per, region)}
    reb = f["REB1"]
    matched = per[:40, 10:19].mean(1)
    rest = np.concatenate([per[:40, :10], per[:40, 19:45]], axis=1).mean(1)  # matched positions excluded
    assert reb["n_sequences"] == 40 and reb["n_positions"] == 360
    assert reb["mean_matched"] == pytest.approx(matched.mean()) and reb["mean_unmatched"] == pytest.approx(rest.mean())
    assert reb["wilcoxon_p"] == pytest.approx(wilcoxon(matched - rest).pvalue)
    assert reb["difference"] < 0 and reb["ci_high"] < 0  # the effect keeps its sign ...
    assert reb["abs_ratio"] > 5  # ... and its size cannot flip sign
    # one hit of 9 positions is one sequence, not 9 observations: nothing to conclude
    assert f["RAP1"]["n_sequences"] == 1 and f["RAP1"]["wilcoxon_p"] == 1.0
    assert f["NHP10"]["note"] == "no hits" and f["NHP10"]["wilcoxon_p"] is None and f["NHP10"]["q_value"] is None
    assert reb["q_value"] == pytest.approx(min(1.0, 2 * reb["wilcoxon_p"]))  # BH over the two tested motifs


def test_figure_5g_statistics(rng):
    reb1, rap1 = load_yeast_motifs(["REB1", "RAP1"])
    n = 200
    hits = Hits([reb1, rap1], np.zeros(100, np.int64), np.arange(100), np.full(100, 10), np.full(100, 19),
                np.ones(100, np.int8), np.ones(100), np.full(100, 1e-5), n, 50)
    expr = np.r_[rng.normal(10, 1, 100), rng.normal(8, 1, 100)]
    g, none = expression_enrichment(hits, expr)
    assert g["mean_with"] == pytest.approx(expr[:100].mean()) and g["mean_all"] == pytest.approx(expr.mean())
    assert g["mannwhitney_p"] < 1e-10 and g["mhg_p_top"] < 1e-10 and g["mhg_p_bottom"] > 0.5
    assert none["note"] == "no hits" and none["n_sequences"] == 0 and none["q_value"] is None


def test_bh_and_tables(tmp_path):
    np.testing.assert_allclose(bh_adjust(np.array([0.01, 0.04, 0.03, 0.5])), [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    path = write_tsv(tmp_path / "t.tsv", [{"a": 1, "b": 0.123456789, "q_value": 0.0}, {"a": 2, "c": "x", "b": None}])
    assert path.read_text().splitlines() == ["a\tb\tq_value\tc", "1\t0.123457\t< 1e-300\t", "2\t\t\tx"]
    with pytest.raises(FileExistsError):
        write_tsv(path, [])
    assert format_p(0.0, None) == "< 1e-300" and format_p(0.0, "q") == "q < 1e-300" and format_p(0.031, "q") == "q = 0.031"
    assert format_p(None, None) == "n/a" and format_p(float("nan"), "p") == "p = n/a"
    lines = markdown_table(["motif", "mean", "p"], [["REB1", 1.23456, 0.0], ["RAP1", float("nan"), 2e-5]],
                           p_columns=("p",))
    assert lines[2:] == ["| REB1 | 1.23 | < 1e-300 |", "| RAP1 | – | 2e-05 |"]


def _matches(p: np.ndarray) -> Matches:
    p = np.asarray(p, dtype=float)
    return Matches(p, p * p.shape[1], bh_adjust(p))


def test_strict_recovery_counts_best_matches_once_and_lenient_is_labelled():
    targets = load_yeast_motifs(["REB1", "RAP1", "GAL4", "UME6"])
    planted = ["REB1", "UME6"]
    queries = [targets[0]] * 5  # the motif objects only give the count; the matches decide
    p = np.array([
        [1e-9, 0.5, 0.5, 0.5],   # best REB1, significant: correct
        [1e-8, 0.5, 0.5, 0.5],   # REB1 again: a duplicate, counted once
        [0.5, 0.5, 1e-9, 1e-7],  # best GAL4 (not planted), UME6 second: strict no, lenient yes
        [0.6, 0.6, 0.6, 0.2],    # best UME6 but q > 0.05: strict no; E = 0.8 <= 1: lenient yes
        [0.9, 0.9, 0.9, 0.9],    # nothing
    ])
    m = _matches(p)
    strict = recovery(queries, targets, planted, matches=m)
    assert strict["rule"] == "strict" and strict["recovered"] == ["REB1"]
    assert strict["true_positives"] == 1 and strict["n_correct_motifs"] == 2
    assert strict["precision"] == pytest.approx(1 / 5) and strict["recall"] == pytest.approx(1 / 2)
    assert strict["motif_precision"] == pytest.approx(2 / 5)
    lenient = recovery(queries, targets, planted, matches=m, rule="lenient")
    assert "lenient" in lenient["rule_text"] and lenient["recovered"] == ["REB1", "UME6"]
    assert lenient["true_positives"] == 4 and lenient["precision"] == pytest.approx(4 / 5)
    classes = {"REB1": "activator", "UME6": "repressor"}
    claims = ["activator", "repressor", "repressor", "repressor", None]
    per = recovery(queries, targets, planted, matches=m, classes=classes, query_classes=claims)["classes"]
    # the REB1 found by a motif claiming "repressor" does not count for the repressors' precision
    assert per["activator"] == {"n_planted": 1, "recovered": ["REB1"], "recall": 1.0, "n_discovered": 1,
                                "true_positives": 1, "precision": 1.0}
    assert per["repressor"]["recall"] == 0.0 and per["repressor"]["precision"] == 0.0
    with pytest.raises(ValueError, match="planted"):
        recovery(queries, targets, ["NOTAMOTIF"], matches=m)
    with pytest.raises(ValueError, match="rule"):
        recovery(queries, targets, planted, matches=m, rule="loose")
    assert recovery([], targets, planted)["precision"] is None


@pytest.mark.slow  # memelite's TOMTOM: minutes of numba JIT on a cold cache
def test_recovery_with_tomtom_against_all_yeast_motifs():
    targets = load_yeast_motifs()
    reb1, gal4 = load_yeast_motifs(["REB1", "GAL4"])
    m = tomtom_match([reb1, gal4], targets)
    assert [targets[j].name for j in m.best()] == ["REB1", "GAL4"]  # a motif's best match is itself
    rec = recovery([reb1, gal4], targets, ["REB1", "RAP1"], matches=m)
    assert rec["true_positives"] == 1 and rec["precision"] == 0.5
    assert rec["recovered"] == ["REB1"] and rec["recall"] == 0.5


@pytest.mark.slow  # memelite's TOMTOM: minutes of numba JIT on a cold cache
def test_discover_writes_tables_and_recovers(tmp_path, rng):
    seqs, expr = _planted_set(rng, n=400)
    truth = {"motifs": [{"name": "REB1", "effect": 3.0}]}
    summary = discover(seqs, expr, tmp_path / "d", DiscoveryConfig(gaps=(0,), n_top=150, n_bottom=150, max_motifs=2),
                       truth=truth, lenient=True)
    for method in ("kmer", "mhg"):
        entry = summary["methods"][method]
        # TTACCCGG is REB1's core and NSI1's too, and TOMTOM ranks NSI1 first among the yeast motifs: the
        # strict rule does not count that as finding REB1; the lenient rule (any planted match) does.
        assert entry["motifs"][0]["best_match"] == "NSI1" and entry["motifs"][0]["q_value"] < 1e-3
        assert entry["recovery"]["rule"] == "strict" and entry["recovery"]["recall"] == 0.0
        assert entry["recovery"]["classes"]["activator"]["recall"] == 0.0
        assert entry["recovery_lenient"]["rule"] == "lenient" and entry["recovery_lenient"]["recall"] == 1.0
    md = (tmp_path / "d" / "summary.md").read_text()
    assert "strict: best match" in md and "lenient: any planted" in md
    for name in ("kmers.tsv", "kmers_mhg.tsv", "discovered_motifs.tsv", "discovered_motifs.meme", "summary.md",
                 "discovered_kmer.png"):
        assert (tmp_path / "d" / name).exists()


def test_config_rejects_gapped_odd_k():
    with pytest.raises(ValueError, match="even"):
        DiscoveryConfig(k=5)
    assert DiscoveryConfig(k=5, gaps=(0,), mhg_gaps=(0,)).k == 5
