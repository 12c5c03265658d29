"""Ground-truth simulator: structure, an independent re-implementation of the model, noise, files, CLI."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from crmnet.cli import main
from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK
from crmnet.data.encoding import decode
from crmnet.data.jaspar import load_yeast_motifs
from crmnet.data.simulate import (
    SimulatorConfig,
    format_training_lines,
    simulate,
    truth_path,
    write_simulation,
)
from crmnet.errors import InputError, OutputExistsError


@pytest.fixture(scope="module")
def small():
    return simulate(1500, seed=7)


def _reference(codes: np.ndarray, config: SimulatorConfig):
    """Plain-loop re-implementation of the documented model: (noise-free expression, sites ≥ threshold)."""
    motifs = load_yeast_motifs(config.motifs, config.release)
    var = codes[:, len(LEFT_FLANK) : len(LEFT_FLANK) + 80]
    occ = np.zeros((len(codes), len(motifs)))
    sites = set()
    for k, m in enumerate(motifs):
        lo = m.log_odds()
        freqs = m.counts / m.counts.sum(0)
        threshold = (freqs * lo).sum() - config.site_margin
        w = m.width
        rc = lo[::-1, ::-1]
        for start in range(80 - w + 1):
            gain = config.position_gain_5p + (1 - config.position_gain_5p) * (start + (w - 1) / 2) / 79
            window = var[:, start : start + w]
            for strand, mat, g in ((1, lo, gain), (-1, rc, gain * config.reverse_gain[k])):
                score = mat[window, np.arange(w)].sum(axis=1)
                p = 1 / (1 + 2.0 ** -(score - threshold))
                occ[:, k] += g * p
                for i in np.flatnonzero(p >= config.report_min_occupancy):
                    sites.add((int(i), k, start + len(LEFT_FLANK), strand, round(float(score[i]), 2)))
    gc = np.isin(var, [1, 2]).mean(axis=1)
    tracts = sum(
        np.all([var[:, j : 76 + j] == b for j in range(5)], axis=0).sum(axis=1) for b in (0, 3)
    )
    a = config.baseline + occ @ np.array(config.effects) + config.gc_effect * (gc - 0.5) + config.polyat_effect * tracts
    names = [m.name for m in motifs]
    for x, y, wxy in config.interactions:
        a += wxy * occ[:, names.index(x)] * occ[:, names.index(y)]
    lo_e, hi_e = config.expression_range
    return lo_e + (hi_e - lo_e) / (1 + np.exp(-a)), sites


def _assert_same_sites(a: dict, b: dict, tol: float = 2e-3) -> None:
    """Scored sites of two runs agree up to float32 rounding: shared sites have the same score (3 decimals
    stored), and a site found by one run only scores within ``tol`` bits of its motif's threshold."""
    threshold = [m["threshold_bits"] for m in a["motifs"]]

    def table(truth):
        c = truth["scored_sites"]
        rows = zip(c["seq"], c["motif"], c["start"], c["strand"], c["score"])
        return {(seq, motif, start, strand): score for seq, motif, start, strand, score in rows}

    ta, tb = table(a), table(b)
    for key in ta.keys() & tb.keys():
        assert abs(ta[key] - tb[key]) <= tol, key
    for key in ta.keys() ^ tb.keys():
        score = ta.get(key, tb.get(key))
        assert abs(score - threshold[key[1]]) <= tol, (key, score)
    assert len(ta.keys() ^ tb.keys()) <= 0.01 * len(ta)


def test_construct_and_determinism(small):
    seqs = small.sequences
    assert small.codes.shape == (1500, 110) and small.codes.dtype == np.uint8 and small.codes.max() <= 3
    assert all(s.startswith(LEFT_FLANK) and s.endswith(RIGHT_FLANK) for s in seqs)
    again = simulate(1500, seed=7, chunk_size=256)  # chunking only bounds memory
    # Sequences come from the RNG alone: equal whatever the kernels. Scores come from a float32 convolution
    # whose summation order depends on the batch shape and the CPU (≤ 2e-6 seen on AVX-512), so expression
    # agrees to float32 rounding and a scored site may only differ where its score sits on the threshold.
    np.testing.assert_array_equal(again.codes, small.codes)
    np.testing.assert_allclose(again.expression, small.expression, rtol=0, atol=1e-5)
    _assert_same_sites(again.truth, small.truth)
    other = simulate(1500, seed=8)
    assert not np.array_equal(other.codes, small.codes)


def test_matches_independent_reference(small):
    config = SimulatorConfig()
    expected, sites = _reference(small.codes[:300], config)
    np.testing.assert_allclose(small.noise_free[:300], expected, rtol=1e-4, atol=1e-3)
    cols = small.truth["scored_sites"]
    got = {
        (s, k, st, strand, round(score, 2))
        for s, k, st, strand, score in zip(cols["seq"], cols["motif"], cols["start"], cols["strand"], cols["score"])
        if s < 300
    }
    assert {x[:4] for x in got} == {x[:4] for x in sites}  # every site above threshold, and only those
    ref_scores = {x[:4]: x[4] for x in sites}
    assert all(abs(ref_scores[x[:4]] - x[4]) < 0.02 for x in got)


def test_planted_sites_are_in_the_sequences(small):
    motifs = {k: m for k, m in enumerate(load_yeast_motifs(SimulatorConfig().motifs))}
    p = small.truth["planted_sites"]
    assert len(p["seq"]) > 1500 * 0.8  # default plant probabilities sum to 1.55 per sequence
    for s, k, start, strand, score in list(zip(p["seq"], p["motif"], p["start"], p["strand"], p["score"]))[:400]:
        m = motifs[k]
        assert len(LEFT_FLANK) <= start <= len(LEFT_FLANK) + 80 - m.width
        window = small.codes[s, start : start + m.width]
        lo = m.log_odds() if strand == 1 else m.log_odds()[::-1, ::-1]
        assert score == pytest.approx(lo[window, np.arange(m.width)].sum(), abs=2e-3)
    # Planted instances are real binding sites: most score above their motif's threshold.
    thresholds = np.array([m["threshold_bits"] for m in small.truth["motifs"]])
    assert np.mean(np.array(p["score"]) >= thresholds[p["motif"]]) > 0.6


def test_noise_level_and_effect_signs():
    data = simulate(20000, seed=1)
    r = np.corrcoef(data.noise_free, data.expression)[0, 1]
    assert r == pytest.approx(0.95, abs=0.01)
    assert data.truth["summary"]["pearson_noise_free_measured"] == pytest.approx(r, abs=1e-4)
    assert 0 <= data.expression.min() and data.expression.max() <= 17
    noisier = simulate(20000, seed=1, config=SimulatorConfig(noise_free_r=0.8))
    assert np.corrcoef(noisier.noise_free, noisier.expression)[0, 1] == pytest.approx(0.8, abs=0.015)
    clean = simulate(500, seed=1, config=SimulatorConfig(noise_sd=0.0))
    np.testing.assert_array_equal(clean.expression, clean.noise_free)
    # Activators raise expression, repressors lower it: compare sequences with and without a bound site.
    sites = data.truth["scored_sites"]
    names = [m["name"] for m in data.truth["motifs"]]
    for name in ("REB1", "RAP1", "UME6", "NHP10"):
        k = names.index(name)
        has = np.zeros(len(data), bool)
        has[np.array(sites["seq"])[np.array(sites["motif"]) == k]] = True
        diff = data.noise_free[has].mean() - data.noise_free[~has].mean()
        effect = SimulatorConfig().effects[k]
        assert np.sign(diff) == np.sign(effect) and abs(diff) > 0.5, (name, diff)


def test_interaction_is_synergy():
    base = SimulatorConfig(noise_sd=0.0)
    with_pair = simulate(3000, seed=2, config=base)
    without = simulate(3000, seed=2, config=base.replace(interactions=()))
    np.testing.assert_array_equal(with_pair.codes, without.codes)
    gain = with_pair.noise_free - without.noise_free
    assert (gain >= -1e-5).all() and gain.max() > 0.5


def test_config_validation():
    with pytest.raises(ValueError, match="effects has 2 values"):
        SimulatorConfig(motifs=("REB1", "ABF1", "RAP1"), effects=(1, 2), plant_prob=(0.1,) * 3, reverse_gain=(1,) * 3,
                        interactions=())
    with pytest.raises(ValueError, match="not in motifs"):
        SimulatorConfig(interactions=(("REB1", "GCN4", 1.0),))
    with pytest.raises(ValueError, match="unknown keys"):
        SimulatorConfig.from_dict({"noise": 0.1})
    with pytest.raises(ValueError, match="noise_free_r"):
        SimulatorConfig(noise_free_r=0.0)
    cfg = SimulatorConfig.from_dict(json.loads(SimulatorConfig().to_json()))
    assert cfg == SimulatorConfig()
    with pytest.raises(InputError, match="close matches: REB1"):
        simulate(10, config=SimulatorConfig(motifs=("REB2",), effects=(1,), plant_prob=(0.5,), reverse_gain=(1,),
                                            interactions=()))


def test_distribution_resembles_the_real_random_test_set(vaishnav_dir):
    from scipy.stats import ks_2samp

    with open(vaishnav_dir / "test" / "Random_complex.csv", newline="") as fh:
        real = np.array([float(row["Measured Expression"]) for row in csv.DictReader(fh)])
    sim = simulate(20000, seed=0).expression
    assert ks_2samp(sim, real).statistic < 0.1
    assert abs(sim.mean() - real.mean()) < 0.5 and abs(sim.std() - real.std()) < 0.5
    for q in (0.25, 0.5, 0.75):
        assert abs(np.quantile(sim, q) - np.quantile(real, q)) < 1.2


def test_format_training_lines():
    codes = np.array([[0, 1, 2, 3], [3, 3, 0, 4]], dtype=np.uint8)
    text = format_training_lines(codes, np.array([1.5, 12.25], dtype=np.float32))
    assert text == b"ACGT\t1.500000\nTTAN\t12.250000\n"


def test_write_simulation(tmp_path, small):
    out = tmp_path / "sim.txt"
    write_simulation(small, out)
    lines = out.read_text().splitlines()
    assert len(lines) == 1500
    seq, _value = lines[3].split("\t")
    assert seq == decode(small.codes[3:4])[0] and len(seq) == 110
    values = np.array([float(line.split("\t")[1]) for line in lines])
    np.testing.assert_allclose(values, small.expression, atol=1e-5)
    truth = json.loads(truth_path(out).read_text())
    assert truth["n"] == 1500 and truth["seed"] == 7
    assert [m["matrix_id"] for m in truth["motifs"]] == ["MA0344.1", "MA0363.3", "MA0265.3", "MA0277.1", "MA0359.3",
                                                          "MA0412.3"]
    assert len(truth["noise_free"]) == 1500
    assert SimulatorConfig.from_dict(truth["config"]) == SimulatorConfig()
    with pytest.raises(OutputExistsError):
        write_simulation(small, out)
    truth_path(out).unlink()
    with pytest.raises(OutputExistsError):  # the data file alone also blocks
        write_simulation(small, out)
    write_simulation(small, out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.txt", "sim.txt.truth.json"]


def test_cli(tmp_path, capsys):
    out = tmp_path / "s.txt"
    assert main(["simulate", "--n", "300", "--seed", "4", "--out", str(out), "--noise-free-r", "0.9"]) == 0
    assert "wrote 300 sequences" in capsys.readouterr().out
    truth = json.loads(truth_path(out).read_text())
    assert truth["config"]["noise_free_r"] == 0.9
    assert main(["simulate", "--n", "300", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"noise_free_r": 0.9,\n "nois": 1}')
    assert main(["simulate", "--n", "10", "--out", str(tmp_path / "x.txt"), "--config", str(bad)]) == 2
    assert "unknown keys ['nois']" in capsys.readouterr().err
    bad.write_text('{"noise_free_r": 0.9,\n oops}')
    assert main(["simulate", "--n", "10", "--out", str(tmp_path / "x.txt"), "--config", str(bad)]) == 2
    assert "bad.json:2: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "x.txt").exists()
    assert math.isclose(np.loadtxt(out, usecols=1, dtype=str).astype(float).mean(), truth["summary"]["measured"]["mean"],
                        abs_tol=1e-3)
