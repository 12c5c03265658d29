"""``crmnet interpret`` and ``crmnet motifs`` report progress (rate, ETA) when standard error is not a terminal,
--quiet silences them, and attributing in chunks (ISM, DeepLIFT/SHAP) gives the results of a single call."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from crmnet.data.encoding import Encoding, encode
from crmnet.interpret import attribution
from crmnet.interpret.attribution import AttributionConfig, attribute, ism
from crmnet.models.registry import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

RATE = r"at [\d,]+\.\d (\w+)/s"


@pytest.fixture(autouse=True)
def every_update(monkeypatch):
    """A log line on every update, so tiny inputs show their lines."""
    monkeypatch.setenv("CRMNET_PROGRESS_INTERVAL", "0")


def _sequences(n: int, length: int = 110, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), size=length)) for _ in range(n)]


def _lines(err: str, desc: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(desc)]


class Linear(nn.Module):
    """A cheap model (prediction = Σ W ⊙ x) so a hundred sequences of ISM take milliseconds."""

    def __init__(self, length: int = 30):
        super().__init__()
        self.encoding = Encoding(length=length, channels="NACGT")
        self.weight = nn.Parameter(torch.randn(5, length, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return (x * self.weight).sum((1, 2))


def test_ism_moves_the_bar_per_chunk_of_sequences(capsys):
    seqs = _sequences(130, length=30)
    attribute(Linear().eval(), seqs, AttributionConfig(method="ism", ism_variable_only=False), progress=True)
    lines = _lines(capsys.readouterr().err, "ism:")
    # one line per tangermeme call of 64 sequences (64, 128, 130), the last one closing the bar
    assert [re.match(r"ism: \d+% (\d+)/130 seq", line).group(1) for line in lines] == ["64", "128", "130", "130"]
    assert all(re.search(RATE, line).group(1) == "seq" for line in lines) and "ETA" in lines[0]
    assert lines[-1].endswith("(done)")
    attribute(Linear().eval(), seqs, AttributionConfig(method="ism"), progress=False)
    assert not capsys.readouterr().err


def test_ism_in_chunks_equals_one_call():
    torch.manual_seed(0)
    model = build_model("crmnet-tiny").eval()
    codes, _ = encode(_sequences(5), model.encoding)
    whole = ism(model, codes, batch_size=64, span=(20, 60), chunk=5)
    chunked = ism(model, codes, batch_size=64, span=(20, 60), chunk=2)
    # Equal up to float32 rounding: the forward passes group other substituted sequences, as with another
    # --batch-size (differences ~1e-9 on effects ~1e-4 here).
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-8)
    assert np.abs(whole).max() > 1e-5


def test_deeplift_shap_in_chunks_equals_one_call(monkeypatch, capsys):
    torch.manual_seed(0)
    model = build_model("crmnet-tiny").eval()
    seqs = _sequences(5)
    config = AttributionConfig(method="deeplift_shap")
    whole = attribute(model, seqs, config)  # one tangermeme call: 5 < CHUNK
    monkeypatch.setattr(attribution, "CHUNK", 2)
    chunked = attribute(model, seqs, config, progress=True)
    assert len(_lines(capsys.readouterr().err, "deeplift_shap:")) == 4  # 2, 4, 5 sequences, done
    # the same references per sequence whatever the chunk (tangermeme seeds each example's shuffles)
    np.testing.assert_allclose(chunked.hypothetical, whole.hypothetical, rtol=1e-5, atol=1e-8)
    assert np.abs(whole.hypothetical).max() > 1e-5


def test_kmer_tests_report_each_gap():
    from crmnet.interpret.kmers import DiscoveryConfig, kmer_enrichment

    seqs = _sequences(40, length=40)
    codes, _ = encode(seqs, Encoding(length=40, channels="ACGT"))
    expression = np.random.default_rng(1).normal(size=40)
    region = np.ones(codes.shape, dtype=bool)
    calls = []
    kmer_enrichment(codes, expression, region, DiscoveryConfig(k=4, gaps=(0, 1, 2), n_top=10, n_bottom=10),
                    on_gap=lambda: calls.append("gap"))
    assert calls == ["gap"] * 3  # the mHG test's gaps: in the CLI test below (its numba JIT is slow)


@pytest.mark.slow  # FIMO and TOMTOM (memelite): numba JIT on a cold cache
def test_interpret_and_motifs_log_progress_and_quiet_silences(tmp_path, capsys):
    from crmnet.cli import main
    from crmnet.models.checkpoint import save_checkpoint

    seqs = _sequences(12)
    data = tmp_path / "seqs.txt"
    data.write_text("".join(f"{s}\t{i / 10:.2f}\n" for i, s in enumerate(seqs)))
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.ckpt"
    save_checkpoint(ckpt, build_model("crmnet-tiny"))
    base = ["interpret", "--checkpoint", str(ckpt), "--sequences", str(data), "--motifs", "REB1", "RAP1",
            "--method", "ism", "--batch-size", "128"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    ism_lines, fig_lines = _lines(err, "ism:"), _lines(err, "figure 5:")
    assert ism_lines and re.search(RATE, ism_lines[0]).group(1) == "seq" and "ETA" in ism_lines[0]
    assert ism_lines[-1].startswith("ism: 100% 12/12 seq") and ism_lines[-1].endswith("(done)")
    # FIMO scan, logos, 5F, 5G (measured values given), report: five steps, then the closing line
    assert len(fig_lines) == 6 and re.search(RATE, fig_lines[0]).group(1) == "step"
    assert main([*base, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert not _lines(err, "ism") and not _lines(err, "figure 5")

    motifs = ["motifs", "--sequences", str(data), "--top", "4", "--bottom", "4", "--gaps", "0,1", "--k", "4"]
    assert main([*motifs, "--out", str(tmp_path / "m")]) == 0
    lines = _lines(capsys.readouterr().err, "motifs:")
    # 2 gaps of Fisher tests, 1 of mHG, TOMTOM for kmer and mhg, the report: 6 steps, then the closing line
    assert len(lines) == 7 and lines[0].startswith("motifs: 17% 1/6 step") and "ETA" in lines[0]
    assert main([*motifs, "--out", str(tmp_path / "n"), "--quiet"]) == 0
    assert not _lines(capsys.readouterr().err, "motifs")
