"""`crmnet evaluate --group-column`: grouped bootstrap and comparisons, q_bh, the multimodality warning."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import scipy.stats as st

from crmnet.cli import main


def _random_sequences(rng, n, length=30):
    return ["".join(rng.choice(list("ACGT"), size=length)) for _ in range(n)]


def _write(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def lineages(tmp_path):
    """30 lineages of 8 related sequences sharing their measured level; two models that know the lineage
    level and a little of the within-lineage deviation."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(30), 8)
    seqs = _random_sequences(rng, len(g))
    y = np.repeat(rng.normal(9, 3, 30), 8) + rng.normal(0, 0.5, len(g))
    a = y + np.repeat(rng.normal(0, 1, 30), 8) + rng.normal(0, 0.5, len(g))
    b = y + np.repeat(rng.normal(0, 1, 30), 8) + rng.normal(0, 0.8, len(g))
    test = _write(tmp_path / "test.csv", ["sequence", "Measured Expression", "lineage"],
                  [[s, f"{v:.6f}", f"L{k}"] for s, v, k in zip(seqs, y, g)])
    files = [_write(tmp_path / f"{m}.csv", ["sequence", "Predicted Expression"],
                    [[s, f"{v:.6f}"] for s, v in zip(seqs, p)]) for m, p in (("a", a), ("b", b))]
    return test, files


def _run(tmp_path, test, files, *extra):
    out = tmp_path / ("out" + "".join(x.strip("-") for x in extra))
    rc = main(["evaluate", "--predictions", *map(str, files), "--test", str(test), "--bootstrap", "200",
               "--out", str(out), *extra])
    assert rc == 0
    return out


def test_group_column_resamples_lineages_and_compares_them_robustly(tmp_path, lineages, capsys):
    test, files = lineages
    plain = _run(tmp_path, test, files)
    grouped = _run(tmp_path, test, files, "--group-column", "lineage")
    m0 = json.loads((plain / "metrics.json").read_text())["test"]
    m1 = json.loads((grouped / "metrics.json").read_text())["test"]
    # The metrics themselves do not depend on the groups; the intervals do.
    assert {k: m1[k] for k in ("n", "pearson_r", "r2")} == {k: m0[k] for k in ("n", "pearson_r", "r2")}
    assert m1["bootstrap"]["resampled"] == "groups" and m1["bootstrap"]["n_groups"] == 30
    width = [m["bootstrap"]["pearson_r"][1] - m["bootstrap"]["pearson_r"][0] for m in (m0, m1)]
    assert width[1] > 1.5 * width[0]
    assert m1["multimodality"]["method"] == "groups" and m1["multimodality"]["n_groups"] == 30
    assert m0["multimodality"]["method"] == "mixture"
    c0 = json.loads((plain / "comparisons.json").read_text())
    c1 = json.loads((grouped / "comparisons.json").read_text())
    assert c0[0]["p_method"] == "steiger" and c1[0]["p_method"] == "cluster_wald"
    assert c1[0]["p"] == c1[0]["cluster_p"] and c1[0]["n_groups"] == 30
    with open(grouped / "comparisons.csv", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["q_bh"]) == pytest.approx(c1[0]["q_bh"])
    config = json.loads((grouped / "config.json").read_text())
    assert config["group_column"] == "lineage" and "Benjamini-Hochberg" in config["multiplicity"]
    assert "1 pairwise comparisons" in capsys.readouterr().err


def test_q_bh_adjusts_over_every_comparison_of_the_run(tmp_path, lineages):
    test, files = lineages
    rng = np.random.default_rng(1)
    rows = list(csv.reader(files[0].read_text(encoding="utf-8").splitlines()))
    third = _write(tmp_path / "c.csv", rows[0], [[s, f"{float(v) + rng.normal():.6f}"] for s, v in rows[1:]])
    out = _run(tmp_path, test, [*files, third])
    comps = json.loads((out / "comparisons.json").read_text())
    assert len(comps) == 3
    want = st.false_discovery_control([c["p"] for c in comps])
    np.testing.assert_allclose([c["q_bh"] for c in comps], want)


def test_a_missing_group_column_is_an_input_error(tmp_path, lineages, capsys):
    test, files = lineages
    rc = main(["evaluate", "--predictions", str(files[0]), "--test", str(test), "--group-column", "clade",
               "--out", str(tmp_path / "x")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "test.csv" in err and "'clade'" in err
    assert not (tmp_path / "x").exists()


def test_a_class_separating_model_is_warned_about(tmp_path, capsys):
    rng = np.random.default_rng(2)
    n = 400
    cls = rng.uniform(size=n) < 0.5
    seqs = _random_sequences(rng, n)
    y = np.where(cls, 12.0, 5.0) + rng.normal(0, 1, n)
    p = np.where(cls, 11.0, 6.0) + rng.normal(0, 1, n)  # knows the class, nothing within it
    rows = [[s, f"{v:.6f}", f"{q:.6f}", "TATA" if c else "TATA-less"] for s, v, q, c in zip(seqs, y, p, cls)]
    test = _write(tmp_path / "native.csv", ["sequence", "Measured Expression", "Predicted Expression", "class"], rows)
    rc = main(["evaluate", "--predictions", str(test), "--group-column", "class", "--bootstrap", "0",
               "--out", str(tmp_path / "o")])
    assert rc == 0
    err = capsys.readouterr().err
    assert "warning: native: native: pooled Pearson r" in err and "within the 2 groups" in err
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())["native"]["multimodality"]
    assert m["flag"] and abs(m["within_r"]) < 0.2
    # Without the class column the modes of the measured values tell the same story.
    rc = main(["evaluate", "--predictions", str(test), "--bootstrap", "0", "--out", str(tmp_path / "p")])
    assert rc == 0
    assert "warning: native: native: measured values are bimodal" in capsys.readouterr().err


def test_report_adjusts_its_comparisons(tmp_path, lineages):
    from crmnet.evaluation.report import build_report

    test, files = lineages
    out = _run(tmp_path, test, files)
    report = build_report([out], tmp_path / "report", n_boot=50)
    text = (report / "report.md").read_text(encoding="utf-8")
    assert "q (BH)" in text and "Benjamini-Hochberg" in text
