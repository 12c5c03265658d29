"""Metrics: golden values on hand-made arrays, agreement with scipy, bootstrap and model comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st

from crmnet.evaluation.metrics import METRIC_KEYS, bootstrap_ci, compare_models, compute_metrics, steiger_z


def test_golden_values_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.0, 3.0, 2.0, 5.0])
    m = compute_metrics(y, p)
    assert tuple(m) == METRIC_KEYS
    # Centered: y -> (-1.5, -0.5, 0.5, 1.5), p -> (-1.75, 0.25, -0.75, 2.25);
    # cov sum 5.5, var sums 5 and 8.75 -> r = 5.5 / sqrt(43.75).
    r = 5.5 / math.sqrt(43.75)
    assert m["n"] == 4
    assert m["pearson_r"] == pytest.approx(r, abs=1e-15)
    assert m["pearson_r_squared"] == pytest.approx(r * r, abs=1e-15)
    # Residuals 0, -1, 1, -1: SS_res = 3, SS_tot = 5.
    assert m["mse"] == pytest.approx(0.75, abs=1e-15)
    assert m["mae"] == pytest.approx(0.75, abs=1e-15)
    assert m["r2"] == pytest.approx(1 - 3 / 5, abs=1e-15)
    # Ranks of p are 1, 3, 2, 4: d² sums to 2, rho = 1 - 6·2 / (4·15) = 0.8.
    assert m["spearman_r"] == pytest.approx(0.8, abs=1e-15)
    # t = r·sqrt(2 / (1 - r²)) with 2 degrees of freedom: p = 1 - |t| / sqrt(t² + 2).
    t = r * math.sqrt(2 / (1 - r * r))
    assert m["pearson_p"] == pytest.approx(1 - t / math.sqrt(t * t + 2), abs=1e-12)


def test_r2_differs_from_r_squared_for_a_biased_predictor():
    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    m = compute_metrics(y, y + 1.0)
    assert m["pearson_r"] == pytest.approx(1.0)
    assert m["pearson_r_squared"] == pytest.approx(1.0)
    assert m["r2"] == pytest.approx(1 - 5 / 10)
    assert m["pearson_p"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_scipy(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(8, 3, size=700)
    p = 0.8 * y + rng.normal(0, 2, size=700)
    p[::7] = np.round(p[::7])  # ties, as integer-valued measurements produce
    y[::5] = np.round(y[::5])
    m = compute_metrics(y, p)
    r, pr = st.pearsonr(y, p)
    assert m["pearson_r"] == pytest.approx(r, abs=1e-9)
    assert m["pearson_p"] == pytest.approx(pr, rel=1e-9, abs=1e-300)
    assert m["spearman_r"] == pytest.approx(st.spearmanr(y, p)[0], abs=1e-9)
    assert m["r2"] == pytest.approx(1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum(), abs=1e-9)
    assert m["mse"] == pytest.approx(np.mean((y - p) ** 2), abs=1e-9)
    assert m["mae"] == pytest.approx(np.mean(np.abs(y - p)), abs=1e-9)


def test_weak_correlation_pvalue_agrees_with_scipy():
    rng = np.random.default_rng(5)
    y, p = rng.normal(size=(2, 50))
    _, pr = st.pearsonr(y, p)
    m = compute_metrics(y, p)
    assert 0.01 < m["pearson_p"] < 1
    assert m["pearson_p"] == pytest.approx(pr, rel=1e-9)


def test_constant_prediction_gives_nan_correlation_not_an_error():
    m = compute_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert math.isnan(m["pearson_r"]) and math.isnan(m["spearman_r"]) and math.isnan(m["pearson_p"])
    assert m["mse"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "3 measured values but 2"),
        ([1.0, 2.0], [1.0, 2.0], "at least 3"),
        ([1.0, np.nan, 3.0], [1.0, 2.0, 3.0], "not finite"),
        ([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]], "1-D"),
    ],
)
def test_bad_input_is_rejected(y, p, match):
    with pytest.raises(ValueError, match=match):
        compute_metrics(y, p)


def test_bootstrap_is_seeded_and_covers_the_estimate():
    rng = np.random.default_rng(3)
    y = rng.normal(size=400)
    p = y + rng.normal(size=400)
    a = bootstrap_ci(y, p, n_boot=300, seed=7)
    b = bootstrap_ci(y, p, n_boot=300, seed=7)
    c = bootstrap_ci(y, p, n_boot=300, seed=8)
    assert a == b
    assert a["pearson_r"] != c["pearson_r"]
    m = compute_metrics(y, p)
    for key in ("pearson_r", "spearman_r", "r2", "pearson_r_squared", "mse", "mae"):
        lo, hi = a[key]
        assert lo < m[key] < hi, key
    # The r interval is close to Fisher's normal-theory interval for bivariate normal data.
    z, se = math.atanh(m["pearson_r"]), 1 / math.sqrt(400 - 3)
    assert a["pearson_r"][0] == pytest.approx(math.tanh(z - 1.96 * se), abs=0.02)
    assert a["pearson_r"][1] == pytest.approx(math.tanh(z + 1.96 * se), abs=0.02)
    assert (a["level"], a["n_boot"], a["seed"]) == (0.95, 300, 7)
    assert "resampled" not in a and "n_groups" not in a  # the row bootstrap's output is unchanged


def test_bootstrap_rejects_bad_settings():
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], n_boot=0)


def test_steiger_is_antisymmetric_and_zero_for_equal_correlations():
    z, p = steiger_z(0.9, 0.9, 0.8, 100)
    assert z == 0.0 and p == pytest.approx(1.0)
    z1, p1 = steiger_z(0.95, 0.9, 0.85, 500)
    z2, p2 = steiger_z(0.9, 0.95, 0.85, 500)
    assert z1 == pytest.approx(-z2) and p1 == pytest.approx(p2)
    # The more the predictions agree with each other, the more a given difference means.
    assert abs(steiger_z(0.95, 0.9, 0.95, 500)[0]) > abs(z1)
    # Independent predictors (r_ab = 0) with rbar = 0: the covariance term vanishes, Z = Δz·sqrt((n-3)/2).
    z0, _ = steiger_z(0.1, -0.1, 0.0, 203)
    assert z0 == pytest.approx(2 * math.atanh(0.1) * math.sqrt(200 / 2), rel=1e-12)


def test_identical_predictions_compare_as_equal():
    rng = np.random.default_rng(2)
    y = rng.normal(size=100)
    p = y + rng.normal(size=100)
    c = compare_models(y, p, p.copy(), n_boot=100)
    assert c["delta_r"] == 0.0 and c["steiger_z"] == 0.0 and c["steiger_p"] == 1.0
    assert c["bootstrap_p"] == 1.0 and c["delta_r_ci"] == [0.0, 0.0]


def _dependent_null_sample(rng, n):
    """Two predictors with the same true correlation with y and correlated with each other."""
    y = rng.normal(size=n)
    shared = rng.normal(size=n)
    a = y + shared + rng.normal(size=n)
    b = y + shared + rng.normal(size=n)
    return y, a, b


def test_steiger_holds_its_size_under_the_null():
    rng = np.random.default_rng(11)
    rejections = 0
    trials = 400
    for _ in range(trials):
        y, a, b = _dependent_null_sample(rng, 150)
        r = np.corrcoef([y, a, b])
        _, p = steiger_z(r[0, 1], r[0, 2], r[1, 2], 150)
        rejections += p < 0.05
    assert 0.02 <= rejections / trials <= 0.09


def test_compare_models_detects_a_real_difference_and_agrees_between_tests():
    rng = np.random.default_rng(4)
    y = rng.normal(size=2000)
    shared = rng.normal(size=2000)
    good = y + 0.3 * shared + 0.3 * rng.normal(size=2000)
    worse = y + 0.3 * shared + 0.6 * rng.normal(size=2000)
    c = compare_models(y, good, worse, n_boot=500, seed=0)
    assert c["delta_r"] == pytest.approx(c["r_a"] - c["r_b"]) and c["delta_r"] > 0
    assert c["r_a"] == pytest.approx(np.corrcoef(y, good)[0, 1], abs=1e-12)
    assert c["r_ab"] == pytest.approx(np.corrcoef(good, worse)[0, 1], abs=1e-12)
    assert c["delta_r_ci"][0] > 0
    assert c["bootstrap_p"] < 0.01 and c["steiger_p"] < 1e-6 and c["steiger_z"] > 0
    assert c["delta_mse"] < 0 and c["delta_mse_ci"][1] < 0
    # Without groups the comparison's p (the one adjusted for multiplicity) is Steiger's.
    assert (c["p"], c["p_method"]) == (c["steiger_p"], "steiger") and "cluster_p" not in c
    assert compare_models(y, good, worse, n_boot=500, seed=0) == c

    y, a, b = _dependent_null_sample(np.random.default_rng(9), 300)
    null = compare_models(y, a, b, n_boot=500, seed=0)
    assert null["delta_r_ci"][0] < 0 < null["delta_r_ci"][1]
    assert null["bootstrap_p"] > 0.05 and null["steiger_p"] > 0.05
    # Both tests estimate the same thing: their p-values are of the same size.
    assert abs(null["bootstrap_p"] - null["steiger_p"]) < 0.2


def test_compare_models_rejects_misaligned_predictions():
    with pytest.raises(ValueError, match="model b"):
        compare_models([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("center", [0.0, 9.0])
def test_streaming_metrics_agree_with_compute_metrics(center):
    import torch

    from crmnet.evaluation.metrics import StreamingMetrics

    rng = np.random.default_rng(3)
    y = rng.normal(9, 3, size=1001)
    p = 0.7 * y + rng.normal(3, 2, size=1001)
    stream = StreamingMetrics(center=center, ranks=True)
    for lo in range(0, len(y), 128):  # uneven last batch
        stream.update(torch.from_numpy(y[lo:lo + 128]).float(), torch.from_numpy(p[lo:lo + 128]).float(),
                      loss=torch.tensor(2.0))
    got = stream.compute()
    want = compute_metrics(y.astype(np.float32), p.astype(np.float32))
    assert set(got) == set(METRIC_KEYS) | {"loss"}
    for key in METRIC_KEYS:
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key
    assert got["loss"] == pytest.approx(2.0)
    without = StreamingMetrics()
    without.update(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 1.0, 1.0]))
    assert "spearman_r" not in without.compute() and math.isnan(without.compute()["pearson_r"])
    with pytest.raises(ValueError, match="at least 3"):
        StreamingMetrics().compute()


def test_streaming_metrics_keep_precision_far_from_zero():
    import torch

    from crmnet.evaluation.metrics import StreamingMetrics

    # Targets around 10^4 with unit spread: raw float64 sums of squares would lose ~8 digits.
    rng = np.random.default_rng(0)
    y = 1e4 + rng.normal(0, 1, 50_000)
    p = y + rng.normal(0, 0.5, 50_000)
    stream = StreamingMetrics(center=1e4)
    stream.update(torch.from_numpy(y), torch.from_numpy(p))
    assert stream.compute()["r2"] == pytest.approx(compute_metrics(y, p)["r2"], rel=1e-10)
