"""The calibrated simulator's declared fitting half (crmnet.data.calibration.fit_half) and its provenance."""

from __future__ import annotations

import numpy as np

from crmnet.data import calibration as cal
from crmnet.data.calibrated import landscape_provenance


def test_fit_half_depends_on_the_sequence_alone(rng):
    codes = rng.integers(0, 4, (2000, 80)).astype(np.uint8)
    half = cal.fit_half(codes)
    assert 0.45 < half.mean() < 0.55  # a fair hash: 1,000 ± 22 expected
    assert (cal.fit_half(codes[::-1]) == half[::-1]).all()  # row order does not matter
    padded = np.concatenate([codes, np.full((2000, 5), 4, np.uint8)], axis=1)
    assert (cal.fit_half(padded) == half).all()  # N padding (another file's width) does not matter
    twice = cal.fit_half(np.concatenate([codes[:10], codes[:10]]))
    assert (twice[:10] == twice[10:]).all()


def test_shipped_landscape_was_fitted_on_the_fitting_half_only(vaishnav_dir):
    rows = [line.split("\t") for line in (vaishnav_dir / "test" / "HQ_testdata_complex.txt").read_text().splitlines()
            if line.strip()]
    codes = cal.variable_regions([r[0] for r in rows])
    half = cal.fit_half(codes)
    provenance = landscape_provenance()
    assert "fitting half" in provenance["source"]
    assert provenance["n"] == int(half.sum()) and 0.45 < half.mean() < 0.55
