import numpy as np
import pytest
import torch

from crmnet.data.encoding import (
    CRMNET,
    VAISHNAV,
    Encoding,
    decode,
    encode,
    onehot,
    onehot_table,
    relayout,
    revcomp_onehot,
    without_invalid_hint,
)
from crmnet.errors import InputError


def test_codes_and_lowercase():
    codes, mapped = encode(["ACGTN", "acgtn"], Encoding(length=6))
    assert mapped == 0
    assert codes.tolist() == [[0, 1, 2, 3, 4, 4], [0, 1, 2, 3, 4, 4]]


def test_crmnet_truncates_and_pads_at_end():
    codes, _ = encode(["ACGTAC", "AC"], Encoding(length=4))
    assert decode(codes) == ["ACGT", "ACNN"]


def test_vaishnav_keeps_last_and_pads_left():
    codes, _ = encode(["ACGTAC", "AC"], Encoding(length=4, pad="start", truncate="start", channels="ACGT"))
    assert decode(codes) == ["GTAC", "NNAC"]


def test_invalid_character_names_source_and_line():
    with pytest.raises(InputError) as err:
        encode(["ACGT", "ACXT"], source="in.txt", first_line=10)
    assert err.value.line == 11 and "in.txt:11" in str(err.value) and "'X'" in str(err.value)
    with pytest.raises(InputError, match="invalid character 'é' at position 3"):  # one byte per character
        encode(["ACéT"])
    # the hint names the flag that maps such characters to N; design commands (no such flag) drop it
    assert "pass --invalid N to map them to N" in str(err.value)
    assert "--invalid" not in str(without_invalid_hint(err.value))
    assert without_invalid_hint(err.value).line == 11


def test_invalid_character_checked_in_truncated_part():
    with pytest.raises(InputError):
        encode(["ACGTACGTX"], Encoding(length=4))


def test_invalid_to_n_counts_mapped():
    codes, mapped = encode(["AXYT"], Encoding(length=4), invalid="N")
    assert mapped == 2 and decode(codes) == ["ANNT"]


def test_prefix_is_placed_before_the_body():
    codes, _ = encode(["ACGTT"], Encoding(length=6, prefix="GG", channels="ACGT"))
    assert decode(codes) == ["GGACGT"]


def test_onehot_crmnet_order_is_n_first():
    table = onehot_table(CRMNET)
    assert table[4].tolist() == [1, 0, 0, 0, 0]  # N
    assert table[0].tolist() == [0, 1, 0, 0, 0]  # A
    x = onehot(torch.tensor([[0, 3, 4]], dtype=torch.uint8), CRMNET)
    assert x.shape == (1, 5, 3) and x[0, :, 1].tolist() == [0, 0, 0, 0, 1]


def test_onehot_without_n_channel_uses_fill():
    enc = Encoding(length=3, channels="ACGT", unknown_fill=0.25)
    x = onehot(torch.tensor([[4]], dtype=torch.uint8), enc)
    assert x[0, :, 0].tolist() == [0.25] * 4


@pytest.mark.parametrize("enc", [CRMNET, Encoding(length=7, channels="ACGT", unknown_fill=0.25)])
def test_channels_last_onehot_is_the_same_values_in_b_l_c_memory(enc):
    codes = torch.randint(0, 5, (4, enc.length), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    got = onehot(codes, enc, channels_last=True)
    assert torch.equal(got, onehot(codes, enc)) and got.transpose(1, 2).is_contiguous()


@pytest.mark.parametrize("dst", [VAISHNAV, Encoding(length=100), Encoding(length=120, pad="start"),
                                 Encoding(length=115, truncate="start", prefix="ACG")])
def test_relayout_matches_direct_encoding(dst, rng):
    seqs = ["".join(rng.choice(list("ACGT"), size=n)) for n in rng.integers(90, 113, size=64)]
    stored, _ = encode(seqs, CRMNET)
    lengths = torch.tensor([len(s) for s in seqs])
    got = relayout(torch.from_numpy(stored), lengths, CRMNET, dst).numpy()
    want, _ = encode(seqs, dst)
    np.testing.assert_array_equal(got, want)


def test_revcomp_onehot_is_an_involution_and_complements():
    codes, _ = encode(["AACG"], Encoding(length=4))
    x = onehot(torch.from_numpy(codes), CRMNET)
    rc = revcomp_onehot(x, CRMNET)
    want, _ = encode(["CGTT"], Encoding(length=4))
    assert torch.equal(rc, onehot(torch.from_numpy(want), CRMNET))
    assert torch.equal(revcomp_onehot(rc, CRMNET), x)
