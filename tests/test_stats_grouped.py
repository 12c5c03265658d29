"""Statistics for related sequences: cluster bootstrap, cluster-robust comparison, p-value adjustment, and
the multimodality check, each on simulated data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st

from crmnet.evaluation.metrics import (
    _boot_indices,
    adjust_pvalues,
    bootstrap_ci,
    compare_models,
    group_codes,
)
from crmnet.evaluation.modality import multimodality, two_component_mixture


def _clustered(rng, n_groups=40, size=25, within=0.2):
    """y and p driven by a shared per-group effect (lineages): n_groups·size rows, little within-group noise."""
    g = np.repeat(np.arange(n_groups), size)
    u = rng.normal(size=n_groups)[g]
    y = u + within * rng.normal(size=len(g))
    p = 0.8 * u + rng.normal(0, 0.6, size=n_groups)[g] + within * rng.normal(size=len(g))
    return y, p, g


def test_group_codes_number_groups_by_first_appearance():
    codes = group_codes(["b", "a", "b", 3, "3", "c"], 6)
    assert codes.tolist() == [0, 1, 0, 2, 2, 3]  # 3 and "3" are one label
    with pytest.raises(ValueError, match="2 group labels for 3 rows"):
        group_codes(["a", "b"], 3)
    with pytest.raises(ValueError, match="at least 2 groups"):
        group_codes(["a"] * 4, 4)
    with pytest.raises(ValueError, match="no group label .first at index 1"):
        group_codes(["a", None, "b"], 3)
    with pytest.raises(ValueError, match="no group label"):
        group_codes(np.array([1.0, np.nan, 2.0]), 3)


@pytest.mark.parametrize("sizes", [[3, 3, 3, 3], [1, 4, 2, 5, 1]])
def test_cluster_resamples_hold_whole_groups(sizes):
    codes = np.repeat(np.arange(len(sizes)), sizes)
    codes = codes[np.random.default_rng(0).permutation(len(codes))]  # groups need not be contiguous
    n_reps = 0
    for block in _boot_indices(len(codes), 50, 3, codes):
        for rows in block:
            n_reps += 1
            drawn = codes[rows]
            # Each group appears a whole number of times, with all its rows each time.
            counts = np.bincount(drawn, minlength=len(sizes))
            assert all(c % s == 0 for c, s in zip(counts, sizes))
            for k in np.unique(drawn):
                assert sorted(set(rows[drawn == k])) == sorted(np.flatnonzero(codes == k))
            assert sum(c // s for c, s in zip(counts, sizes)) == len(sizes)  # G groups drawn
    assert n_reps == 50


def test_singleton_groups_are_the_row_bootstrap_draw_for_draw():
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    p = y + rng.normal(size=300)
    b = y + rng.normal(size=300)
    rows = bootstrap_ci(y, p, n_boot=300, seed=5)
    single = bootstrap_ci(y, p, n_boot=300, seed=5, groups=[f"s{i}" for i in range(300)])
    assert single.pop("resampled") == "groups" and single.pop("n_groups") == 300
    assert single == rows
    c_rows = compare_models(y, p, b, n_boot=300, seed=5)
    c_single = compare_models(y, p, b, n_boot=300, seed=5, groups=np.arange(300))
    for key in ("delta_r_ci", "bootstrap_p", "delta_mse_ci", "steiger_p", "r_a", "r_b"):
        assert c_single[key] == c_rows[key], key
    assert c_rows["p"] == c_rows["steiger_p"] and c_rows["p_method"] == "steiger"
    assert c_single["p"] == c_single["cluster_p"] and c_single["p_method"] == "cluster_wald"
    # Independent rows: the cluster Wald test and Steiger's analytic test agree closely.
    assert c_single["cluster_z"] == pytest.approx(c_single["steiger_z"], rel=0.15)


def test_clustered_data_widen_the_interval():
    y, p, g = _clustered(np.random.default_rng(2))
    rows = bootstrap_ci(y, p, n_boot=400, seed=0)
    grouped = bootstrap_ci(y, p, n_boot=400, seed=0, groups=g)
    assert grouped["n_groups"] == 40
    width = {k: b["pearson_r"][1] - b["pearson_r"][0] for k, b in (("rows", rows), ("groups", grouped))}
    # 1,000 rows but only 40 independent lineages: the honest interval is several times wider.
    assert width["groups"] > 3 * width["rows"]
    r = np.corrcoef(y, p)[0, 1]
    assert grouped["pearson_r"][0] < r < grouped["pearson_r"][1]


def test_cluster_wald_holds_its_size_where_steiger_does_not():
    """Two equally good models whose errors are shared within lineages: Steiger's test, counting 600 rows
    as independent, rejects the true null far too often; the cluster test stays near 5 %."""
    rng = np.random.default_rng(7)
    trials, steiger, cluster = 150, 0, 0
    for _ in range(trials):
        g = np.repeat(np.arange(30), 20)
        y = rng.normal(size=600)
        a = y + rng.normal(0, 0.7, size=30)[g] + 0.3 * rng.normal(size=600)
        b = y + rng.normal(0, 0.7, size=30)[g] + 0.3 * rng.normal(size=600)
        c = compare_models(y, a, b, n_boot=200, seed=0, groups=g)
        steiger += c["steiger_p"] < 0.05
        cluster += c["cluster_p"] < 0.05
    assert steiger / trials > 0.3
    assert cluster / trials < 0.12


def test_cluster_comparison_detects_a_real_difference():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(60), 10)
    y = rng.normal(size=600)
    good = y + 0.3 * rng.normal(size=600)
    worse = y + rng.normal(0, 0.8, size=60)[g] + 0.3 * rng.normal(size=600)
    c = compare_models(y, good, worse, n_boot=300, seed=0, groups=g)
    assert c["delta_r"] > 0 and c["delta_r_ci"][0] > 0 and c["cluster_z"] > 0 and c["cluster_p"] < 1e-3
    assert c["n_groups"] == 60
    same = compare_models(y, good, good.copy(), n_boot=50, groups=g)
    assert same["cluster_z"] == 0.0 and same["cluster_p"] == 1.0


def test_bh_and_by_are_scipys_and_holm_is_holms():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=20), rng.uniform(0, 1e-3, size=9), [0.0]])
    for method in ("bh", "by"):
        np.testing.assert_array_equal(adjust_pvalues(p, method), st.false_discovery_control(p, method=method))
    # Holm by hand: sorted 0.01, 0.02, 0.03, 0.5 times 4, 3, 2, 1, then running maximum.
    np.testing.assert_allclose(adjust_pvalues([0.03, 0.5, 0.01, 0.02], "holm"), [0.06, 0.5, 0.04, 0.06])
    np.testing.assert_allclose(adjust_pvalues([0.9, 0.8], "holm"), [1.0, 1.0])
    # BH by hand: 0.01·3/1, 0.02·3/2, 0.5·3/3, monotone from the top.
    np.testing.assert_allclose(adjust_pvalues([0.5, 0.01, 0.02]), [0.5, 0.03, 0.03])


def test_adjustment_skips_missing_values_and_rejects_bad_ones():
    q = adjust_pvalues([0.01, np.nan, 0.02])
    assert math.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2]], [0.02, 0.02])  # two tests, not three
    assert np.isnan(adjust_pvalues([np.nan, np.nan])).all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        adjust_pvalues([0.5, 1.5])
    with pytest.raises(ValueError, match="unknown p-value adjustment"):
        adjust_pvalues([0.5], "bonferonni")


def _two_classes(rng, n=1000, signal_within=0.0):
    """Two promoter classes far apart in expression; predictions know the class, and within a class only
    ``signal_within`` of the measured deviation."""
    cls = (rng.uniform(size=n) < 0.4).astype(int)
    y = np.where(cls == 1, 12.0, 5.0) + rng.normal(0, 1.0, size=n)
    dev = y - np.where(cls == 1, 12.0, 5.0)
    p = np.where(cls == 1, 11.5, 5.5) + signal_within * dev + rng.normal(0, 1.0, size=n)
    return y, p, cls


def test_a_class_separating_model_is_flagged_with_and_without_groups():
    y, p, cls = _two_classes(np.random.default_rng(0))
    with_groups = multimodality(y, p, groups=np.where(cls == 1, "TATA", "TATA-less"))
    assert with_groups["pooled_r"] > 0.85 and abs(with_groups["within_r"]) < 0.1
    assert with_groups["flag"] and "within the 2 groups" in with_groups["message"]
    assert with_groups["between_fraction"] > 0.8 and with_groups["n_groups"] == 2
    modes = multimodality(y, p)
    assert modes["mixture"]["bimodal"] and modes["mixture"]["ashman_d"] > 2
    assert modes["flag"] and "bimodal" in modes["message"]
    assert modes["mixture"]["means"] == pytest.approx([5.0, 12.0], abs=0.2)


def test_a_model_that_ranks_within_the_modes_is_not_flagged_by_the_modes():
    # Same bimodal measurements, but predictions follow y within each class too: the within-mode r is
    # what the narrower range alone leaves of the pooled r, so modes found in y raise no flag.
    y, p, cls = _two_classes(np.random.default_rng(1), signal_within=1.0)
    m = multimodality(y, p)
    assert m["mixture"]["bimodal"] and not m["flag"] and m["message"] is None
    assert m["mean_group_r"] == pytest.approx(m["expected_within_r"], abs=0.05)
    # Known classes are not selected on y: there the gap itself is reported (pooled 0.95, within 1/√2).
    known = multimodality(y, p, groups=cls)
    assert known["within_r"] == pytest.approx(1 / math.sqrt(2), abs=0.05)
    assert known["pooled_r"] - known["within_r"] > 0.2 and known["flag"]


def test_a_unimodal_set_is_not_flagged():
    rng = np.random.default_rng(3)
    y = rng.normal(9, 3, size=2000)
    p = y + rng.normal(0, 1.5, size=2000)
    m = multimodality(y, p)
    assert not m["mixture"]["bimodal"] and not m["flag"] and m["within_r"] is None
    random_groups = multimodality(y, p, groups=rng.integers(0, 50, size=2000))
    assert random_groups["within_r"] == pytest.approx(random_groups["pooled_r"], abs=0.02)
    assert not random_groups["flag"]
    singletons = multimodality(y, p, groups=np.arange(2000))
    assert math.isnan(singletons["within_r"]) and not singletons["flag"]


def test_mixture_of_skewed_or_constant_values_is_not_bimodal():
    rng = np.random.default_rng(5)
    assert not two_component_mixture(rng.lognormal(0, 0.5, size=3000))["bimodal"]
    flat = two_component_mixture(np.full(50, 3.0))
    assert not flat["bimodal"] and flat["ashman_d"] is None
