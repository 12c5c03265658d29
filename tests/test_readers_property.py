"""Property tests of the readers (hypothesis, derandomized): any bytes give records or an InputError, never
a traceback; valid files always round-trip, through the exact reader and the fast one alike."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmnet.data.encoding import CRMNET, decode
from crmnet.data.jaspar import read_meme
from crmnet.data.readers import FORMATS, iter_records, read_records, write_fasta
from crmnet.data.txtblocks import TxtBlocks
from crmnet.errors import InputError

FAST = settings(max_examples=40, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

VALID_TXT = b"ACGTACGT\t1.5\nacgtnn\t-2e-3\n\nGGGG\t.5\r\nTTTT\t3\n"
VALID_CSV = b"id,sequence,Measured Expression\na,ACGT,1.0\nb,GGCC,2.5\n"
VALID_FASTA = b">s1 first\nACGT\nACGT\n>s2\nGGNN\n"
VALID_MEME = (b"MEME version 4\n\nALPHABET= ACGT\n\nMOTIF M1 one\nletter-probability matrix: alength= 4 w= 2 "
              b"nsites= 20 E= 0\n0.25 0.25 0.25 0.25\n0.1 0.2 0.3 0.4\n")


def _read_everything(path) -> None:
    """Every reader on ``path``: each either reads it or raises InputError (anything else fails the test)."""
    for fmt in FORMATS:
        for invalid in ("error", "N"):
            try:
                read_records(path, fmt, invalid=invalid)
            except InputError:
                pass
        try:
            for _ in iter_records(path, fmt, chunk_size=2, chunk_bytes=16):
                pass
        except InputError:
            pass
    for invalid in ("error", "N"):
        try:
            list(TxtBlocks(path, invalid=invalid, chunk_bytes=64))
        except InputError:
            pass


@FAST
@given(data=st.binary(max_size=300), gz=st.booleans())
def test_random_bytes_never_traceback(tmp_path, data, gz):
    path = tmp_path / "random.in"
    path.write_bytes(gzip.compress(data) if gz else data)
    _read_everything(path)
    try:
        read_meme(path)
    except InputError:
        pass


@st.composite
def mutated(draw, valid: bytes) -> bytes:
    """``valid`` with a few random byte edits: replace, insert or delete."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 44, 62, 95, 0xEF, 0xFF, *b"ACGTN.e-+1"]))
        if kind == "insert" or at == len(data):
            data.insert(at, byte)
        elif kind == "replace":
            data[at] = byte
        else:
            del data[at]
    return bytes(data)


@FAST
@given(data=st.one_of(mutated(VALID_TXT), mutated(VALID_CSV), mutated(VALID_FASTA), mutated(VALID_MEME)))
def test_mutated_valid_files_never_traceback(tmp_path, data):
    path = tmp_path / "mutated.in"
    path.write_bytes(data)
    _read_everything(path)
    try:
        read_meme(path)
    except InputError:
        pass


SEQS = st.lists(st.text(alphabet="ACGTNacgtn", min_size=1, max_size=140), min_size=1, max_size=20)
VALUES = st.floats(allow_nan=False, allow_infinity=False, width=32)


@FAST
@given(seqs=SEQS, data=st.data(), crlf=st.booleans(), bom=st.booleans())
def test_valid_files_round_trip(tmp_path, seqs, data, crlf, bom):
    values = data.draw(st.lists(VALUES, min_size=len(seqs), max_size=len(seqs)))
    end = "\r\n" if crlf else "\n"
    start = b"\xef\xbb\xbf" if bom else b""
    txt = tmp_path / "t.txt"
    txt.write_bytes(start + "".join(f"{s}\t{v!r}{end}" for s, v in zip(seqs, values)).encode())
    table = read_records(txt)
    assert table.sequences == seqs and table.measured.tolist() == values
    fast = list(TxtBlocks(txt, chunk_bytes=64))  # small chunks: records cross chunk boundaries
    codes = np.concatenate([b.codes for b in fast])
    assert np.array_equal(codes, table.encode(CRMNET))
    assert np.concatenate([b.values for b in fast]).tolist() == values
    first = len(CRMNET.prefix)
    body = decode(codes[:, first : first + CRMNET.body_length])
    assert [b.rstrip("N") for b in body] == [s.upper()[: CRMNET.body_length].rstrip("N") for s in seqs]

    csv = tmp_path / "t.csv"
    csv.write_bytes(start + ("id,sequence,Measured Expression" + end + "".join(
        f"r{i},{s},{v!r}{end}" for i, (s, v) in enumerate(zip(seqs, values)))).encode())
    table = read_records(csv)
    assert table.ids == [f"r{i}" for i in range(len(seqs))] and table.sequences == seqs
    assert table.measured.tolist() == values

    fasta = tmp_path / "t.fa"
    ids = [f"seq{i}" for i in range(len(seqs))]
    write_fasta(fasta, ids, seqs, overwrite=True, width=data.draw(st.integers(0, 30)))
    table = read_records(fasta)
    assert table.ids == ids and table.sequences == seqs
