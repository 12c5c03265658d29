"""Conformal intervals, ensembles and uncertainty-aware design, checked against analytic answers.

* A model with known Gaussian error: the calibrated half-width matches σ·z and the coverage on fresh
  data lies within binomial bounds at several levels.
* Exchangeable splits: with n continuous scores the expected coverage is exactly ⌈(n+1)ℓ⌉/(n+1).
* Ensembles of identical members have zero spread; an ensemble predicts its members' mean.
* Held-out halves of simulated data (the simulator's noise-free truth as the model) and of the real
  DeepATT predictions (the published ones, which the imported model reproduces within 2.4e-6) cover
  within binomial error at 0.8 and 0.9.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from crmnet.cli import main
from crmnet.design.oracle import ModelPredictor, Objective, Penalty, encode_sequences
from crmnet.errors import InputError
from crmnet.evaluation.conformal import Calibration, conformal_quantile, fit_calibration, interval_table
from crmnet.models.checkpoint import load_checkpoint, save_checkpoint
from crmnet.models.ensemble import Ensemble
from crmnet.models.registry import build_model
from design_toys import LinearToy, constructs

pytestmark = pytest.mark.usefixtures("one_thread")
LEVELS = (0.5, 0.8, 0.9, 0.95)


def binomial_bound(level: float, *ns: int, k: float = 4.0) -> float:
    """k standard deviations of a coverage: calibration and test sampling together."""
    return k * math.sqrt(level * (1 - level) * sum(1 / n for n in ns))


# --- the conformal quantile and known errors -----------------------------------------------------------


def test_conformal_quantile_is_the_finite_sample_order_statistic():
    scores = np.arange(1.0, 10.0)[::-1]  # 9 scores, unsorted
    assert conformal_quantile(scores, 0.5) == 5.0  # ⌈10 · 0.5⌉ = 5th smallest
    assert conformal_quantile(scores, 0.9) == 9.0  # ⌈9.0⌉ = 9 (not 10 from float rounding)
    assert conformal_quantile(scores, 0.95) == math.inf  # ⌈9.5⌉ = 10 > n


def test_gaussian_error_width_and_coverage_match_the_analytic_answer():
    from scipy.stats import norm

    rng = np.random.default_rng(1)
    sigma, n_cal, n_test = 0.7, 4000, 20000
    f_cal, f_test = rng.normal(8, 3, n_cal), rng.normal(8, 3, n_test)
    cal = fit_calibration(f_cal + rng.normal(0, sigma, n_cal), f_cal)
    assert cal.method == "absolute" and cal.n == n_cal
    table = interval_table(f_test + rng.normal(0, sigma, n_test), f_test, None, cal, LEVELS)
    for level in LEVELS:
        half = table[str(level)]["mean_width"] / 2
        assert half == pytest.approx(sigma * norm.ppf((1 + level) / 2), rel=0.05)
        assert abs(table[str(level)]["coverage"] - level) < binomial_bound(level, n_cal, n_test)


def test_exchangeable_splits_cover_exactly_k_over_n_plus_one():
    """Expected coverage of split conformal with n continuous scores is ⌈(n+1)ℓ⌉/(n+1), whatever the law."""
    rng = np.random.default_rng(2)
    n, repeats, per = 19, 4000, 5
    for level in (0.8, 0.9):
        k = math.ceil((n + 1) * level)
        hits = []
        for _ in range(repeats):
            errors = rng.standard_t(3, n + per)  # heavy tails: the guarantee needs only exchangeability
            q = conformal_quantile(np.abs(errors[:n]), level)
            hits.append(np.mean(np.abs(errors[n:]) <= q))
        sd = math.sqrt(level * (1 - level) / (repeats * per)) * 3  # splits are correlated within a repeat
        assert abs(np.mean(hits) - k / (n + 1)) < 4 * sd


def test_normalised_score_is_chosen_only_where_it_narrows_intervals():
    rng = np.random.default_rng(3)
    n = 4000
    f = rng.normal(8, 3, n)
    sigma = np.exp(rng.normal(-0.5, 0.6, n))  # heteroscedastic error, known to the "ensemble"
    y = f + rng.normal(0, 1, n) * sigma
    informative = fit_calibration(y[:2000], f[:2000], sigma[:2000])
    assert informative.method == "normalized"
    sel = informative.selection
    assert all(sel["normalized"][k]["mean_width"] < sel["absolute"][k]["mean_width"] for k in ("0.8", "0.9"))
    table = interval_table(y[2000:], f[2000:], sigma[2000:], informative, (0.8, 0.9))
    for level in (0.8, 0.9):
        assert abs(table[str(level)]["coverage"] - level) < binomial_bound(level, 2000, 2000)
    noise = rng.permutation(sigma)  # a spread that says nothing about the error
    assert fit_calibration(y[:2000], f[:2000], noise[:2000]).method == "absolute"
    assert fit_calibration(y, f, np.zeros(n)).method == "absolute"  # identical members


def test_calibration_round_trips_and_refuses_bad_levels():
    cal = Calibration(method="absolute", scores=(0.1, 0.2, 0.3), source="x.csv", sha256="ab")
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(InputError, match="strictly between 0 and 1"):
            cal.interval(np.zeros(2), bad)


# --- held-out halves: simulated and real data ----------------------------------------------------------


def held_out_coverage(y, pred, seed: int = 0) -> dict:
    order = np.random.default_rng(seed).permutation(len(y))
    fit, held = order[: len(y) // 2], order[len(y) // 2 :]
    cal = fit_calibration(y[fit], pred[fit])
    return {level: interval_table(y[held], pred[held], None, cal, (level,))[str(level)]["coverage"]
            for level in (0.8, 0.9)}


def test_held_out_half_covers_on_simulated_data():
    from crmnet.data.simulate import simulate

    sim = simulate(1200, seed=4)
    for level, got in held_out_coverage(sim.expression.astype(float), sim.noise_free.astype(float)).items():
        assert abs(got - level) < binomial_bound(level, 600, 600)


def test_held_out_half_covers_on_real_deepatt_predictions(vaishnav_dir):
    path = vaishnav_dir / "peer_predictions" / "Random_complex_DeepAtt_model.csv"
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    y = np.array([float(r["Measured Expression"]) for r in rows])
    pred = np.array([float(r["Predicted Expression"]) for r in rows])
    for seed in range(3):
        for level, got in held_out_coverage(y, pred, seed).items():
            assert abs(got - level) < binomial_bound(level, len(y) // 2, len(y) - len(y) // 2)


# --- ensembles -----------------------------------------------------------------------------------------


def test_identical_members_give_zero_spread_and_the_members_prediction():
    from crmnet.evaluation.calibrate import predict_spread
    from crmnet.evaluation.predict import predict

    seqs = constructs(16, seed=5)
    one = LinearToy(seed=1)
    pred, spread = predict_spread(Ensemble([one, LinearToy(seed=1), LinearToy(seed=1)]), seqs)
    assert np.all(spread == 0)
    np.testing.assert_allclose(pred, predict(one, seqs), rtol=1e-6, atol=1e-5)
    members = [LinearToy(seed=s) for s in (1, 2, 3)]
    pred, spread = predict_spread(Ensemble(members), seqs)
    each = np.stack([predict(m, seqs) for m in members], axis=1)
    np.testing.assert_allclose(pred, each.mean(1), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(spread, each.std(1), rtol=1e-4, atol=1e-4)
    assert (spread > 0).all()


def test_members_must_share_an_encoding():
    from crmnet.data.encoding import VAISHNAV

    with pytest.raises(ValueError, match="share one encoding"):
        Ensemble([LinearToy(seed=1), LinearToy(seed=2, encoding=VAISHNAV)])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """Two seeds of crmnet-tiny as checkpoints, and a small labelled file (their own predictions + noise)."""
    from crmnet.evaluation.predict import predict

    out = tmp_path_factory.mktemp("tiny")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model("crmnet-tiny").eval()
        save_checkpoint(out / f"m{seed}.pt", model)
        paths.append(out / f"m{seed}.pt")
    seqs = constructs(80, seed=6)
    base = predict(load_checkpoint(paths[0]), seqs)
    y = base + np.random.default_rng(7).normal(0, 0.5, len(seqs))
    labelled = out / "labelled.csv"
    labelled.write_text("sequence,Measured Expression\n" + "".join(f"{s},{v:.6f}\n" for s, v in zip(seqs, y)))
    fasta = out / "seqs.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs[:10])))
    return {"paths": paths, "labelled": labelled, "fasta": fasta, "out": out}


def test_cli_ensemble_calibrate_and_predict_interval(tiny, tmp_path, capsys):
    a, b = (str(p) for p in tiny["paths"])
    ens = tmp_path / "e.pt"
    assert main(["ensemble", a, b, "--out", str(ens)]) == 0
    model = load_checkpoint(ens)
    assert isinstance(model, Ensemble) and len(model.members) == 2
    cal_path = tmp_path / "cal.pt"
    assert main(["calibrate", "--checkpoint", str(ens), "--data", str(tiny["labelled"]), "--out", str(cal_path),
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "calibrated expression on 80 sequences" in err and "why:" in err
    cal = load_checkpoint(cal_path).checkpoint_meta["extra"]["calibration"]
    assert cal["members"] == 2 and len(cal["scores"]) == 80 and len(cal["sha256"]) == 64
    out = tmp_path / "p.tsv"
    assert main(["predict", str(tiny["fasta"]), "--checkpoint", str(cal_path), "--interval", "0.8", "--out",
                 str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(out.open(), delimiter="\t"))
    assert list(rows[0]) == ["id", "sequence", "prediction", "spread", "lower", "upper"]
    for r in rows:
        assert float(r["lower"]) < float(r["prediction"]) < float(r["upper"]) and float(r["spread"]) > 0
    wider = tmp_path / "w.tsv"
    assert main(["predict", str(tiny["fasta"]), "--checkpoint", str(cal_path), "--interval", "0.95", "--out",
                 str(wider), "--quiet"]) == 0
    rows95 = list(csv.DictReader(wider.open(), delimiter="\t"))
    assert all(float(w["upper"]) - float(w["lower"]) >= float(r["upper"]) - float(r["lower"])
               for r, w in zip(rows, rows95))


@pytest.mark.parametrize("argv, match", [
    (["--interval", "0.9"], "has no calibration.*crmnet calibrate --checkpoint"),
    (["--interval", "1.0"], "strictly between 0 and 1"),
    (["--checkpoint", "{b}", "--interval", "0.9"], "an ensemble of 2 checkpoints has none"),
])
def test_cli_interval_errors_are_one_line(tiny, tmp_path, capsys, argv, match):
    import re

    a, b = (str(p) for p in tiny["paths"])
    argv = [x.replace("{b}", b) for x in argv]
    assert main(["predict", str(tiny["fasta"]), "--checkpoint", a, *argv, "--out", str(tmp_path / "x.tsv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.search(match, err)
    assert not (tmp_path / "x.tsv").exists()


def test_evaluate_reports_coverage_and_whether_the_set_is_the_calibration_set(tiny, tmp_path):
    a = str(tiny["paths"][0])
    cal_path = tmp_path / "cal.pt"
    assert main(["calibrate", "--checkpoint", a, "--data", str(tiny["labelled"]), "--out", str(cal_path),
                 "--quiet"]) == 0
    other = tmp_path / "other.csv"
    lines = tiny["labelled"].read_text().splitlines()
    other.write_text("\n".join(lines[:41]) + "\n")
    for test, says in ((tiny["labelled"], "calibration set itself"), (other, "not the calibration set")):
        out = tmp_path / f"ev_{Path(test).stem}"
        assert main(["evaluate", "--checkpoint", str(cal_path), "--test", str(test), "--out", str(out),
                     "--bootstrap", "0", "--quiet"]) == 0
        m = next(iter(json.loads((out / "metrics.json").read_text()).values()))
        assert says in m["calibration_note"]
        assert set(m["intervals"]) == {str(v) for v in LEVELS}
    in_sample = next(iter(json.loads((tmp_path / "ev_labelled" / "metrics.json").read_text()).values()))
    for level in LEVELS:  # in-sample: at least nominal by construction
        assert in_sample["intervals"][str(level)]["coverage"] >= level
    from crmnet.evaluation.report import _interval_blocks, load_inputs, render_markdown

    report = render_markdown(_interval_blocks(load_inputs([tmp_path / "ev_labelled"])))  # the report's section
    assert "Prediction intervals: empirical coverage vs nominal level" in report and "calibration set itself" in report


# --- design: variant intervals and penalised objectives ------------------------------------------------


def test_variant_intervals_from_pairs_and_from_the_union_bound(tiny, tmp_path, capsys):
    from crmnet.design.variants import variant_effects

    a = str(tiny["paths"][0])
    model = load_checkpoint(a)
    seqs = constructs(60, seed=8)
    ref, alt = seqs[:30], seqs[30:]
    delta = variant_effects(model, ref, alt).delta
    measured = delta + np.random.default_rng(9).normal(0, 0.3, 30)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("reference\tvariant\tmeasured\n" + "".join(
        f"{r}\t{v}\t{m:.6f}\n" for r, v, m in zip(ref, alt, measured)))
    expr = tmp_path / "expr.pt"
    assert main(["calibrate", "--checkpoint", a, "--data", str(tiny["labelled"]), "--out", str(expr), "--quiet"]) == 0
    both = tmp_path / "both.pt"
    assert main(["calibrate", "--checkpoint", str(expr), "--pairs", str(pairs), "--out", str(both)]) == 0
    extra = load_checkpoint(both).checkpoint_meta["extra"]
    assert set(extra) >= {"calibration", "delta_calibration"} and extra["delta_calibration"]["target"] == "delta"
    widths = {}
    for ckpt in (expr, both):
        out = tmp_path / f"v_{ckpt.stem}.tsv"
        capsys.readouterr()
        assert main(["variants", "--pairs", str(pairs), "--checkpoint", str(ckpt), "--out", str(out),
                     "--interval", "0.9", "--measured-column", "measured"]) == 0
        err = capsys.readouterr().err
        assert ("union bound" in err) == (ckpt == expr)
        rows = list(csv.DictReader(out.open(), delimiter="\t"))
        widths[ckpt.stem] = np.mean([float(r["delta_upper"]) - float(r["delta_lower"]) for r in rows])
        metrics = json.loads(out.with_name(out.stem + ".metrics.json").read_text())
        assert "0.9" in next(iter(metrics.values()))["intervals"]
    # the Δ calibration measures the pair noise (0.3); the union bound adds two expression errors (0.5 each)
    assert widths["both"] < widths["expr"]


def test_spread_penalty_subtracts_the_propagated_spread():
    seqs = constructs(12, seed=10)
    codes, lengths = encode_sequences(seqs)
    a = ModelPredictor(Ensemble([LinearToy(seed=1), LinearToy(seed=2)]), 64)
    b = ModelPredictor(Ensemble([LinearToy(seed=3), LinearToy(seed=4), LinearToy(seed=5)]), 64)
    _, sa, _ = a.with_uncertainty(codes, lengths)
    _, sb, _ = b.with_uncertainty(codes, lengths)
    raw = Objective({"A": a, "B": b}, "2*A - B")(codes, lengths)
    pen = Objective({"A": a, "B": b}, "2*A - B", penalty=Penalty("spread", 0.5))(codes, lengths)
    np.testing.assert_allclose(pen, raw - 0.5 * np.sqrt((2 * sa) ** 2 + sb ** 2), rtol=1e-5, atol=1e-4)
    up = Objective({"A": a, "B": b}, "2*A - B", penalty=Penalty("spread", 0.5, direction="min"))(codes, lengths)
    np.testing.assert_allclose(up - raw, raw - pen, rtol=1e-5, atol=1e-4)
    same = ModelPredictor(Ensemble([LinearToy(seed=1), LinearToy(seed=1)]), 64)
    np.testing.assert_allclose(Objective({"A": same}, penalty=Penalty("spread", 3.0))(codes, lengths),
                               Objective({"A": same})(codes, lengths))


def test_bound_penalty_is_interval_arithmetic_over_calibrated_intervals(tiny):
    from crmnet.evaluation.calibrate import calibrate_checkpoint

    codes, lengths = encode_sequences(constructs(8, seed=11))
    predictors = {}
    for name, path in zip("AB", tiny["paths"]):
        out = tiny["out"] / f"cal_{name}.pt"
        if not out.exists():
            calibrate_checkpoint(load_checkpoint(path), str(tiny["labelled"]), out)
        predictors[name] = ModelPredictor(load_checkpoint(out), 64)
    bounds = {k: p.with_uncertainty(codes, lengths, 0.8)[2] for k, p in predictors.items()}
    low = Objective(predictors, "A - B", penalty=Penalty("bound", level=0.8))(codes, lengths)
    np.testing.assert_allclose(low, bounds["A"][0] - bounds["B"][1], rtol=1e-6)
    high = Objective(predictors, "A - B", penalty=Penalty("bound", level=0.8, direction="min"))(codes, lengths)
    np.testing.assert_allclose(high, bounds["A"][1] - bounds["B"][0], rtol=1e-6)
    with pytest.raises(InputError, match="no calibration"):
        Objective({"A": ModelPredictor(load_checkpoint(tiny["paths"][0]), 64)},
                  penalty=Penalty("bound"))(codes, lengths)


# --- the web page ----------------------------------------------------------------------------------------


def test_web_predict_page_gives_intervals_for_calibrated_models(tiny, tmp_path):
    pytest.importorskip("starlette")
    pytest.importorskip("multipart")
    import re
    import time
    import warnings

    from crmnet.evaluation.calibrate import calibrate_checkpoint, predict_interval
    from crmnet.serve.app import create_app
    from crmnet.serve.models import load_models as serve_models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    cal_path = tmp_path / "calibrated.pt"
    calibrate_checkpoint(load_checkpoint(tiny["paths"][0]), str(tiny["labelled"]), cal_path)
    models = serve_models([cal_path, tiny["paths"][1]], models_dir=tmp_path, data_dir=tmp_path / "none")
    seqs = constructs(3, seed=12)
    with TestClient(create_app(models)) as client:
        r = client.post("/predict", data={"sequences": "\n".join(seqs), "model": "calibrated", "interval": "0.8"},
                        follow_redirects=False)
        assert r.status_code == 303
        for _ in range(600):
            status = client.get("/api" + r.headers["location"]).json()
            if status["state"] != "queued" and status["state"] != "running":
                break
            time.sleep(0.05)
        assert status["state"] == "done", status
        rows = [line.split("\t") for line in client.get(r.headers["location"] + "/files/predictions.tsv").text.splitlines()]
        assert rows[0] == ["id", "sequence", "prediction", "lower", "upper"]
        want = predict_interval(load_checkpoint(cal_path), seqs, 0.8)
        np.testing.assert_allclose([float(x[3]) for x in rows[1:]], want["lower"], rtol=1e-5, atol=1e-5)
        r = client.post("/predict", data={"sequences": seqs[0], "model": "m1", "interval": "0.8"})
        assert re.search(r"has no calibration", r.text)
        r = client.post("/predict", data={"sequences": seqs[0], "model": "calibrated", "interval": "2"})
        assert "strictly between 0 and 1" in r.text


# --- the real DeepATT through the command line ------------------------------------------------------------


def test_cli_calibrate_and_predict_interval_with_the_imported_deepatt(shared, tmp_path, capsys):
    """The released DeepATT: calibrated on 400 random-promoter test rows, intervals for 50 native ones."""
    h5 = shared / "models" / "vaishnav2022" / "deepatt_complex" / "DeepAtt_model.h5"
    if not h5.is_file():
        pytest.skip(f"{h5} not found")
    test = shared / "data" / "vaishnav2022" / "test"
    ckpt, cal_path = tmp_path / "deepatt.pt", tmp_path / "deepatt_cal.pt"
    assert main(["import", str(h5), "--out", str(ckpt)]) == 0
    lines = (test / "Random_complex_raw.csv").read_text().splitlines()
    subset = tmp_path / "random400.csv"
    subset.write_text("\n".join(lines[:401]) + "\n")
    assert main(["calibrate", "--checkpoint", str(ckpt), "--data", str(subset), "--out", str(cal_path),
                 "--medium", "complex", "--quiet"]) == 0
    assert "method absolute" in capsys.readouterr().err  # one model: no spread to normalise by
    native = tmp_path / "native50.csv"
    native.write_text("\n".join((test / "Native_complex.csv").read_text().splitlines()[:51]) + "\n")
    out = tmp_path / "p.tsv"
    assert main(["predict", str(native), "--checkpoint", str(cal_path), "--interval", "0.9", "--out", str(out),
                 "--quiet"]) == 0
    rows = list(csv.DictReader(out.open(), delimiter="\t"))
    published = {r["sequence"]: float(r["Predicted Expression"])
                 for r in csv.DictReader((shared / "data" / "vaishnav2022" / "peer_predictions" /
                                          "Native_complex_DeepAtt_model.csv").open())}
    widths = {round(float(r["upper"]) - float(r["lower"]), 4) for r in rows}
    assert len(rows) == 50 and len(widths) == 1  # absolute residuals: one width for every sequence
    for r in rows:
        assert float(r["prediction"]) == pytest.approx(published[r["sequence"]], abs=1e-4)
    cal = load_checkpoint(cal_path).checkpoint_meta["extra"]["calibration"]
    assert len(cal["scores"]) == 400
    assert cal["medium"] == "complex" and cal["source"] == "random400.csv"
