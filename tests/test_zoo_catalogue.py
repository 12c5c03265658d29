"""The released-model table (crmnet zoo), the data catalogue behind downloads, and the one table writer."""

from __future__ import annotations

import json

import pytest

from crmnet.cli import main
from crmnet.data.catalogue import MODEL_FILES, PEERS, SOURCES, TEST_SETS, catalogued
from crmnet.fsutil import file_digest
from crmnet.tables import format_p, render
from crmnet.zoo.catalogue import COLUMNS, RELEASED


def test_every_released_model_can_be_downloaded_and_says_how_it_is_proven():
    assert set(RELEASED) == set(MODEL_FILES) | {"crmnet-authors"}
    for m in RELEASED.values():
        assert m.download in SOURCES
        assert m.proven.startswith(("real weights:", "fixture:"))
    assert [m.name for m in RELEASED.values() if m.proven.startswith("real")] == ["deepatt-complex"]


def test_cli_zoo_formats(capsys):
    assert main(["zoo", "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| " + " | ".join(COLUMNS) + " |" and len(lines) == 2 + len(RELEASED)
    assert main(["zoo", "--format", "json"]) == 0
    assert {m["name"] for m in json.loads(capsys.readouterr().out)} == set(RELEASED)
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert "crmnet download deepatt-complex" in out and "import proven on" in out


def test_catalogue_checksums_are_those_of_the_shared_files(shared):
    deepatt = shared / "models" / "vaishnav2022" / "deepatt_complex" / "DeepAtt_model.h5"
    assert file_digest(deepatt, "git-blob") == MODEL_FILES["deepatt-complex"].digest
    for test in TEST_SETS.values():
        f = catalogued(file_digest(shared / "data" / test.path))
        assert f is not None and f.dest == test.path and f.role == "measured"
    for files in PEERS.values():
        for rel in files.values():
            assert catalogued(file_digest(shared / "data" / rel)).role == "predicted"


@pytest.mark.parametrize(("p", "label", "text"), [
    (0.0, "p", "p < 1e-300"), (0.0, None, "< 1e-300"), (0.0123, "p", "p = 0.012"), (float("nan"), None, "n/a"),
    (None, "p", "p = n/a"), (5e-320, None, "5e-320"),
])
def test_p_values_underflow_to_a_bound_never_zero(p, label, text):
    assert format_p(p, label) == text


def test_one_table_writer():
    header, rows = ["a", "b|c"], [["x", 1], ["tab\there", "new\nline"]]
    assert render(header, rows, "markdown").splitlines() == ["| a | b\\|c |", "|---|---|", "| x | 1 |",
                                                              "| tab\there | new line |"]
    assert render(header, rows, "tsv") == "a\tb|c\nx\t1\ntab here\tnew line\n"
    assert render(header, rows, "csv").splitlines()[0] == "a,b|c"
    assert render(["n", "value"], [["x", 10], ["long", 2]], "text") == "n     value\nx     10\nlong  2\n"
    with pytest.raises(ValueError, match="2 columns"):
        render(header, [["only one"]])


def test_zoo_parameters_are_those_of_crmnet_models(capsys):
    """One count: ``crmnet zoo`` shows the trainable parameters ``crmnet models`` shows for the same network."""
    import torch

    from crmnet.models import build_model, count_parameters

    with torch.device("meta"):  # as crmnet models counts them
        params = {m.model: count_parameters(build_model(m.model))[0] for m in RELEASED.values()}
    assert main(["zoo", "--format", "json"]) == 0
    shown = {m["name"]: m["parameters"] for m in json.loads(capsys.readouterr().out)}
    assert shown == {m.name: params[m.model] for m in RELEASED.values()}
    assert shown["vaishnav-transformer-complex"] == 1_295_505  # was 1,296,785 (BN statistics added) in 0.2
