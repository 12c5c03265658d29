"""Calibrated simulator and teacher mode: statistics against the real targets, noise regimes, files, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from crmnet.cli import main
from crmnet.data import calibration as cal
from crmnet.data.calibrated import CalibratedConfig, Landscape, simulate_calibrated
from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK
from crmnet.data.simulate import simulate, truth_path

# Measured on the real high-quality complex random set (HQ_testdata_complex.txt, 3,331 variable regions)
# with crmnet.data.calibration; benchmarks/calibrate_simulator.py prints them.
REAL = {"composition": (0.2131, 0.2017, 0.2988, 0.2864), "gc_sd": 0.081, "rho_gc": 0.59, "rho_polyat": -0.02,
        "quantiles": {"q05": 2.70, "q50": 10.60, "q95": 15.07}}


@pytest.fixture(scope="module")
def test_labels():
    return simulate_calibrated(4000, seed=3, config=CalibratedConfig(labels="test"))


@pytest.fixture(scope="module")
def train_labels():
    return simulate_calibrated(4000, seed=3)


def test_statistics_match_the_real_random_set(test_labels):
    v = cal.variable_regions(test_labels.sequences)
    assert v.shape == (4000, 80)
    assert np.allclose(cal.composition(v), REAL["composition"], atol=0.01)
    assert abs(cal.gc_fraction(v).std() - REAL["gc_sd"]) < 0.008  # over-dispersed like the real set, not binomial
    y = test_labels.expression
    assert abs(stats.spearmanr(cal.gc_fraction(v), y)[0] - REAL["rho_gc"]) < 0.07
    assert abs(stats.spearmanr(cal.polyat_windows(v), y)[0] - REAL["rho_polyat"]) < 0.07
    _names, log_odds, thresholds = cal.planted_motifs()
    counts = cal.motif_site_counts(v, log_odds, thresholds)
    assert counts.mean(axis=0).max() < 0.06  # motifs as rare as in real random promoters
    assert cal.r_squared(counts.astype(float), y) < 0.06
    for q, target in REAL["quantiles"].items():
        assert abs(np.quantile(y, float(q[1:]) / 100) - target) < 0.8, q
    assert np.mean((y <= 0) | (y >= 17)) < 0.002


def test_kmer_ridge_learns_part_not_all(test_labels):
    """6-mer ridge (CV) beats the GC + poly-dA:dT model but stays far below the noise ceiling, as on real data."""
    v = cal.variable_regions(test_labels.sequences[:1500])
    y = test_labels.expression[:1500].astype(float)
    r_kmer = cal.cv_pearson(cal.kmer_counts(v), y, folds=3)
    r_comp = cal.cv_pearson(np.column_stack([cal.gc_fraction(v), cal.polyat_windows(v)]), y, folds=3, ridge=False)
    assert 0.5 < r_comp < r_kmer < 0.85


def test_label_noise_regimes(train_labels, test_labels):
    assert np.array_equal(train_labels.codes, test_labels.codes)
    assert np.array_equal(train_labels.noise_free, test_labels.noise_free)
    nf = train_labels.noise_free
    r_train = np.corrcoef(nf, train_labels.expression)[0, 1]
    r_test = np.corrcoef(nf, test_labels.expression)[0, 1]
    assert r_test > 0.98 and r_train < r_test - 0.03
    reads = np.array(train_labels.truth["reads"])
    integer = train_labels.expression == np.round(train_labels.expression)
    assert integer[reads == 1].all() and 0.1 < integer.mean() < 0.6
    assert np.mean((train_labels.expression <= 0) | (train_labels.expression >= 17)) < 0.01
    assert test_labels.truth["reads"] is None and (test_labels.expression != np.round(test_labels.expression)).all()


def test_deterministic_and_sequence_function():
    a = simulate_calibrated(300, seed=5)
    b = simulate_calibrated(300, seed=5)
    c = simulate_calibrated(300, seed=6)
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.expression, b.expression)
    assert not np.array_equal(a.codes, c.codes)
    # The landscape does not depend on the data seed: one sequence, one noise-free value.
    land = Landscape(CalibratedConfig())
    var = np.concatenate([a.codes[:50], c.codes[:50]])[:, len(LEFT_FLANK) : -len(RIGHT_FLANK)]
    again = land.expression(land.activity(var)[0]).astype(np.float32)
    assert np.allclose(again, np.concatenate([a.noise_free[:50], c.noise_free[:50]]), atol=1e-5)
    assert all(s.startswith(LEFT_FLANK) and s.endswith(RIGHT_FLANK) and len(s) == 110 for s in a.sequences)
    with pytest.raises(ValueError, match="labels"):
        CalibratedConfig(labels="hq")


def test_fit_ridge_is_ridge_with_loo_alpha():
    rng = np.random.default_rng(0)
    x = rng.poisson(1.0, size=(60, 25)).astype(float)
    y = x @ rng.normal(size=25) + rng.normal(size=60)
    w, b, alpha = cal.fit_ridge(x, y, alphas=(0.1, 3.0, 100.0))
    xc, yc = x - x.mean(0), y - y.mean()
    assert np.allclose(w, np.linalg.solve(xc.T @ xc + alpha * np.eye(25), xc.T @ yc), atol=1e-8)
    assert np.isclose(b, y.mean() - x.mean(0) @ w)

    def loo(a):
        err = 0.0
        for i in range(60):
            keep = np.arange(60) != i
            xm, ym = x[keep].mean(0), y[keep].mean()
            wi = np.linalg.solve((x[keep] - xm).T @ (x[keep] - xm) + a * np.eye(25), (x[keep] - xm).T @ (y[keep] - ym))
            err += (y[i] - ym - (x[i] - xm) @ wi) ** 2
        return err

    assert alpha == min((0.1, 3.0, 100.0), key=loo)


def test_motif_counts_agree_with_the_planted_simulator():
    data = simulate(400, seed=2)
    _names, log_odds, thresholds = cal.planted_motifs()
    counts = cal.motif_site_counts(cal.variable_regions(data.sequences), log_odds, thresholds)
    sites = data.truth["scored_sites"]  # occupancy ≥ 0.5, i.e. score ≥ threshold
    expected = np.zeros_like(counts)
    np.add.at(expected, (np.array(sites["seq"]), np.array(sites["motif"])), 1)
    assert np.array_equal(counts, expected) and counts.sum() > 100


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    from crmnet.models.checkpoint import save_checkpoint
    from crmnet.models.registry import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "tiny.pt"
    save_checkpoint(path, build_model("crmnet-tiny"))
    return path


def test_teacher_cli(tmp_path, teacher_ckpt, capsys):
    from crmnet.evaluation.predict import predict
    from crmnet.interpret.attribution import AttributionConfig, Attributions, attribute
    from crmnet.models.checkpoint import load_checkpoint

    out = tmp_path / "t.txt"
    argv = ["simulate", "--teacher", str(teacher_ckpt), "--n", "40", "--seed", "1", "--out", str(out),
            "--truth-ism", "3", "--labels", "test"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "teacher ISM of the first 3 sequences" in captured.out
    assert "not on the 0–17 expression scale" in captured.err  # an untrained teacher predicts ≈ 0
    truth = json.loads(truth_path(out).read_text())
    assert truth["format"] == "crmnet-teacher-truth" and truth["teacher"]["model"] == "crmnet-tiny"
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    sequences = [r[0] for r in rows]
    model = load_checkpoint(teacher_ckpt)
    assert np.allclose(truth["noise_free"], predict(model, sequences), atol=1e-4)
    labels = np.array([float(r[1]) for r in rows])
    assert 0 < np.abs(labels - np.array(truth["noise_free"])).max() < 17 * 5 * truth["config"]["test_noise_sd"] / 4
    ism = Attributions.load(out.with_name("t.txt.ism.npz"))
    direct = attribute(model, sequences[:3], AttributionConfig(method="ism"))
    assert ism.hypothetical.shape == (3, 4, 110) and np.allclose(ism.hypothetical, direct.hypothetical, atol=1e-6)
    assert not ism.hypothetical[:, :, : len(LEFT_FLANK)].any() and ism.hypothetical[:, :, 20:90].any()
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err
    assert main(argv[:-2] + ["--overwrite"]) == 0  # training labels this time
    assert json.loads(truth_path(out).read_text())["reads"] is not None


def test_cli_presets_and_errors(tmp_path, teacher_ckpt, capsys):
    out = tmp_path / "c.txt"
    assert main(["simulate", "--preset", "calibrated", "--n", "200", "--out", str(out)]) == 0
    truth = json.loads(truth_path(out).read_text())
    assert truth["format"] == "crmnet-calibrated-truth" and truth["config"]["labels"] == "train"
    assert "integer-valued labels" in capsys.readouterr().out
    bad = [
        (["--preset", "calibrated", "--noise-free-r", "0.9"], "--noise-free-r: applies to the planted preset"),
        (["--labels", "test"], "--labels: applies to --preset calibrated"),
        (["--teacher", str(teacher_ckpt), "--preset", "planted"], "--preset: planted does not apply"),
        (["--teacher", str(teacher_ckpt), "--truth-ism", "-1"], "--truth-ism"),
        (["--preset", "calibrated", "--labels", "test", "--config", str(tmp_path / "none.json")], "cannot read"),
    ]
    for extra, message in bad:
        assert main(["simulate", "--n", "10", "--out", str(tmp_path / "x.txt"), *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.txt").exists()
