"""predict(): golden values from a hand-set model, batch-size invariance, encoding policy, streaming files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from torch import nn

from crmnet.data.encoding import CRMNET, Encoding, encode
from crmnet.data.readers import iter_records
from crmnet.errors import InputError, OutputExistsError
from crmnet.evaluation.predict import EncodingStats, predict, predict_file

ENC = Encoding(length=12, pad="end", truncate="end", channels="NACGT")


class GCCount(nn.Module):
    """Hand-set model: prediction = number of G/C + 0.5 per N.  x: (B, 5, 12) → (B,)."""

    encoding = ENC

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.5, 0.0, 1.0, 1.0, 0.0]))  # channels N A C G T

    def forward(self, x):
        return torch.einsum("bcl,c->b", x, self.w)


class TinyConv(nn.Module):
    """A seeded random conv net, to check batch-size invariance of real convolutions.  x: (B, 5, 12)."""

    encoding = ENC

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv1d(5, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5),
                                 nn.Flatten(), nn.Linear(8 * 12, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def test_golden_values_and_encoding_policy():
    model = GCCount()
    seqs = ["ACGTGG", "acgtgg", "GGGGGGGGGGGGCCCC", "ATATATATATAT", "NNNN"]
    stats = EncodingStats()
    out = predict(model, seqs, batch_size=2, stats=stats)
    # 4 GC + 6 N of padding · 0.5; lower case is the same; the first 12 of 16 kept (12 G); no GC; 12 N.
    np.testing.assert_allclose(out, [7.0, 7.0, 12.0, 0.0, 6.0])
    assert out.dtype == np.float32
    assert (stats.n, stats.truncated, stats.padded, stats.lowercase, stats.mapped_to_n) == (5, 1, 3, 1, 0)
    msg = stats.message(ENC)
    assert "1 longer than 12 nt were truncated (the first 12 nt kept)" in msg
    assert msg.startswith("note: 5 sequences encoded for the model's input of 12 nt;")
    assert "3 of 4-6 nt were padded with N at the end to 12 nt" in msg
    assert "lower-case" in msg


def test_padding_is_reported_as_information_with_the_model_input_length():
    stats = EncodingStats()
    stats.add(["A" * 110] * 1000, CRMNET, 0)
    assert stats.message(CRMNET) == ("note: 1,000 sequences encoded for the model's input of 112 nt; 1,000 of 110 nt "
                                     "were padded with N at the end to 112 nt.")
    assert stats.padded_lengths == (110, 110)


def test_trimmed_and_flanked_models_count_lengths_after_the_trim():
    # LegNet's released convention: the first 17 nt dropped, the rest padded at the start with plasmid.
    legnet = Encoding(length=150, pad="start", truncate="start", channels="AGCT", unknown_fill=0.25,
                      trim_start=17, flank="ACGT" * 37 + "AC")
    stats = EncodingStats()
    stats.add(["A" * 110] * 3 + ["C" * 170, "G" * 5], legnet, 0)
    # 110 - 17 = 93 and max(5 - 17, 0) = 0 are padded; 170 - 17 = 153 > 150 is truncated
    assert (stats.padded, stats.truncated, stats.padded_lengths) == (4, 1, (0, 93))
    msg = stats.message(legnet)
    assert "the first 17 nt of each were dropped" in msg
    assert "4 of 0-93 nt (after the drop) were padded at the start with the model's 150-nt plasmid flank to 150 nt" \
        in msg
    assert "1 longer than 150 nt were truncated (the last 150 nt kept)" in msg


def test_codes_input_matches_strings():
    model = GCCount()
    seqs = ["ACGTGG", "GGCCAATT", "T"]
    codes, _ = encode(seqs, ENC)
    np.testing.assert_array_equal(predict(model, codes), predict(model, seqs))
    with pytest.raises(ValueError, match=r"shape \(n, 12\)"):
        predict(model, codes[:, :10])


def test_results_do_not_depend_on_batch_size_and_training_flag_is_restored():
    model = TinyConv()
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), size=rng.integers(8, 16))) for _ in range(57)]
    model.train()
    ref = predict(model, seqs, batch_size=1)
    assert model.training  # restored after prediction in eval mode
    for bs in (7, 57, 1024):
        np.testing.assert_allclose(predict(model, seqs, batch_size=bs), ref, rtol=1e-6, atol=1e-6)
    # Dropout was off: two calls agree exactly.
    np.testing.assert_array_equal(predict(model, seqs, batch_size=7), predict(model, seqs, batch_size=7))


def test_invalid_characters_error_or_map_to_n():
    model = GCCount()
    with pytest.raises(InputError, match=r"seqs.txt:3: invalid character 'X'"):
        predict(model, ["ACGT", "GGGG", "ACXT"], source="seqs.txt")
    stats = EncodingStats()
    out = predict(model, ["ACXT", "GGGG"], invalid="N", stats=stats)
    np.testing.assert_allclose(out, [1.0 + 0.5 * 9, 4.0 + 0.5 * 8])
    assert stats.mapped_to_n == 1
    assert "1 characters outside ACGTN were mapped to N" in stats.message(ENC)


def _read_tsv(path):
    with open(path) as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh]
    assert rows[0] == ["id", "sequence", "prediction"]
    return rows[1:]


def test_fasta_round_trips_identifiers(tmp_path):
    fasta = tmp_path / "in.fa"
    fasta.write_text(">seq_one some description\nACGT\nGG\n\n>second\nattt\n>third|x\nCCCCCCCCCCCCCCCC\n")
    out = tmp_path / "pred.tsv"
    stats = predict_file(GCCount(), fasta, out, batch_size=2, chunk_size=2, progress=False)
    rows = _read_tsv(out)
    assert [r[0] for r in rows] == ["seq_one", "second", "third|x"]
    assert [r[1] for r in rows] == ["ACGTGG", "attt", "CCCCCCCCCCCCCCCC"]
    np.testing.assert_allclose([float(r[2]) for r in rows], [7.0, 4.0, 12.0])
    assert (stats.n, stats.truncated, stats.padded, stats.lowercase) == (3, 1, 2, 1)


def test_tables_with_and_without_header_and_gzip(tmp_path):
    model = GCCount()
    csv_in = tmp_path / "in.csv"
    csv_in.write_text(",sequence,Measured Expression\n7,GGGG,1.0\n9,AAAA,2.0\n")
    predict_file(model, csv_in, tmp_path / "a.tsv", progress=False)
    assert [(r[0], r[2]) for r in _read_tsv(tmp_path / "a.tsv")] == [("7", "8"), ("9", "4")]

    named = tmp_path / "named.tsv"
    named.write_text("name\tseq\nx\tCC\ny\tTT\n")
    predict_file(model, named, tmp_path / "b.tsv", progress=False)
    assert [r[0] for r in _read_tsv(tmp_path / "b.tsv")] == ["x", "y"]

    bare = tmp_path / "bare.txt.gz"  # headerless training-file format, gzip: ids are input line numbers
    with gzip.open(bare, "wt") as fh:
        fh.write("GGGG\t1.5\n\nCCAA\t2.0\n")
    predict_file(model, bare, tmp_path / "c.tsv", progress=False)
    assert [(r[0], r[1]) for r in _read_tsv(tmp_path / "c.tsv")] == [("1", "GGGG"), ("3", "CCAA")]

    ided = tmp_path / "ided.tsv"
    ided.write_text("r1\tGGGG\nr2\tAAAA\n")
    predict_file(model, ided, tmp_path / "d.tsv", progress=False)
    assert [r[0] for r in _read_tsv(tmp_path / "d.tsv")] == ["r1", "r2"]


def test_chunks_stream_in_order(tmp_path):
    path = tmp_path / "many.fa"
    path.write_text("".join(f">s{i}\nACGT\nA\n" for i in range(10)))
    chunks = list(iter_records(path, chunk_size=4))
    assert [len(c.ids) for c in chunks] == [4, 4, 2]
    assert [i for c in chunks for i in c.ids] == [f"s{i}" for i in range(10)]
    assert chunks[1].lines[0] == 13  # record s4 starts on line 13


def test_input_larger_than_one_read_chunk_streams_whole(tmp_path):
    # Over 1 MiB: the reader hands over several line chunks, zero-copy views after the first.
    path = tmp_path / "big.fa"
    n = 40_000
    path.write_text("".join(f">s{i}\n{'ACGT' * 5}\n" for i in range(n)))
    assert path.stat().st_size > 1 << 20
    chunks = list(iter_records(path, chunk_size=10_000))
    assert [i for c in chunks for i in c.ids] == [f"s{i}" for i in range(n)]
    assert chunks[-1].lines[-1] == 2 * n - 1


@pytest.mark.parametrize(
    ("text", "fmt", "match"),
    [
        # A FASTA record is reported at its header line; the message gives the position in the sequence.
        (">a\nACGT\n>b\nAC\nGZT\n", "auto", r"in.fa:3: invalid character 'Z' at position 4"),
        ("ACGT\n>a\nACGT\n", "fasta", r"in.fa:1: sequence text before the first FASTA header"),
        ("ACGT\n>a\nACGT\n", "auto", r"in.fa:2: invalid character '>'"),
        (">a\n>b\nACGT\n", "auto", r"in.fa:1: FASTA record 'a' has no sequence"),
        ("id,value\nx,1\n", "auto", r"in.fa:1: no sequence column"),
        ("\n\n", "auto", "empty"),
    ],
)
def test_bad_input_names_file_and_line_and_leaves_no_output(tmp_path, text, fmt, match):
    src = tmp_path / "in.fa"
    src.write_text(text)
    out = tmp_path / "out.tsv"
    with pytest.raises(InputError, match=match):
        predict_file(GCCount(), src, out, fmt=fmt, chunk_size=1, progress=False)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.tsv*"))


def test_invalid_character_in_a_later_chunk_names_its_true_line(tmp_path):
    src = tmp_path / "in.tsv"
    src.write_text("sequence\n" + "ACGT\n" * 5 + "AC-T\n")
    with pytest.raises(InputError, match=r"in.tsv:7: invalid character '-'"):
        predict_file(GCCount(), src, tmp_path / "o.tsv", chunk_size=2, batch_size=1, progress=False)


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    src = tmp_path / "in.fa"
    src.write_text(">a\nGG\n")
    out = tmp_path / "out.tsv"
    out.write_text("old")
    with pytest.raises(OutputExistsError):
        predict_file(GCCount(), src, out, progress=False)
    assert out.read_text() == "old"
    predict_file(GCCount(), src, out, overwrite=True, progress=False)
    assert _read_tsv(out) == [["a", "GG", "7"]]


def test_cli_predict_round_trips_a_checkpoint(tmp_path, capsys):
    from crmnet.cli import main
    from crmnet.models.checkpoint import load_checkpoint, save_checkpoint
    from crmnet.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("crmnet-tiny")
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, model)
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGT"), size=rng.integers(100, 120))) for _ in range(24)]
    seqs[3] = seqs[3].lower()
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">r{i} desc\n{s[:60]}\n{s[60:]}\n" for i, s in enumerate(seqs)))
    out = tmp_path / "pred.tsv"
    rc = main(["predict", str(fasta), "--checkpoint", str(ckpt), "--out", str(out), "--batch-size", "10",
               "--no-progress"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "note: 24 sequences encoded for the model's input of 112 nt" in err and "lower-case" in err
    rows = _read_tsv(out)
    assert [r[0] for r in rows] == [f"r{i}" for i in range(24)]
    assert [r[1] for r in rows] == seqs
    loaded = load_checkpoint(ckpt)
    expected = predict(loaded, seqs, batch_size=24)
    np.testing.assert_allclose([float(r[2]) for r in rows], expected, rtol=1e-5, atol=1e-5)
    # The same model, one sequence at a time: batch size does not change the predictions.
    np.testing.assert_allclose(predict(loaded, seqs[:5], batch_size=1), expected[:5], rtol=1e-5, atol=1e-5)
    assert main(["predict", str(fasta), "--checkpoint", str(ckpt), "--out", str(out), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
