"""The web page's Design tab: a graded library under constraints, its table and downloads."""

from __future__ import annotations

import csv
import io

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

import test_serve
from test_serve import SEQS, _error, run, wait

checkpoints, client = test_serve.checkpoints, test_serve.client  # the page tests' fixtures

FORM = {"model": "alpha", "levels": "0.0005,0.001", "per_level": "2", "tolerance": "0.0002", "forbid": "GAATTC,GGTCTC",
        "gc": "0.3-0.65", "max_homopolymer": "6", "min_distance": "3", "seed": "4", "max_steps": "20"}


def test_design_tab_renders_with_the_constraint_fields(client):
    html = client.get("/design").text
    assert 'href="/design"' in html
    for field in ("levels", "per_level", "forbid", "gc", "max_homopolymer", "protect", "max_edits", "min_distance"):
        assert f'name="{field}"' in html


def test_design_tab_makes_a_checked_library_with_table_and_downloads(client):
    # an untrained crmnet-tiny predicts about -0.0006 (range -0.0035 to 0.0016 over random promoters):
    # levels just above 0 are in the assay's range and a few substitutions away
    location, html = run(client, "/design", FORM)
    rows = list(csv.DictReader(io.StringIO(client.get(location + "/files/designs.tsv").text), delimiter="\t"))
    assert [r["target"] for r in rows] == ["0.0005", "0.0005", "0.001", "0.001"]
    for r in rows:
        seq = r["sequence"]
        assert abs(float(r["prediction"]) - float(r["target"])) <= 0.0002 + 1e-9
        assert "GAATTC" not in seq and "GGTCTC" not in seq and "GAGACC" not in seq
        assert 0.3 <= float(r["gc"]) <= 0.65 and int(r["longest_homopolymer"]) <= 6 and seq == SEQS[0][:17] + seq[17:]
        assert r["checks"] == "gc;forbid;homopolymer;distance"
        assert r["id"] in html and seq in html
    assert sum(a != b for a, b in zip(rows[0]["sequence"], rows[1]["sequence"])) >= 3
    assert client.get(location + "/files/designs.png").content[:4] == b"\x89PNG"
    assert client.get(location + "/files/designs.fasta").text.startswith(">level0.0005_1 ")
    assert "4 of 4 designs" in html and "Download designs TSV" in html


@pytest.mark.parametrize("data, message", [
    ({"per_level": "40"}, "more than the limit of 60"),
    ({"gc": "0.7-0.2"}, "--gc 0.7-0.2"),
    ({"levels": "1,x"}, "levels: '1,x' is not"),
    ({"max_steps": "21"}, "max_steps 21 lies outside [1, 20]"),
    ({"forbid": "GGXTC"}, "--forbid 'GGXTC'"),
    ({"levels": "99"}, "--levels 99 lies outside"),
])
def test_design_tab_errors_are_one_sentence(client, data, message):
    r = client.post("/design", data={**FORM, **data}, follow_redirects=False)
    if r.status_code == 303:  # checked when the job starts: the job page says it
        status = wait(client, r.headers["location"])
        assert status["state"] == "failed" and message in status["error"]
    else:
        assert r.status_code == 400 and message in _error(r.text)


def test_evolve_page_takes_the_same_constraints(client):
    data = {"sequences": SEQS[0], "model_a": "alpha", "mode": "sswm", "generations": "6", "direction": "max",
            "protect": "20-60", "max_edits": "3", "forbid": "GAATTC"}
    location, _ = run(client, "/evolve", data)
    rows = list(csv.DictReader(io.StringIO(client.get(location + "/files/trajectory.tsv").text), delimiter="\t"))
    assert len(rows) >= 3 and int(rows[-1]["n_mutations"]) == 3  # stopped by the edit budget
    for r in rows:
        assert r["sequence"][19:60] == SEQS[0][19:60] and int(r["n_mutations"]) <= 3
        assert "GAATTC" not in r["sequence"]
    assert 'name="protect"' in client.get("/evolve").text and 'name="min_distance"' not in client.get("/evolve").text
