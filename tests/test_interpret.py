"""Attributions (saliency, ISM), display rules, ground-truth scores, Figure 5 outputs and the interpret/motifs CLI.

Tests that scan with memelite's FIMO or match with its TOMTOM are marked ``slow``: their numba JIT costs
from tens of seconds (FIMO) to minutes (TOMTOM) on a cold cache.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from crmnet.data.construct import variable_region
from crmnet.data.encoding import CRMNET, Encoding
from crmnet.data.jaspar import Motif, load_yeast_motifs, write_meme
from crmnet.errors import InputError
from crmnet.interpret.attribution import (
    AttributionConfig,
    Attributions,
    attribute,
    display_filter,
    matching_attributions,
    model_positions,
    sequence_onehot,
)
from crmnet.interpret.figure5 import figure5
from crmnet.interpret.scoring import ground_truth_saliency, planted_site_mask, site_scores, truth_prefix

LEFT, RIGHT = "TGCATTTTTTTCACATC", "GGTTACGGCTGTT"


class LinearModel(nn.Module):
    """prediction = Σ W ⊙ x: its gradient is W everywhere and every ISM effect is a difference of W."""

    def __init__(self, enc: Encoding, seed: int = 0):
        super().__init__()
        self.encoding = enc
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(enc.n_channels, enc.length, generator=g))

    def forward(self, x):
        return (x * self.weight).sum(dim=(1, 2))


class PwmModel(nn.Module):
    """Hand-set ground-truth model: soft occupancy of JASPAR log-odds on both strands, times an effect."""

    def __init__(self, names: list[str], effects: list[float]):
        super().__init__()
        self.encoding = CRMNET
        motifs = load_yeast_motifs(names)
        w = max(m.width for m in motifs)
        weight = torch.zeros(2 * len(motifs), 5, w)
        for i, m in enumerate(motifs):
            lo = torch.tensor(m.log_odds(), dtype=torch.float32)
            weight[2 * i, 1:, : m.width] = lo  # channel 0 is N
            weight[2 * i + 1, 1:, : m.width] = lo.flip(0).flip(1)
        self.conv = nn.Conv1d(5, 2 * len(motifs), w, bias=False)
        self.conv.weight.data = weight
        thr = [float(m.log_odds().max(0).sum()) - 4 for m in motifs]
        self.register_buffer("threshold", torch.tensor(thr).repeat_interleave(2))
        self.register_buffer("effect", torch.tensor(effects, dtype=torch.float32).repeat_interleave(2))

    def forward(self, x):
        occupancy = torch.sigmoid(self.conv(x) - self.threshold[None, :, None]).sum(-1)
        return 8.0 + occupancy @ self.effect


def planted(n: int, names: list[str], seed: int = 0):
    """Random 80-nt variable regions in the real flanks; motif consensus planted in half the sequences."""
    rng = np.random.default_rng(seed)
    motifs = load_yeast_motifs(names)
    seqs, sites = [], {"seq": [], "motif": [], "start": [], "strand": []}
    for i in range(n):
        var = list("".join(rng.choice(list("ACGT"), 80)))
        if i % 2 == 0:
            k = (i // 2) % len(motifs)
            start = int(rng.integers(0, 80 - motifs[k].width))
            var[start : start + motifs[k].width] = motifs[k].consensus
            for key, v in zip(sites, (i, k, start + len(LEFT), 1)):
                sites[key].append(v)
        seqs.append(LEFT + "".join(var) + RIGHT)
    truth = {"n": n, "motifs": [{"name": m.name, "width": m.width} for m in motifs], "planted_sites": sites}
    return seqs, truth


@pytest.mark.parametrize("enc", [CRMNET, Encoding(length=110, pad="start", truncate="start", channels="ACGT")])
def test_saliency_is_input_times_gradient_in_sequence_coordinates(enc, rng):
    model = LinearModel(enc)
    seqs = ["".join(rng.choice(list("ACGT"), n)) for n in (110, 104, 115)]
    attr = attribute(model, seqs, AttributionConfig(method="saliency", batch_size=2))
    w = model.weight.detach().numpy()[[enc.channels.index(b) for b in "ACGT"]]
    index, seen = model_positions(attr.lengths, enc, attr.mask.shape[1])
    for i, s in enumerate(seqs):
        for j in range(len(s)):
            if seen[i, j]:
                np.testing.assert_allclose(attr.hypothetical[i, :, j], w[:, index[i, j]], rtol=1e-6)
                assert attr.per_position[i, j] == pytest.approx(w["ACGT".index(s[j]), index[i, j]], rel=1e-5)
            else:
                assert not attr.mask[i, j] and attr.per_position[i, j] == 0
    # a 115-nt sequence loses 5 bases to truncation: at the end for CRMnet, at the start for Vaishnav
    lost = np.flatnonzero(~attr.mask[2])
    assert list(lost) == (list(range(112, 115)) if enc is CRMNET else list(range(5)))


def test_attributions_do_not_depend_on_batching(rng):
    model = PwmModel(["REB1", "RAP1"], [2.0, 3.0]).eval()
    seqs, _ = planted(12, ["REB1", "RAP1"])
    one = attribute(model, seqs, AttributionConfig(batch_size=1))
    many = attribute(model, seqs, AttributionConfig(batch_size=12))
    np.testing.assert_allclose(one.hypothetical, many.hypothetical, rtol=1e-5, atol=1e-6)


def test_ism_on_a_linear_model_is_the_centred_weight_difference(rng):
    model = LinearModel(Encoding(length=40, channels="NACGT"), seed=3)
    seqs = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(3)]
    attr = attribute(model, seqs, AttributionConfig(method="ism", batch_size=64, ism_variable_only=False))
    w = model.weight.detach().numpy()[1:]  # A, C, G, T rows
    np.testing.assert_allclose(attr.hypothetical, np.broadcast_to(w - w.mean(0), attr.hypothetical.shape),
                               rtol=1e-4, atol=1e-5)


def test_ism_limited_to_the_variable_region(rng):
    model = LinearModel(CRMNET, seed=1)
    seqs = [LEFT + "".join(rng.choice(list("ACGT"), 80)) + RIGHT for _ in range(2)]
    attr = attribute(model, seqs, AttributionConfig(method="ism"))
    region = variable_region(attr.lengths, 110)
    assert np.all(attr.hypothetical[:, :, ~region[0]] == 0)
    assert np.all(np.abs(attr.hypothetical[:, :, region[0]]).sum(1) > 0)


def test_display_rules():
    per = np.array([[0.0] * 17 + [0.5, 0.05, -1.0, 0.3, 0.2] + [0.0] * 75 + [9.0] * 13], dtype=np.float32)
    x = np.zeros((1, 4, per.shape[1]), np.float32)
    x[:, 0] = 1  # all A, so per_position equals the A row
    attr = Attributions(x, np.repeat(per[:, None], 4, axis=1), np.array([110]), np.ones((1, 110), bool), "saliency")
    shown = display_filter(attr)
    mean = per[0, 17:97].mean()
    assert shown[0, 17] == pytest.approx(0.5) and shown[0, 20] == pytest.approx(0.3)  # ≥ mean and ≥ 0.1
    assert shown[0, 18] == 0 and shown[0, 19] == 0 and shown[0, 21] == pytest.approx(0.2)
    assert mean < 0.1 and shown[0, 97:].sum() == 0  # the 9.0s sit in the right flank
    kept = display_filter(attr, AttributionConfig(zero_flanks=False, min_value=None, drop_below_mean=False))
    np.testing.assert_allclose(kept, per)


def test_saliency_is_higher_on_planted_sites():
    names = ["REB1", "RAP1"]
    seqs, truth = planted(80, names)
    attr = attribute(PwmModel(names, [2.0, 3.0]), seqs)
    sites = planted_site_mask(truth, len(seqs), 110)
    region = variable_region(attr.lengths, 110)
    result = site_scores(attr.per_position, sites, region)
    assert result["ratio"] > 10 and result["mannwhitney_p"] < 1e-10 and result["auroc"] > 0.9


def test_site_scores_auroc_and_classes():
    per = np.array([[3.0, -4.0, 1.0, 2.0, -5.0, 0.5]])
    sites = np.array([[True, True, False, False, False, False]])
    region = np.array([[True] * 5 + [False]])  # the 0.5 is outside the region
    r = site_scores(per, sites, region)
    # |on| = 3, 4; |off| = 1, 2, 5: 4 of the 6 pairs are ordered on > off
    assert r["auroc"] == pytest.approx(4 / 6) and r["ratio"] == pytest.approx(3.5 / (8 / 3))
    assert r["mean_on_sites"] == pytest.approx(-0.5) and r["n_off"] == 3
    truth = {"n": 2, "motifs": [{"name": "REB1", "width": 2, "effect": 2.0}, {"name": "UME6", "width": 2, "effect": -3.0}],
             "planted_sites": {"seq": [0, 1], "motif": [0, 1], "start": [0, 2], "strand": [1, 1]}}
    values = np.array([[5.0, 5.0, 0.1, 0.2, 0.1, 0.3], [0.1, 0.2, -2.0, -2.0, 0.2, 0.1]])
    gt = ground_truth_saliency(values, truth, np.ones((2, 6), bool))
    assert set(gt) == {"all_sites", "activator_sites", "repressor_sites"}
    assert gt["activator_sites"]["auroc"] == 1.0 and gt["repressor_sites"]["mean_on_sites"] == pytest.approx(-2.0)
    assert gt["repressor_sites"]["n_off"] == 8  # off every site, not only off the repressor's
    cut = truth_prefix(truth, 1)
    assert cut["n"] == 1 and cut["planted_sites"]["seq"] == [0]


def test_attributions_round_trip_and_refuse_overwrite(tmp_path, rng):
    seqs = ["".join(rng.choice(list("ACGT"), 30)) for _ in range(4)]
    attr = attribute(LinearModel(Encoding(length=30)), seqs)
    path = attr.save(tmp_path / "a.npz")
    back = Attributions.load(path)
    np.testing.assert_array_equal(back.hypothetical, attr.hypothetical)
    np.testing.assert_array_equal(back.onehot, attr.onehot)
    assert back.method == "saliency" and back.meta == attr.meta
    with pytest.raises(FileExistsError):
        attr.save(path)
    np.testing.assert_array_equal(sequence_onehot(["ACGN"])[0].argmax(0)[:3], [0, 1, 2])


@pytest.mark.slow  # memelite's FIMO: tens of seconds of numba JIT on a cold cache
def test_figure5_end_to_end(tmp_path):
    names = ["REB1", "RAP1", "ABF1"]
    seqs, truth = planted(120, names, seed=2)
    model = PwmModel(names, [2.0, 3.0, 2.0])
    attr = attribute(model, seqs)
    with torch.no_grad():
        from crmnet.data.encoding import encode, onehot

        measured = model(onehot(torch.as_tensor(encode(seqs)[0]))).numpy()
    out = tmp_path / "fig5"
    summary = figure5(attr, load_yeast_motifs(names), out, measured=measured, truth=truth)
    for stem in ("fig5A_REB1", "fig5B_RAP1", "fig5C_ABF1", "fig5F_saliency", "fig5G_expression"):
        assert (out / f"{stem}.png").stat().st_size > 1000 and (out / f"{stem}.pdf").exists()
    f = {r["motif"]: r for r in summary["fig5F"]}
    assert all(f[m]["abs_ratio"] > 5 and f[m]["ci_low"] > 0 and f[m]["q_value"] < 1e-4 for m in names)
    g = {r["motif"]: r for r in summary["fig5G"]}
    assert all(g[m]["mean_with"] > g[m]["mean_all"] for m in names)
    gt = summary["ground_truth"]["raw"]["all_sites"]
    assert gt["ratio"] > 10 and gt["auroc"] > 0.9
    md = (out / "summary.md").read_text()
    assert "5F" in md and "Wilcoxon" in md and "nan" not in md.lower()
    assert json.loads((out / "summary.json").read_text())["n_sequences"] == 120
    with pytest.raises(FileExistsError):
        figure5(attr, load_yeast_motifs(names), out)


def _cli_files(tmp_path, n: int = 60):
    from crmnet.models.checkpoint import save_checkpoint
    from crmnet.models.registry import build_model

    names = ["REB1", "RAP1"]
    seqs, truth = planted(n, names, seed=4)
    model = PwmModel(names, [2.0, 3.0])
    with torch.no_grad():
        from crmnet.data.encoding import encode, onehot

        measured = model(onehot(torch.as_tensor(encode(seqs)[0]))).numpy()
    data = tmp_path / "sim.txt"
    data.write_text("".join(f"{s}\t{v:.4f}\n" for s, v in zip(seqs, measured)))
    (tmp_path / "sim.txt.truth.json").write_text(json.dumps(truth))
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, build_model("crmnet-tiny"))
    return data, ckpt


def test_cli_refuses_bad_arguments_before_working(tmp_path):
    from crmnet.cli import main

    data, ckpt = _cli_files(tmp_path, n=10)
    base = ["interpret", "--checkpoint", str(ckpt), "--sequences", str(data), "--out", str(tmp_path / "y")]
    assert main([*base, "--motifs", "NOTAMOTIF"]) == 2
    assert main([*base, "--batch-size", "0"]) == 2  # a clear error, not a ValueError traceback
    assert main([*base, "--limit", "0"]) == 2
    (tmp_path / "exists").mkdir()
    assert main(["motifs", "--sequences", str(data), "--out", str(tmp_path / "exists")]) == 2
    assert main(["motifs", "--sequences", str(data), "--out", str(tmp_path / "z"), "--k", "5"]) == 2  # gapped, odd k


def test_matching_attributions_checks_the_sequences(tmp_path, rng):
    seqs = ["".join(rng.choice(list("ACGT"), 30)) for _ in range(4)]
    attr = attribute(LinearModel(Encoding(length=30)), seqs)
    assert len(matching_attributions(attr, seqs[:3], "a.npz")) == 3
    with pytest.raises(InputError, match="4 attribution maps for 5"):
        matching_attributions(attr, [*seqs, seqs[0]], "a.npz")
    with pytest.raises(InputError, match="other sequences"):
        matching_attributions(attr, seqs[1:], "a.npz")


@pytest.mark.slow  # FIMO and TOMTOM (memelite): minutes of numba JIT on a cold cache
def test_cli_interpret_and_motifs(tmp_path, capsys):
    from crmnet.cli import main

    data, ckpt = _cli_files(tmp_path)
    out = tmp_path / "interp"
    meme = tmp_path / "known.meme"
    poly_g = Motif("POLYG", "X0001.1", np.repeat([[0.0], [0.0], [10.0], [0.0]], 20, axis=1))  # never in random DNA
    write_meme([*load_yeast_motifs(["REB1", "RAP1"]), poly_g], meme)
    args = ["interpret", "--checkpoint", str(ckpt), "--sequences", str(data), "--out", str(out), "--limit", "40",
            "--meme", str(meme)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "POLYG: no hits" in printed and "nan" not in printed and "q = 0 " not in printed
    assert (out / "table5F_saliency.tsv").exists() and (out / "fig5G_expression.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_sequences"] == 40 and "auroc" in summary["ground_truth"]["raw"]["all_sites"]
    assert "| POLYG | 0 | 0 | no hits |" in (out / "summary.md").read_text()
    assert main(args) == 2  # the output exists
    disc = tmp_path / "disc"
    assert main(["motifs", "--sequences", str(data), "--out", str(disc), "--top", "30", "--bottom", "30",
                 "--gaps", "0", "--no-mhg", "--lenient"]) == 0
    kmer = json.loads((disc / "summary.json").read_text())["methods"]["kmer"]
    assert kmer["recovery"]["rule"] == "strict" and kmer["recovery_lenient"]["rule"] == "lenient"
    bad = ["motifs", "--sequences", str(data), "--out", str(tmp_path / "x"), "--attributions",
           str(out / "attributions.npz")]
    assert main(bad) == 2  # 40 maps for 60 sequences


def test_gradient_correction_centres_the_four_bases(rng):
    model = LinearModel(CRMNET, seed=2)
    seqs = ["".join(rng.choice(list("ACGT"), 110)) for _ in range(2)]
    attr = attribute(model, seqs, AttributionConfig(gradient_correction=True))
    w = model.weight.detach().numpy()[1:, :110]
    np.testing.assert_allclose(attr.hypothetical[0], w - w.mean(0), rtol=1e-5, atol=1e-6)
