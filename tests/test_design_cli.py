"""The design subcommands end to end on a small random checkpoint; errors are one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from crmnet.cli import main
from crmnet.data.simulate import noise_free_expression, simulate
from crmnet.models.checkpoint import save_checkpoint
from crmnet.models.registry import build_model
from design_toys import constructs


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "tiny.pt"
    save_checkpoint(path, build_model("crmnet-tiny"))
    return path


def test_noise_free_expression_matches_the_simulation():
    data = simulate(300, seed=4)
    np.testing.assert_allclose(noise_free_expression(data.codes, data.truth), data.noise_free, atol=1e-4)
    np.testing.assert_allclose(noise_free_expression(data.sequences[:3]), data.noise_free[:3], atol=1e-4)
    with pytest.raises(ValueError, match="110"):
        noise_free_expression(data.codes[:, :100])


@pytest.fixture
def inputs(tmp_path):
    seqs = constructs(4, seed=1)
    fa = tmp_path / "s.fa"
    fa.write_text("".join(f">q{i}\n{s}\n" for i, s in enumerate(seqs)))
    pairs = tmp_path / "p.tsv"
    pairs.write_text("reference\tvariant\td\n" + "".join(f"{a}\t{b}\t{k}\n" for k, (a, b) in
                                                       enumerate(zip(seqs, seqs[1:] + seqs[:1]))))
    return fa, pairs


def test_cli_variants(tmp_path, ckpt, inputs, capsys):
    out = tmp_path / "v.tsv"
    assert main(["variants", "--pairs", str(inputs[1]), "--out", str(out), "--measured-column", "d",
                 "--checkpoint", str(ckpt)]) == 0
    assert "pearson_r" in json.loads((tmp_path / "v.metrics.json").read_text())["p.tsv"]
    assert out.read_text().splitlines()[0].endswith("ref_prediction\talt_prediction\tdelta")
    assert "4 pairs, 4 distinct sequences" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_mutagenesis_and_evolvability(tmp_path, ckpt, inputs):
    assert main(["mutagenesis", str(inputs[0]), "--out", str(tmp_path / "m"), "--figures", "1", "--window",
                 "20-29", "--checkpoint", str(ckpt), "--no-progress"]) == 0
    assert np.load(tmp_path / "m" / "deltas.npz")["delta"].shape == (4, 10, 4)
    assert main(["evolvability", str(tmp_path / "m" / "deltas.npz"), "--out", str(tmp_path / "e"),
                 "--epsilon", "0.01"]) == 0
    assert np.load(tmp_path / "e" / "vectors.npz")["vector"].shape == (4, 30)


def test_cli_evolve_two_models(tmp_path, ckpt, inputs):
    assert main(["evolve", str(inputs[0]), "--out", str(tmp_path / "g"), "--mode", "ga", "--target", "5",
                 "--population", "8", "--generations", "2", "--checkpoint", f"X={ckpt}", "--checkpoint",
                 f"Y={ckpt}", "--objective", "X + 0*Y", "--no-progress"]) == 0
    header = (tmp_path / "g" / "trajectory.tsv").read_text().splitlines()[0].split("\t")
    assert "prediction_X" in header and "prediction_Y" in header


@pytest.mark.parametrize(("argv", "match"), [
    (["evolve", "{fa}", "--mode", "ga", "--target", "99"], "--target 99 lies outside"),
    (["evolve", "{fa}", "--mode", "ga", "--target", "5", "--population", "0"], "--population: must be between 1"),
    (["evolve", "{fa}", "--objective", "A-B"], "names 'B'"),
    (["mutagenesis", "{fa}", "--window", "100-200"], "s.fa:1: --window 100-200 lies outside"),
    (["variants", "--pairs", "{fa}"], "no column 'reference'"),
])
def test_cli_errors_one_line(tmp_path, ckpt, capsys, argv, match):
    fa = tmp_path / "s.fa"
    fa.write_text(">q\n" + constructs(1)[0] + "\n")
    argv = [a.replace("{fa}", str(fa)) for a in argv] + ["--out", str(tmp_path / "o"), "--checkpoint", str(ckpt)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
