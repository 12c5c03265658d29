"""Readers: every shared file, every txt/csv/FASTA bad-input case, and the fast chunked txt path."""

import gzip

import numpy as np
import pytest

from crmnet.data.encoding import CODE_N, VAISHNAV, Encoding, encode_spans
from crmnet.data.readers import detect_format, read_fasta, read_records, write_fasta
from crmnet.data.txtblocks import TxtBlocks
from crmnet.errors import InputError

SHARED_FILES = [  # path under shared/data, rows, format, sequence column, measured?, predicted?
    ("vaishnav2022/test/Native_complex.csv", 3733, "csv", "sequence", True, True),
    ("vaishnav2022/test/Random_complex.csv", 2954, "csv", "sequence", True, True),
    ("vaishnav2022/test/Random_complex_raw.csv", 2954, "csv", "0", True, False),
    ("vaishnav2022/test/HQ_testdata_complex.txt", 3331, "txt", None, True, False),
    ("vaishnav2022/test/Native_defined.csv", 3782, "csv", "sequence", True, True),
    ("vaishnav2022/test/Random_defined.csv", 5289, "csv", "seq110", True, True),
    ("vaishnav2022/peer_predictions/Random_complex_DeepSEA_model.csv", 2954, "csv", "sequence", True, True),
    ("legnet2023/complex_Native.txt", 3929, "txt", None, False, True),
    ("legnet2023/defined_Native.txt", 3978, "txt", None, False, True),
]


@pytest.mark.parametrize("rel, n, fmt, column, measured, predicted", SHARED_FILES)
def test_every_shared_file_reads(shared, rel, n, fmt, column, measured, predicted):
    value = "predicted" if rel.startswith("legnet") else "measured"
    table = read_records(shared / "data" / rel, value=value)
    assert len(table) == n and table.format == fmt and table.sequence_column == column
    assert (table.measured is not None) == measured and (table.predicted is not None) == predicted
    for values in (table.measured, table.predicted):
        if values is not None:
            assert values.shape == (n,) and np.isfinite(values).all()
    assert table.mapped == 0 and set("".join(table.sequences)) <= set("ACGTN")
    assert table.lines[0] == (2 if fmt == "csv" else 1) and np.all(np.diff(table.lines) == 1)


def test_csv_index_column_and_values(vaishnav_dir):
    table = read_records(vaishnav_dir / "test" / "Native_complex.csv")
    assert table.ids[:2] == ["0", "1"]
    assert table.measured[0] == pytest.approx(13.1688162850333)
    assert table.predicted[0] == pytest.approx(14.333738433356755)
    raw = read_records(vaishnav_dir / "test" / "Random_complex_raw.csv")
    assert raw.ids is None and len(raw.sequences[0]) == 100  # the raw sequence, not the N-padded seq110


def test_random_raw_matches_padded(vaishnav_dir):
    raw = read_records(vaishnav_dir / "test" / "Random_complex_raw.csv")
    padded = read_records(vaishnav_dir / "test" / "Random_complex.csv")
    # Random_complex.csv is the raw sequence, last 110 kept, left-padded with N (Vaishnav's layout).
    want = [s[-110:].rjust(110, "N") for s in raw.sequences]
    assert padded.sequences == want
    np.testing.assert_allclose(raw.measured, padded.measured, rtol=1e-14)  # written at different precision


def test_gzip_reads_like_plain(vaishnav_dir, tmp_path):
    src = vaishnav_dir / "test" / "HQ_testdata_complex.txt"
    gz = tmp_path / "hq.txt.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    a, b = read_records(src), read_records(gz)
    assert a.sequences == b.sequences and np.array_equal(a.measured, b.measured)
    # and through the fast path, with a multi-member gzip file (as ``cat a.gz b.gz`` makes)
    half = src.read_bytes().split(b"\n")
    two = tmp_path / "two.txt.gz"
    two.write_bytes(gzip.compress(b"\n".join(half[:1000]) + b"\n") + gzip.compress(b"\n".join(half[1000:])))
    blocks = list(TxtBlocks(two, chunk_bytes=50_000))
    assert np.array_equal(np.concatenate([k.values for k in blocks]), a.measured)


def write(tmp_path, text: str | bytes, name="in.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("", None, "empty file"),
        ("\n\n", None, "empty file"),
        ("ACGT\t1\nACGT\t\n", 2, "missing value"),
        ("ACGT\t1\nACGT\tNaN\n", 2, "NaN"),
        ("ACGT\t1\nACGT\tnan\n", 2, "NaN"),
        ("ACGT\t1\n\nACGT\tabc\n", 3, "'abc' is not a number"),
        ("ACGT\tinf\n", 1, "not finite"),
        ("ACGT\t1\nACGT\n", 2, "expected 2 tab-separated columns"),
        ("ACGT\t1\nACGT\t1\t2\n", 2, "found 3"),
        ("ACGT\t1\n\t1\n", 2, "empty sequence"),
        ("ACGT\t1\r\nAC-T\t1\r\n", 2, ("invalid character '-' at position 3 of the sequence (allowed: A, C, G, "
                                       "T, N in either case; pass --invalid N to map them to N)")),
        ("ACGT\t1\nACGT 1\n", 2, "expected 2 tab-separated columns"),
        ("ACGT\t1\rACGT\t2\nACGT\t3\n", 1, "lone-CR (old Mac) line ends"),  # a lone CR is named, not split on
    ],
)
@pytest.mark.parametrize("reader", ["read_records", "TxtBlocks"])
def test_bad_txt_names_file_and_line(tmp_path, text, line, words, reader):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        if reader == "read_records":
            read_records(path, "txt")
        else:
            list(TxtBlocks(path))
    assert err.value.line == line and words in str(err.value)
    assert str(err.value).startswith(f"{path}:{line}:" if line else f"{path}:")


def test_blank_lines_and_crlf_are_accepted_and_counted(tmp_path):
    path = write(tmp_path, "ACGT\t1.5\r\n\r\nacgtn\t2\r\n\nGG\t-3e-1")  # no final newline either
    table = read_records(path)
    assert table.sequences == ["ACGT", "acgtn", "GG"] and table.lines.tolist() == [1, 3, 5]
    assert table.measured.tolist() == [1.5, 2.0, -0.3] and table.blank_lines == 2
    stream = TxtBlocks(path, Encoding(length=6))
    (block,) = list(stream)
    assert block.lines.tolist() == [1, 3, 5] and stream.blank_lines == 2
    assert block.codes.tolist() == [[0, 1, 2, 3, 4, 4], [0, 1, 2, 3, 4, 4], [2, 2, 4, 4, 4, 4]]


def test_crlf_without_blank_lines_takes_the_fast_path(tmp_path):
    path = write(tmp_path, "ACGT\t1.5\r\nGGA\t2\r\n")
    (block,) = list(TxtBlocks(path, Encoding(length=5)))
    assert block.codes.tolist() == [[0, 1, 2, 3, 4], [2, 2, 0, 4, 4]] and block.lengths.tolist() == [4, 3]
    assert block.values.tolist() == [1.5, 2.0] and block.lines.tolist() == [1, 2]


def test_invalid_to_n_is_counted(tmp_path):
    path = write(tmp_path, "AXGT\t1\nACGT\t2\nRYCG\t3\n")
    table = read_records(path, invalid="N")
    assert table.sequences == ["ANGT", "ACGT", "NNCG"] and table.mapped == 3
    stream = TxtBlocks(path, Encoding(length=4), invalid="N")
    (block,) = list(stream)
    assert stream.mapped == 3 and block.codes[0].tolist() == [0, CODE_N, 2, 3]


def test_truncated_and_corrupt_gzip(tmp_path):
    body = "".join(f"{'ACGT' * 25}\t{i}.5\n" for i in range(5000)).encode()
    whole = gzip.compress(body)
    cut = write(tmp_path, whole[: len(whole) // 2], "cut.txt.gz")
    for read in (lambda p: read_records(p), lambda p: list(TxtBlocks(p, chunk_bytes=10_000))):
        with pytest.raises(InputError) as err:
            read(cut)
        assert "truncated" in str(err.value) and err.value.line > 1
    bad = write(tmp_path, whole[:100] + bytes(200) + whole[300:], "bad.txt.gz")
    with pytest.raises(InputError, match="corrupt gzip"):
        read_records(bad)


def test_gzip_zero_padding_longer_than_a_read_block_is_ignored(tmp_path):
    # TxtBlocks reads gzip in raw blocks of 64 KiB here: the padding spans several of them.
    padded = write(tmp_path, gzip.compress(b"ACGT\t1.5\nACGA\t2.5\n") + bytes(200_000), "pad.txt.gz")
    assert sum(len(b.values) for b in TxtBlocks(padded, chunk_bytes=10_000)) == 2


def test_chunked_fast_path_matches_exact_reader_and_lines(tmp_path, rng):
    seqs = ["".join(rng.choice(list("ACGTacgt"), size=n)) for n in rng.integers(80, 130, size=3000)]
    rows = [f"{s}\t{v!r}" for s, v in zip(seqs, rng.normal(size=3000).tolist())]
    rows[1000:1000] = ["", ""]  # blank lines inside a chunk
    path = write(tmp_path, "\n".join(rows) + "\n")
    table = read_records(path)
    stream = TxtBlocks(path, VAISHNAV, chunk_bytes=20_000)
    blocks = list(stream)
    assert len(blocks) > 5 and stream.rows == 3000 and stream.blank_lines == 2
    np.testing.assert_array_equal(np.concatenate([b.lines for b in blocks]), table.lines)
    np.testing.assert_array_equal(np.concatenate([b.values for b in blocks]), table.measured)
    np.testing.assert_array_equal(np.concatenate([b.codes for b in blocks]), table.encode(VAISHNAV))
    # an error deep in a later chunk still names its true line
    rows[2500] = rows[2500].replace("\t", "\tx")
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError) as err:
        list(TxtBlocks(path, chunk_bytes=20_000))
    assert err.value.line == 2501 and "is not a number" in str(err.value)


def naive_encode(seq: str, enc: Encoding) -> list[int]:
    codes = ["ACGTN".index(c) if c in "ACGTN" else CODE_N for c in seq.upper()]
    body = enc.body_length
    codes = codes[:body] if enc.truncate == "end" else codes[-body:]
    pad = [CODE_N] * (body - len(codes))
    codes = codes + pad if enc.pad == "end" else pad + codes
    return ["ACGTN".index(c) for c in enc.prefix] + codes


@pytest.mark.parametrize("enc", [Encoding(length=12), VAISHNAV, Encoding(length=9, pad="start"),
                                 Encoding(length=10, truncate="start", prefix="GA")])
def test_encode_spans_matches_a_naive_encoder(enc, rng):
    seqs = ["".join(rng.choice(list("ACGTNacgXY"), size=n)) for n in rng.integers(1, 130, size=300)]
    sep = "\t0.5\n"
    text = sep.join(seqs).encode()
    lengths = np.array([len(s) for s in seqs])
    starts = np.concatenate(([0], np.cumsum(lengths + len(sep))[:-1]))
    codes, mapped = encode_spans(np.frombuffer(text, np.uint8), starts, lengths, enc, invalid="N")
    assert codes.tolist() == [naive_encode(s, enc) for s in seqs]
    assert mapped == sum(s.count("X") + s.count("Y") for s in seqs)


def test_detect_format_and_override(tmp_path, vaishnav_dir):
    assert detect_format(vaishnav_dir / "test" / "Native_complex.csv") == "csv"
    assert detect_format(vaishnav_dir / "test" / "HQ_testdata_complex.txt") == "txt"
    fa = write(tmp_path, "\n>s1 first\nACGT\nAC\n>s2\nGG\n", "x.fa")
    assert detect_format(fa) == "fasta"
    with pytest.raises(InputError, match="cannot tell the format"):
        read_records(write(tmp_path, "hello world\n", "one.txt"))
    with pytest.raises(InputError, match="expected 2 tab-separated"):
        read_records(fa, "txt")


def test_csv_bad_inputs(tmp_path):
    head = ",sequence,Measured Expression\n"
    cases = [
        (head + "0,ACGT,1\n1,ACGT\n", 3, "expected 3 comma-separated columns"),
        (head + "0,ACGT,1\n1,ACGT,\n", 3, "missing 'Measured Expression' value"),
        (head + "0,ACGT,nan\n", 2, "NaN"),
        (head + "0,ACGT,1\n1,ACZT,2\n", 3, "invalid character 'Z'"),
        (",dna,Measured Expression\n0,ACGT,1\n", 1, "no sequence column"),
        (head, 1, "no records"),
    ]
    for text, line, words in cases:
        with pytest.raises(InputError) as err:
            read_records(write(tmp_path, text, "t.csv"))
        assert err.value.line == line and words in str(err.value), text


def test_fasta_round_trip_and_errors(tmp_path):
    out = tmp_path / "out.fa"
    write_fasta(out, ["a", "b"], ["ACGTACGTAC", "GGN"], width=4)
    assert out.read_text() == ">a\nACGT\nACGT\nAC\n>b\nGGN\n"
    table = read_fasta(out)
    assert table.ids == ["a", "b"] and table.sequences == ["ACGTACGTAC", "GGN"] and table.lines.tolist() == [1, 5]
    with pytest.raises(FileExistsError):
        write_fasta(out, ["a"], ["A"])
    for text, line, words in [("ACGT\n>a\nAC\n", 1, "before the first"), (">a\n>b\nAC\n", 1, "no sequence"),
                              (">a\nAC\n>\nGG\n", 3, "empty FASTA header"), (">a\nA-C\n", 1, "invalid character")]:
        with pytest.raises(InputError) as err:
            read_fasta(write(tmp_path, text, "bad.fa"))
        assert err.value.line == line and words in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_records(tmp_path / "nope.txt")


def test_one_stack_reads_every_layout_and_named_columns(tmp_path):
    from crmnet.data.readers import Columns, iter_records

    cases = {  # text → (format, ids, sequences, measured, predicted)
        "ACGT\nGGCC\n": ("txt", None, ["ACGT", "GGCC"], None, None),
        "r1\tACGT\nr2\tGG\n": ("txt", ["r1", "r2"], ["ACGT", "GG"], None, None),
        "name\tseq\tMeasured Expression\nx\tAC\t1.5\n": ("tsv", ["x"], ["AC"], [1.5], None),
        "sequence\nACGT\n": ("tsv", None, ["ACGT"], None, None),
        ",sequence,Predicted Expression\n7,AC,2.0\n": ("csv", ["7"], ["AC"], None, [2.0]),
    }
    for text, (fmt, ids, seqs, measured, predicted) in cases.items():
        table = read_records(write(tmp_path, text, "t.in"))
        assert (table.format, table.ids, table.sequences) == (fmt, ids, seqs), text
        assert (None if table.measured is None else table.measured.tolist()) == measured, text
        assert (None if table.predicted is None else table.predicted.tolist()) == predicted, text
    named = write(tmp_path, "seq110\tmeanEL\tedvPred\nACGT\t1.0\t1.25\nGG\t2.0\t2.5\n", "v.tsv")
    table = read_records(named, columns=Columns(measured="meanEL", predicted="edvPred"))
    assert table.measured.tolist() == [1.0, 2.0] and table.predicted.tolist() == [1.25, 2.5]
    with pytest.raises(InputError, match=r"v.tsv:1: no measured column 'EL'"):
        read_records(named, columns=Columns(measured="EL"))
    with pytest.raises(InputError, match="no header line"):
        read_records(write(tmp_path, "ACGT\t1\n"), columns=Columns(measured="x"))
    # Streaming: chunks of records with their true lines, blank lines counted.
    chunks = list(iter_records(write(tmp_path, "sequence\nA\n\nC\nG\n", "s.tsv"), chunk_size=2))
    assert [c.sequences for c in chunks] == [["A", "C"], ["G"]] and chunks[0].lines.tolist() == [2, 4]
    assert sum(c.blank_lines for c in chunks) == 1
