"""Variant effects: exact on a linear toy, identical sequences predicted once, bad input named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crmnet.design.variants import variant_effects, variants_file
from crmnet.errors import InputError, OutputExistsError
from design_toys import LinearToy, constructs


def test_variant_effects_exact_and_deduplicated():
    model = LinearToy()
    ref = constructs(3)
    alt = [ref[0][:20] + ("A" if ref[0][20] != "A" else "C") + ref[0][21:], ref[1], ref[2][:-1]]
    model.calls = 0
    eff = variant_effects(model, ref, alt)
    assert model.calls == 5  # ref[1] appears twice
    w = model.base_weight()
    code = {b: i for i, b in enumerate("ACGTN")}
    assert eff.delta[0] == pytest.approx(w[code[alt[0][20]], 20] - w[code[ref[0][20]], 20], abs=1e-4)
    assert eff.delta[1] == 0.0 and eff.n_unequal == 1
    np.testing.assert_allclose(eff.delta, eff.alt_prediction - eff.ref_prediction)


def test_variants_file_columns_metrics(tmp_path):
    model = LinearToy()
    ref = constructs(6, seed=1)
    alt = constructs(6, seed=2)
    eff = variant_effects(model, ref, alt)
    measured = eff.delta + np.array([0.1, -0.1, 0.05, 0.0, 0.2, -0.3])
    src = tmp_path / "pairs.csv"
    src.write_text("name,ref,alt,dm\n" + "".join(f"p{i},{r},{a},{m}\n" for i, (r, a, m) in
                                                  enumerate(zip(ref, alt, measured))))
    res = variants_file(model, src, tmp_path / "out.tsv", ref_column="ref", alt_column="alt", measured_column="dm")
    rows = [r.split("\t") for r in (tmp_path / "out.tsv").read_text().splitlines()]
    assert rows[0] == ["name", "ref", "alt", "dm", "ref_prediction", "alt_prediction", "delta"]
    assert rows[3][0] == "p2" and float(rows[3][6]) == pytest.approx(eff.delta[2], abs=1e-4)
    metrics = json.loads((tmp_path / "out.metrics.json").read_text())
    assert metrics["pairs.csv"]["n"] == 6 and metrics["pairs.csv"]["pearson_r"] > 0.9
    assert res["unique"] == 12
    with pytest.raises(OutputExistsError):
        variants_file(model, src, tmp_path / "out.tsv", ref_column="ref", alt_column="alt")


@pytest.mark.parametrize(("text", "kwargs", "match"), [
    ("", {}, "pairs.tsv: the file is empty"),
    ("reference\tother\nACGT\tACGA\n", {}, r"pairs.tsv:1: no column 'variant' \(--alt-column\)"),
    ("reference\tvariant\n", {}, "pairs.tsv:1: no pairs"),
    ("reference\tvariant\nACGT\tACGA\nACGT\tAXGA\n", {}, "pairs.tsv:3: invalid character 'X'"),
    ("reference\tvariant\nACGT\tACGA\nACGT\n", {}, "pairs.tsv:3: 1 fields but the header has 2"),
    ("reference\tvariant\tm\nACGT\tACGA\tx\n", {"measured_column": "m"}, "pairs.tsv:2: measured"),
])
def test_variants_bad_input(tmp_path, text, kwargs, match):
    src = tmp_path / "pairs.tsv"
    src.write_text(text)
    with pytest.raises(InputError, match=match):
        variants_file(LinearToy(), src, tmp_path / "out.tsv", **kwargs)
    assert not (tmp_path / "out.tsv").exists()
