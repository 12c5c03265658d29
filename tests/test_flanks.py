"""Bare 80-nt variable regions get the construct's constant flanks, under the real DeepATT.

The released DeepATT (shared/models/vaishnav2022/deepatt_complex) predicts a native test promoter's 80-nt
variable region completed with the flanks exactly as it predicts the whole 110-nt construct; padding the
region with N instead (``flanks=False``, ``--no-flanks``) was measurably off (the numbers are in
docs/biology.md).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from crmnet.cli import main
from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK, VARIABLE_LENGTH, add_flanks, expects_construct
from crmnet.data.encoding import CRMNET, VAISHNAV, Encoding
from crmnet.evaluation.predict import EncodingStats, predict
from crmnet.models.checkpoint import load_checkpoint
from crmnet.zoo.importer import import_model

N_SEQS = 200  # native complex test promoters (every one is a full 110-nt construct)


@pytest.fixture(scope="module")
def deepatt(shared: Path, tmp_path_factory) -> Path:
    src = shared / "models" / "vaishnav2022" / "deepatt_complex" / "DeepAtt_model.h5"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    return import_model(src, tmp_path_factory.mktemp("deepatt") / "deepatt.pt")


@pytest.fixture(scope="module")
def native(shared: Path) -> list[str]:
    with (shared / "data" / "vaishnav2022" / "test" / "Native_complex.csv").open() as fh:
        seqs = [r["sequence"] for r in csv.DictReader(fh)][:N_SEQS]
    assert all(s.startswith(LEFT_FLANK) and s.endswith(RIGHT_FLANK) and len(s) == 110 for s in seqs)
    return seqs


def region(seq: str) -> str:
    return seq[len(LEFT_FLANK) : len(LEFT_FLANK) + VARIABLE_LENGTH]


def test_region_with_flanks_predicts_as_the_full_construct(deepatt, native):
    model = load_checkpoint(deepatt)
    full = predict(model, native)
    stats = EncodingStats()
    flanked = predict(model, [region(s) for s in native], stats=stats)
    assert stats.flanked == N_SEQS and stats.padded == 0
    assert np.abs(flanked - full).max() < 1e-5
    padded = predict(model, [region(s) for s in native], flanks=False)
    # N-padding was what happened before: far off (measured mean 0.98, max 3.2 on all 3,733)
    assert np.abs(padded - full).mean() > 0.3


def test_cli_predict_completes_80nt_and_says_so_once(deepatt, native, tmp_path, capsys):
    fasta = tmp_path / "regions.fa"
    fasta.write_text("".join(f">r{i}\n{region(s)}\n" for i, s in enumerate(native[:20])) + ">other\nACGTACGT\n")
    assert main(["predict", str(fasta), "--checkpoint", str(deepatt), "--out", str(tmp_path / "a.tsv"),
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("completed with the construct's constant flanks") == 1
    assert "note: 20 sequences of exactly 80 nt" in err
    assert main(["predict", str(fasta), "--checkpoint", str(deepatt), "--out", str(tmp_path / "b.tsv"),
                 "--quiet", "--no-flanks"]) == 0
    assert "constant flanks (" not in capsys.readouterr().err
    rows = {k: [r for r in (tmp_path / f"{k}.tsv").read_text().splitlines() if not r.startswith("#")]
            for k in "ab"}
    full = predict(load_checkpoint(deepatt), native[:20])
    with_flanks = np.array([float(r.split("\t")[2]) for r in rows["a"][1:21]])
    assert rows["a"][1].split("\t")[1] == region(native[0])  # the sequence column keeps the input
    assert np.abs(with_flanks - full).max() < 1e-5
    assert rows["a"][21] == rows["b"][21]  # other lengths keep today's rules


def test_add_flanks_only_for_construct_models_and_exact_length():
    seqs = ["A" * 80, "C" * 79, "G" * 81, b"T" * 80]
    out, n = add_flanks(seqs, VAISHNAV)
    assert n == 2 and out[0] == LEFT_FLANK + "A" * 80 + RIGHT_FLANK and out[1:3] == seqs[1:3]
    assert out[3] == (LEFT_FLANK + "T" * 80 + RIGHT_FLANK).encode()
    assert expects_construct(CRMNET) and expects_construct(VAISHNAV)
    short = Encoding(length=100)
    assert not expects_construct(short) and add_flanks(seqs, short) == (seqs, 0)


@pytest.mark.slow  # ~15 s on a loaded 2-core machine (two mutagenesis runs with their figures)
def test_mutagenesis_and_variants_complete_regions_too(deepatt, native, tmp_path, capsys):
    regions, full = tmp_path / "regions.fa", tmp_path / "full.fa"
    regions.write_text("".join(f">r{i}\n{region(s)}\n" for i, s in enumerate(native[:1])))
    full.write_text("".join(f">r{i}\n{s}\n" for i, s in enumerate(native[:1])))
    for name, src in (("a", regions), ("b", full)):
        assert main(["mutagenesis", str(src), "--checkpoint", str(deepatt), "--out", str(tmp_path / name),
                     "--figures", "0", "--quiet"]) == 0
    assert "note: 1 sequence of exactly 80 nt" in capsys.readouterr().err
    a, b = (np.load(tmp_path / k / "deltas.npz") for k in "ab")
    assert np.array_equal(a["start"], b["start"]) and int(a["start"][0]) == len(LEFT_FLANK)  # the variable region
    assert np.abs(a["delta"] - b["delta"]).max() < 1e-5
    assert (tmp_path / "a" / "mutants.tsv").read_text().splitlines()[1].split("\t")[1] == "18"  # 1-based
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("reference\tvariant\n" + f"{region(native[0])}\t{region(native[1])}\n")
    assert main(["variants", "--pairs", str(pairs), "--checkpoint", str(deepatt), "--out",
                 str(tmp_path / "v.tsv")]) == 0
    assert "note: 2 sequences of exactly 80 nt" in capsys.readouterr().err
    delta = float((tmp_path / "v.tsv").read_text().splitlines()[1].split("\t")[-1])
    want = predict(load_checkpoint(deepatt), native[:2])
    assert abs(delta - (want[1] - want[0])) < 1e-5


def test_evolve_and_interpret_entry_complete_regions(tmp_path, capsys):
    import torch

    from crmnet.cli.interpret import complete_regions
    from crmnet.models import build_model
    from crmnet.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", build_model("crmnet-tiny"))
    fasta = tmp_path / "r.fa"
    fasta.write_text(">r\n" + "ACGT" * 20 + "\n")
    assert main(["evolve", str(fasta), "--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path / "e"),
                 "--generations", "2", "--quiet"]) == 0
    assert capsys.readouterr().err.count("note: 1 sequence of exactly 80 nt") == 1
    rows = (tmp_path / "e" / "trajectory.tsv").read_text().splitlines()
    seq = rows[1].split("\t")[4]
    assert seq == LEFT_FLANK + "ACGT" * 20 + RIGHT_FLANK
    last = rows[-1].split("\t")
    assert last[4].startswith(LEFT_FLANK) and last[4].endswith(RIGHT_FLANK)  # only the region evolves
    assert main(["evolve", str(fasta), "--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path / "f"),
                 "--generations", "1", "--quiet", "--no-flanks"]) == 0
    assert "exactly 80 nt" not in capsys.readouterr().err
    assert (tmp_path / "f" / "trajectory.tsv").read_text().splitlines()[1].split("\t")[4] == "ACGT" * 20
    assert complete_regions(["ACGT" * 20, "ACGT"], VAISHNAV) == [LEFT_FLANK + "ACGT" * 20 + RIGHT_FLANK, "ACGT"]
    assert "1 sequence of exactly 80 nt" in capsys.readouterr().err
