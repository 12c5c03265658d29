"""Paired comparisons in the corner cases: identical, nearly identical, perfect and constant predictors.

Steiger's Z, the cluster-robust Wald test and the paired bootstrap give Z = 0, p = 1 for identical
predictions, finite values for predictions equal up to rounding, and NaN (never an infinity) where a test
is undefined.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from crmnet.evaluation.metrics import adjust_pvalues, compare_models, steiger_z


def _textbook(r_ya, r_yb, r_ab, n):
    rbar = (r_ya + r_yb) / 2
    psi = r_ab * (1 - 2 * rbar**2) - 0.5 * rbar**2 * (1 - 2 * rbar**2 - r_ab**2)
    c = psi / (1 - rbar**2) ** 2
    return (math.atanh(r_ya) - math.atanh(r_yb)) * math.sqrt(n - 3) / math.sqrt(2 - 2 * c)


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    y = rng.normal(size=600)
    a = y + rng.normal(scale=0.6, size=600)
    return rng, y, a


def _numbers(c: dict) -> list[float]:
    return [v for v in c.values() if isinstance(v, float)] + [x for k in ("delta_r_ci", "delta_mse_ci")
                                                              for x in c[k]]


@pytest.mark.parametrize("r", [(0.9, 0.85, 0.7, 200), (0.3, 0.5, 0.2, 50), (-0.4, 0.1, -0.3, 1000),
                               (0.95, 0.9499, 0.999, 3000)])
def test_steiger_is_the_textbook_formula(r):
    assert steiger_z(*r)[0] == pytest.approx(_textbook(*r), rel=1e-9)


def test_identical_predictions_are_not_different(data):
    _, y, a = data
    for groups in (None, np.repeat(np.arange(60), 10)):
        c = compare_models(y, a, a.copy(), n_boot=200, groups=groups)
        assert (c["steiger_z"], c["steiger_p"], c["bootstrap_p"], c["delta_r"]) == (0.0, 1.0, 1.0, 0.0)
        assert c["p"] == 1.0
        if groups is not None:
            assert (c["cluster_z"], c["cluster_p"]) == (0.0, 1.0)
    # the same predictions rescaled (a model's output in other units) correlate identically
    c = compare_models(y, a, 3.0 * a + 2.0, n_boot=200)
    assert abs(c["steiger_z"]) < 1e-6 and c["steiger_p"] > 0.999


def test_predictions_equal_up_to_rounding_give_a_finite_unremarkable_z(data):
    # like crmnet's own DeepATT predictions against the published ones (within 2.7e-6)
    rng, y, a = data
    b = np.round(a + rng.uniform(-2.5e-6, 2.5e-6, len(a)), 6)
    c = compare_models(y, a, b, n_boot=200)
    assert math.isfinite(c["steiger_z"]) and abs(c["steiger_z"]) < 4 and c["steiger_p"] > 1e-4
    assert all(not math.isinf(v) for v in _numbers(c))
    # a sure difference still is one: b carries a real extra error of the same tiny size as y
    b2 = a - 1e-4 * y
    assert compare_models(y, a, b2, n_boot=200)["steiger_p"] < 1e-10


def test_perfect_correlation_has_no_infinities(data):
    _, y, a = data
    c = compare_models(y, y.copy(), a, n_boot=200, groups=np.repeat(np.arange(60), 10))
    assert math.isnan(c["steiger_z"]) and math.isnan(c["cluster_z"])
    assert all(not math.isinf(v) for v in _numbers(c))
    c = compare_models(y, y.copy(), a, n_boot=200)
    assert c["p_method"] == "bootstrap" and c["p"] == c["bootstrap_p"] < 0.05
    both = compare_models(y, y.copy(), 2 * y + 1, n_boot=200)
    assert (both["steiger_z"], both["steiger_p"], both["p"]) == (0.0, 1.0, 1.0)


def test_constant_predictions_are_undefined_not_infinite(data):
    _, y, a = data
    c = compare_models(y, a, np.full(len(y), 4.0), n_boot=200)
    assert math.isnan(c["r_b"]) and math.isnan(c["steiger_z"]) and math.isnan(c["p"])
    assert all(not math.isinf(v) for v in _numbers(c))
    q = adjust_pvalues([c["p"], 0.01, 0.04])
    assert math.isnan(q[0]) and np.isfinite(q[1:]).all()
    assert steiger_z(float("nan"), 0.5, 0.2, 100) != steiger_z(float("nan"), 0.5, 0.2, 100)  # (nan, nan)
