"""Design constraints (crmnet.design.constraints): property tests against plain string implementations."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK
from crmnet.design.constraints import (
    IUPAC,
    ConstraintConfig,
    Constraints,
    min_pairwise_distance,
    parse_forbid,
    parse_gc,
    parse_ranges,
    pick_distinct,
    reverse_complement_iupac,
)
from crmnet.design.oracle import encode_sequences
from crmnet.errors import InputError

DNA = st.text(alphabet="ACGT", min_size=1, max_size=40)
PATTERN = st.text(alphabet="".join(sorted(IUPAC)), min_size=1, max_size=5)
FAST = settings(max_examples=150, deadline=None)


def _codes(seqs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    codes, lengths = encode_sequences(seqs)
    return codes, lengths


def _window(draw_lo: int, draw_hi: int, length: int) -> tuple[int, int]:
    lo = min(draw_lo, length - 1)
    return lo, max(lo + 1, min(draw_hi, length))


def _regex(pattern: str) -> str:
    return "".join(f"[{IUPAC[c]}]" for c in pattern)


@FAST
@given(seq=DNA, patterns=st.lists(PATTERN, min_size=1, max_size=3), lo=st.integers(0, 40), hi=st.integers(0, 40))
def test_forbidden_sites_match_a_regex_on_both_strands_within_the_window(seq, patterns, lo, hi):
    lo, hi = _window(lo, hi, len(seq))
    codes, _ = _codes([seq])
    got = Constraints(ConstraintConfig(forbid=tuple(patterns))).forbidden_hits(codes, np.array([[lo, hi]]))[0]
    strands = {p for q in patterns for p in (q, reverse_complement_iupac(q))}
    want = sum(1 for p in strands for j in range(len(seq) - len(p) + 1)
               if re.fullmatch(_regex(p), seq[j : j + len(p)]) and j < hi and j + len(p) > lo)
    assert got == want


@FAST
@given(pattern=PATTERN)
def test_reverse_complement_of_iupac_is_an_involution_and_matches_the_complement_strand(pattern):
    rc = reverse_complement_iupac(pattern)
    assert reverse_complement_iupac(rc) == pattern.replace("U", "T")
    # every concrete sequence the pattern matches has its reverse complement matched by rc
    for concrete in itertools.islice(itertools.product(*(IUPAC[c] for c in pattern)), 20):
        s = "".join(concrete)
        assert re.fullmatch(_regex(rc), s.translate(str.maketrans("ACGT", "TGCA"))[::-1])


@FAST
@given(seq=DNA, lo=st.integers(0, 40), hi=st.integers(0, 40))
def test_longest_homopolymer_touching_the_window_counts_the_whole_run(seq, lo, hi):
    lo, hi = _window(lo, hi, len(seq))
    codes, _ = _codes([seq])
    got = Constraints().longest_run(codes, np.array([[lo, hi]]))[0]
    want, at = 0, 0
    for _, group in itertools.groupby(seq):
        n = len(list(group))
        if at < hi and at + n > lo:
            want = max(want, n)
        at += n
    assert got == want


@FAST
@given(seq=DNA, lo=st.integers(0, 40), hi=st.integers(0, 40), gc=st.tuples(st.floats(0, 1), st.floats(0, 1)))
def test_gc_check_is_the_fraction_of_g_and_c_in_the_window(seq, lo, hi, gc):
    lo, hi = _window(lo, hi, len(seq))
    gc = tuple(sorted(gc))
    codes, _ = _codes([seq])
    c = Constraints(ConstraintConfig(gc=gc))
    part = seq[lo:hi]
    frac = (part.count("G") + part.count("C")) / len(part)
    assert c.gc_fraction(codes, np.array([[lo, hi]]))[0] == pytest.approx(frac)
    assert c.check(codes, np.array([[lo, hi]]))["gc"][0] == (gc[0] - 1e-9 <= frac <= gc[1] + 1e-9)


@FAST
@given(data=st.data(), seq=st.text(alphabet="ACGT", min_size=5, max_size=40))
def test_protected_positions_and_edits_compare_with_the_start(data, seq):
    mutant = data.draw(st.text(alphabet="ACGT", min_size=len(seq), max_size=len(seq)))
    lo = data.draw(st.integers(1, len(seq)))
    hi = data.draw(st.integers(lo, len(seq)))
    max_edits = data.draw(st.integers(0, len(seq)))
    c = Constraints(ConstraintConfig(protect=((lo, hi),), max_edits=max_edits))
    codes, _ = _codes([mutant])
    start, _ = _codes([seq])
    res = c.check(codes, np.array([[0, len(seq)]]), start)
    assert res["protect"][0] == (mutant[lo - 1 : hi] == seq[lo - 1 : hi])
    assert res["edits"][0] == (sum(a != b for a, b in zip(seq, mutant)) <= max_edits)
    mutable = c.mutable(np.array([[0, len(seq)]]), len(seq))[0]
    assert [not m for m in mutable] == [lo <= j + 1 <= hi for j in range(len(seq))]


@FAST
@given(rows=st.lists(st.text(alphabet="ACGT", min_size=12, max_size=12), min_size=1, max_size=25),
       k=st.integers(1, 10), d=st.integers(0, 12))
def test_pick_distinct_keeps_every_pair_at_least_min_distance_apart(rows, k, d):
    codes, _ = _codes(rows)
    picked = pick_distinct(codes, np.arange(len(codes)), k, d)
    assert len(picked) <= k and len(set(picked)) == len(picked)
    if len(picked) > 1:
        assert min_pairwise_distance(codes[picked]) >= d
    # greedy: a row left out while there was room is too close to one picked before it
    for i in range(len(codes)):
        if i not in picked and len([p for p in picked if p < i]) < k:
            assert any((codes[i] != codes[p]).sum() < d for p in picked if p < i)


def test_a_run_wholly_in_the_flank_does_not_count_but_one_the_design_extends_does():
    c = Constraints(ConstraintConfig(max_homopolymer=6))
    var = "ACGT" * 20
    # the left flank holds TTTTTTT (7) and ends in C: CCCCCC at the window's start makes a run of 7
    seqs = [LEFT_FLANK + var + RIGHT_FLANK, LEFT_FLANK + "CCCCCC" + var[6:] + RIGHT_FLANK]
    codes, _ = _codes(seqs)
    windows = np.array([[17, 97], [17, 97]])
    assert c.longest_run(codes, windows).tolist() == [1, 7]
    assert c.check(codes, windows)["homopolymer"].tolist() == [True, False]


def test_a_site_in_the_fixed_flank_is_an_error_before_any_search():
    codes, _ = _codes([LEFT_FLANK + "A" * 80 + RIGHT_FLANK])
    with pytest.raises(InputError, match="wholly in positions that may not change"):
        Constraints(ConstraintConfig(forbid=("CACATC",))).check_fixed(codes, np.array([[17, 97]]))
    # the same site is fine when it reaches into the window (it can be designed away)
    Constraints(ConstraintConfig(forbid=("CATCAA",))).check_fixed(codes, np.array([[17, 97]]))


def test_parsers_and_config_errors_name_the_option():
    assert parse_ranges("1-17, 40-45,60") == ((1, 17), (40, 45), (60, 60))
    assert parse_gc("0.35-0.60") == (0.35, 0.6)
    assert parse_forbid("ggtctc, GAATTC,") == ("GGTCTC", "GAATTC")
    for bad, option in [(lambda: parse_ranges("5-2"), "--protect"), (lambda: parse_gc("0.3"), "--gc"),
                        (lambda: ConstraintConfig(gc=(0.7, 0.2)), "--gc"),
                        (lambda: ConstraintConfig(forbid=("GGTXTC",)), "--forbid"),
                        (lambda: ConstraintConfig(max_homopolymer=0), "--max-homopolymer")]:
        with pytest.raises(InputError, match=option):
            bad()
    cfg = ConstraintConfig(protect=((1, 3),), gc=(0.3, 0.6), forbid=("GAATTC",), max_homopolymer=6, min_distance=4)
    assert ConstraintConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.active() == ["protect", "gc", "forbid", "homopolymer", "distance"]
