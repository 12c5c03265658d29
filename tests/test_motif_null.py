"""Figure 5F's specificity null: column-shuffled motif matrices (crmnet.interpret.motif_null).

Attributions are built by hand, so the answer is known: one planted motif carries attribution at its sites
(specific), while a composition effect (attribution on every G and C) lifts a GC-rich motif and its shuffles
alike (not specific).
"""

from __future__ import annotations

import numpy as np
import pytest

from crmnet.data.jaspar import Motif
from crmnet.interpret.enrichment import saliency_enrichment
from crmnet.interpret.motif_null import NULL_COLUMNS, shuffle_null, shuffled_motifs
from crmnet.interpret.scanning import scan

W = 110


def _motif(name: str, consensus: str, strength: float = 20.0) -> Motif:
    counts = np.ones((4, len(consensus)))
    for j, b in enumerate(consensus):
        counts["ACGT".index(b), j] += strength
    return Motif(name, f"X{name}", counts)


def _data(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, (n, W))
    site = "TTACCCGGATCA"
    planted = np.zeros((n, W), dtype=bool)
    for i in range(0, n, 2):
        at = rng.integers(20, 90)
        codes[i, at : at + len(site)] = ["ACGT".index(b) for b in site]
        planted[i, at : at + len(site)] = True
    onehot = np.eye(4, dtype=np.float32)[codes].transpose(0, 2, 1)
    gc = np.isin(codes, (1, 2))
    attribution = 1.0 * planted + 0.5 * gc + rng.normal(0, 0.3, (n, W))
    region = np.zeros((n, W), dtype=bool)
    region[:, 17:97] = True
    return onehot, attribution, region


def test_shuffles_permute_columns_and_never_return_the_matrix(rng):
    m = _motif("A", "ACGTTGCA")
    shuffles = shuffled_motifs(m, 50, rng)
    assert len(shuffles) == 50 and len({s.name for s in shuffles}) == 50
    for s in shuffles:
        assert not np.array_equal(s.counts, m.counts)
        assert sorted(map(tuple, s.counts.T)) == sorted(map(tuple, m.counts.T))


def test_planted_motif_is_specific_and_a_composition_effect_is_not():
    onehot, attribution, region = _data(0)
    motifs = [_motif("PLANTED", "TTACCCGGATCA"), _motif("GCRICH", "GCCGCGGC", strength=4.0)]
    rows = saliency_enrichment(scan(motifs, onehot, threshold=1e-2, region=region), attribution, region)
    table = shuffle_null(rows, motifs, onehot, attribution, region, threshold=1e-2, n_shuffles=40, seed=0)
    planted, gc = rows
    assert set(NULL_COLUMNS) <= set(planted)
    assert len(table) == 80 and {r["motif"] for r in table} == {"PLANTED", "GCRICH"}
    # both beat the rest of their sequences (5F's own test) ...
    assert planted["q_value"] < 1e-6 and gc["q_value"] < 1e-3 and gc["difference"] > 0.05
    # ... but only the planted motif beats its shuffles
    assert planted["specific"] and planted["null_p"] == pytest.approx(1 / 41) and planted["null_z"] > 5
    assert not gc["specific"] and gc["null_p"] > 0.1
    assert abs(gc["difference"] - gc["null_mean"]) < 3 * gc["null_sd"]


def test_null_is_reproducible_and_rejects_zero_shuffles():
    onehot, attribution, region = _data(1, n=120)
    motifs = [_motif("PLANTED", "TTACCCGGATCA")]

    def run(seed):
        rows = saliency_enrichment(scan(motifs, onehot, region=region), attribution, region)
        shuffle_null(rows, motifs, onehot, attribution, region, n_shuffles=10, seed=seed)
        return rows[0]

    assert run(3) == run(3)
    # a motif matched in too few sequences gets no null p and is not called either way
    few = saliency_enrichment(scan(motifs, onehot[:4], region=region[:4]), attribution[:4], region[:4])
    shuffle_null(few, motifs, onehot[:4], attribution[:4], region[:4], n_shuffles=5)
    assert few[0]["n_sequences"] < 5 and few[0]["null_p"] is None and few[0]["specific"] is None
    with pytest.raises(ValueError, match="at least 1"):
        shuffle_null([], motifs, onehot, attribution, region, n_shuffles=0)
