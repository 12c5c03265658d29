"""Saturation mutagenesis and evolvability against a linear toy model (Δ is a weight difference)."""

from __future__ import annotations

import numpy as np
import pytest

from crmnet.design.evolvability import evolvability
from crmnet.design.mutagenesis import Saturation, default_windows, parse_window, saturation_mutagenesis
from crmnet.design.oracle import encode_sequences
from crmnet.design.outputs import mutagenesis_file, read_saturation
from crmnet.errors import InputError
from design_toys import LinearToy, constructs

CODE = {b: i for i, b in enumerate("ACGTN")}


def test_linear_delta_is_exact():
    model = LinearToy()
    seqs = constructs(5) + ["ACGTNACGTA"]
    sat = saturation_mutagenesis(model, seqs, batch_size=97)
    w = model.base_weight()
    assert sat.delta.shape == (6, 80, 4)
    assert list(sat.start) == [17] * 5 + [0] and list(sat.length) == [80] * 5 + [10]
    for i, s in enumerate(seqs):
        for j in range(int(sat.length[i])):
            p = int(sat.start[i]) + j
            ref = CODE[s[p]]
            for b in range(4):
                want = 0.0 if b == ref else w[b, p] - w[ref, p]
                assert sat.delta[i, j, b] == pytest.approx(want, abs=1e-4)
    assert np.isnan(sat.delta[5, 10:]).all()  # beyond the short sequence's window
    assert (sat.reference[5, :10] == [CODE[c] for c in "ACGTNACGTA"]).all()


def test_window_and_batching_do_not_change_results():
    model = LinearToy(1)
    seqs = constructs(7, seed=2)
    full = saturation_mutagenesis(model, seqs, window=(0, 110))
    part = saturation_mutagenesis(model, seqs, window=(30, 40), batch_size=7)
    np.testing.assert_allclose(part.delta, full.delta[:, 30:40], atol=1e-4)
    with pytest.raises(InputError, match="--window 1-200 lies outside this 110-nt sequence"):
        saturation_mutagenesis(model, seqs, window=(0, 200))
    assert parse_window("18-97") == (17, 97)
    with pytest.raises(InputError, match="--window"):
        parse_window("10-x")


def test_default_window_needs_both_flanks():
    codes, lengths = encode_sequences([constructs(1)[0], constructs(1)[0][:-1], "ACGT" * 30])
    assert default_windows(codes, lengths).tolist() == [[17, 97], [0, 109], [0, 120]]


def test_evolvability_analytic():
    delta = np.full((1, 3, 4), np.nan, np.float32)
    delta[0] = [[0.0, 0.05, -0.5, 0.2], [1.0, 0.0, -0.1, 0.15], [np.nan] * 4]
    sat = Saturation(delta, np.array([[0, 1, 4]], np.uint8), np.array([10]), np.array([2]), np.array([3.0], np.float32))
    ev = evolvability(sat, epsilon=0.16)
    assert ev.n_mutants[0] == 6
    assert ev.robustness[0] == pytest.approx(3 / 6)  # 0.05, -0.1, 0.15
    assert ev.max_gain[0] == pytest.approx(1.0) and ev.gain_mutation[0] == "C12A"
    assert ev.max_loss[0] == pytest.approx(-0.5) and ev.loss_mutation[0] == "A11G"
    np.testing.assert_allclose(ev.vector[0], sorted([0.05, -0.5, 0.2, 1.0, -0.1, 0.15]), atol=1e-6)
    with pytest.raises(ValueError):
        evolvability(sat, epsilon=0)


def test_mutagenesis_file_streams_and_matches(tmp_path):
    model = LinearToy(3)
    seqs = constructs(9, seed=4)
    src = tmp_path / "in.fa"
    src.write_text("".join(f">s{i} x\n{s}\n" for i, s in enumerate(seqs)))
    res = mutagenesis_file(model_predictor(model), src, tmp_path / "out", max_figures=2, chunk_size=4,
                           progress=False)
    assert res == {"n": 9, "mutants": 9 * 240, "flanked": 0}
    sat, ids = read_saturation(tmp_path / "out" / "deltas.npz")
    want = saturation_mutagenesis(model, seqs)
    np.testing.assert_allclose(sat.delta, want.delta, atol=1e-5)
    assert ids == [f"s{i}" for i in range(9)]
    rows = (tmp_path / "out" / "mutants.tsv").read_text().splitlines()
    assert len(rows) == 1 + 9 * 240 and rows[1].split("\t")[:2] == ["s0", "18"]
    assert len(list((tmp_path / "out" / "heatmaps").glob("*.png"))) == 2
    evo = (tmp_path / "out" / "evolvability.tsv").read_text().splitlines()
    assert len(evo) == 10 and evo[0].startswith("id\tprediction\tn_mutants\trobustness")


def test_mutagenesis_file_bad_input_writes_nothing(tmp_path):
    src = tmp_path / "in.tsv"
    src.write_text("sequence\n" + constructs(1)[0] + "\nACGXT\n")
    with pytest.raises(InputError, match=r"in.tsv:3: invalid character 'X'"):
        mutagenesis_file(model_predictor(LinearToy()), src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    src.write_text("sequence\n" + constructs(1)[0] + "\n")
    with pytest.raises(InputError, match=r"in.tsv:2: --window 100-120 lies outside"):
        mutagenesis_file(model_predictor(LinearToy()), src, tmp_path / "out", window=(99, 120), progress=False)
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        mutagenesis_file(model_predictor(LinearToy()), empty, tmp_path / "out", progress=False)
    assert not list(tmp_path.glob("*out*"))


def model_predictor(model):
    from crmnet.design.oracle import ModelPredictor

    return ModelPredictor(model, batch_size=100)


@pytest.mark.gpu
def test_gpu_matches_cpu():
    import torch

    from crmnet.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("crmnet-tiny").eval()
    seqs = constructs(8, seed=6)
    cpu = saturation_mutagenesis(model, seqs, device="cpu")
    gpu = saturation_mutagenesis(model, seqs, device="cuda")
    np.testing.assert_allclose(gpu.delta, cpu.delta, atol=2e-3)
