"""Known-motif scanning, figure-5F/5G statistics, k-mers, mHG, merging, TOMTOM matching and recovery."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import hypergeom

from crmnet.data.construct import variable_region
from crmnet.data.encoding import Encoding, encode
from crmnet.data.jaspar import load_yeast_motifs
from crmnet.interpret.attribution import sequence_onehot
from crmnet.interpret.motifs import (
    DiscoveryConfig,
    Hits,
    bh_adjust,
    discover,
    expression_enrichment,
    kmer_enrichment,
    kmer_ids,
    kmer_mhg,
    kmer_string,
    merge_kmers,
    mhg,
    recovery,
    saliency_enrichment,
    scan,
    write_tsv,
)

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
    targets = load_yeast_motifs()
    rec = recovery(motifs[:1], targets, ["REB1"])
    assert rec["recall"] == 1.0 and rec["precision"] == 1.0


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


def test_figure_5f_5g_statistics(rng):
    (reb1,) = load_yeast_motifs(["REB1"])
    n, width = 200, 50
    per = rng.normal(0, 0.1, (n, width))
    seq = list(range(100))
    per[np.array(seq)[:, None], np.arange(10, 19)[None, :]] += 1.0
    hits = _hits([reb1], n, width, seq, [10] * 100, [19] * 100)
    region = np.ones((n, width), bool)
    (f,) = saliency_enrichment(hits, per, region)
    assert f["mean_matched"] == pytest.approx(per[:100, 10:19].mean()) and f["mean_all"] == pytest.approx(per.mean())
    assert f["q_value"] < 1e-10 and f["n_positions"] == 900
    expr = np.r_[rng.normal(10, 1, 100), rng.normal(8, 1, 100)]
    (g,) = expression_enrichment(hits, expr)
    assert g["mean_with"] == pytest.approx(expr[:100].mean()) and g["mean_all"] == pytest.approx(expr.mean())
    assert g["mannwhitney_p"] < 1e-10 and g["mhg_p_top"] < 1e-10 and g["mhg_p_bottom"] > 0.5


def test_bh_and_tables(tmp_path):
    np.testing.assert_allclose(bh_adjust(np.array([0.01, 0.04, 0.03, 0.5])), [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    path = write_tsv(tmp_path / "t.tsv", [{"a": 1, "b": 0.123456789}, {"a": 2, "c": "x"}])
    assert path.read_text().splitlines() == ["a\tb\tc", "1\t0.123457\t", "2\t\tx"]
    with pytest.raises(FileExistsError):
        write_tsv(path, [])


def test_recovery_counts_precision_and_recall():
    targets = load_yeast_motifs()
    reb1, gal4 = load_yeast_motifs(["REB1", "GAL4"])
    rec = recovery([reb1, gal4], targets, ["REB1", "RAP1"])
    assert rec["true_positives"] == 1 and rec["precision"] == 0.5
    assert rec["recovered"] == ["REB1"] and rec["recall"] == 0.5
    with pytest.raises(ValueError, match="planted"):
        recovery([reb1], targets, ["NOTAMOTIF"])


def test_discover_writes_tables_and_recovers(tmp_path, rng):
    seqs, expr = _planted_set(rng, n=400)
    truth = {"motifs": [{"name": "REB1"}]}
    summary = discover(seqs, expr, tmp_path / "d", DiscoveryConfig(gaps=(0,), n_top=150, n_bottom=150, max_motifs=2),
                       truth=truth)
    assert summary["methods"]["kmer"]["recovery"]["recall"] == 1.0
    assert summary["methods"]["mhg"]["recovery"]["recall"] == 1.0
    for name in ("kmers.tsv", "kmers_mhg.tsv", "discovered_motifs.tsv", "discovered_motifs.meme", "summary.md",
                 "discovered_kmer.png"):
        assert (tmp_path / "d" / name).exists()


def test_config_rejects_gapped_odd_k():
    with pytest.raises(ValueError, match="even"):
        DiscoveryConfig(k=5)
    assert DiscoveryConfig(k=5, gaps=(0,), mhg_gaps=(0,)).k == 5
