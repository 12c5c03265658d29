"""Yeast JASPAR motifs: species filtering, lookup, pseudocounts, MEME round trip."""

from __future__ import annotations

import numpy as np
import pytest

from crmnet.data.jaspar import PAPER_MOTIFS, PSEUDOCOUNT, Motif, load_yeast_motifs, read_meme, write_meme
from crmnet.errors import InputError


def test_paper_motifs_are_the_yeast_matrices():
    motifs = load_yeast_motifs(PAPER_MOTIFS)
    assert [m.name for m in motifs] == list(PAPER_MOTIFS)
    assert [m.matrix_id for m in motifs] == ["MA0344.1", "MA0363.3", "MA0265.3", "MA0277.1", "MA0359.3"]
    # ABF1/AZF1 also exist for Arabidopsis (MA0570, MA2372): the yeast ones must win.
    assert load_yeast_motifs(["abf1"])[0].consensus == "TCGTATATAGTGAT"
    assert load_yeast_motifs(["AZF1"])[0].consensus == "AAAAAGAAA"
    reb1 = motifs[1]
    assert reb1.consensus == "ATTACCCGG"
    assert reb1.counts[:, 0].tolist() == [281, 79, 281, 50]  # JASPAR rows A, C, G, T


def test_all_yeast_and_lookup_by_id():
    everything = load_yeast_motifs()
    assert len(everything) == 169
    assert len({m.name for m in everything}) == len(everything)
    assert load_yeast_motifs(["MA0363.3"]) == load_yeast_motifs(["MA0363"]) == load_yeast_motifs(["REB1"])
    older = load_yeast_motifs(["REB1"], release="JASPAR2022")[0]
    assert older.matrix_id == "MA0363.2"


def test_unknown_names_explain_themselves():
    with pytest.raises(InputError, match="close matches: REB1"):
        load_yeast_motifs(["REB2"])
    with pytest.raises(InputError, match="only for other species: MA0035"):
        load_yeast_motifs(["GATA1"])  # a human factor, not in yeast
    with pytest.raises(InputError, match="cannot open JASPAR release"):
        load_yeast_motifs(["REB1"], release="JASPAR1999")


def test_pwm_pseudocount_and_log_odds():
    m = Motif("toy", "X1", np.array([[10, 0], [0, 0], [0, 10], [0, 0]]))
    np.testing.assert_allclose(m.pwm.sum(axis=0), 1.0)
    expected_top = (10 + PSEUDOCOUNT / 4) / (10 + PSEUDOCOUNT)
    assert m.pwm[0, 0] == pytest.approx(expected_top)
    assert m.pwm[1, 0] == pytest.approx(PSEUDOCOUNT / 4 / (10 + PSEUDOCOUNT))
    np.testing.assert_allclose(m.log_odds(), np.log2(m.pwm / 0.25))
    np.testing.assert_allclose(m.log_odds([0.3, 0.2, 0.2, 0.3])[1], np.log2(m.pwm[1] / 0.2))
    rc = m.reverse_complement()
    assert rc.consensus == "CT" and m.consensus == "AG"
    with pytest.raises(ValueError):
        m.counts[0, 0] = 3  # read-only
    with pytest.raises(ValueError, match="shape"):
        Motif("bad", "X", np.ones((5, 3)))


def test_meme_round_trip(tmp_path):
    motifs = load_yeast_motifs(PAPER_MOTIFS)
    path = write_meme(motifs, tmp_path / "yeast.meme")
    back = read_meme(path)
    assert [(m.name, m.matrix_id) for m in back] == [(m.name, m.matrix_id) for m in motifs]
    for a, b in zip(motifs, back):
        np.testing.assert_allclose(b.counts / b.counts.sum(0), a.counts / a.counts.sum(0), atol=1e-5)
        assert b.counts.sum(0).max() == pytest.approx(a.counts.sum(0).max())  # nsites kept
    with pytest.raises(FileExistsError):
        write_meme(motifs, path)


def test_meme_readable_by_memelite(tmp_path):
    memelite_io = pytest.importorskip("memelite.io")
    motifs = load_yeast_motifs(["REB1", "RAP1"])
    path = write_meme(motifs, tmp_path / "m.meme")
    pwms = memelite_io.read_meme(str(path))
    assert list(pwms) == ["MA0363.3 REB1", "MA0359.3 RAP1"]
    np.testing.assert_allclose(pwms["MA0363.3 REB1"], motifs[0].counts / motifs[0].counts.sum(0), atol=1e-5)


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        ("MEME version 4\n\nALPHABET= ACGU\n", "DNA alphabet", 3),
        ("MEME version 4\n", "no MOTIF", None),
        ("MOTIF a\nletter-probability matrix: alength= 4 w= 2\n0.5 0.5 0 0\n", "file ends", 3),
        ("MOTIF a\nletter-probability matrix: alength= 4 w= 1\n0.5 0.5 0.5 0\n", "summing to 1", 3),
        ("MOTIF a\nletter-probability matrix: alength= 4 w= 1\n0.5 x 0.5 0\n", "not numbers", 3),
        ("MOTIF a\nMOTIF b\n", "no 'letter-probability", 1),
        ("MOTIF a\nletter-probability matrix: alength= 4 w= two\n", "must be numbers", 2),
        ("MOTIF a\nletter-probability matrix: alength= 4 w= 1 nsites= -5\n0.25 0.25 0.25 0.25\n", "nsites", 2),
        ("MOTIF a\nletter-probability matrix: alength= 4 w= 1\nnan 0.5 0.5 0\n", "summing to 1", 3),
    ],
)
def test_bad_meme_files(tmp_path, text, problem, line):
    path = tmp_path / "bad.meme"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as info:
        read_meme(path)
    assert info.value.line == line
