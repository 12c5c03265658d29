"""One vocabulary: the input formats are named once and every reader, command and page uses that list."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from crmnet.cli import build_parser, main
from crmnet.data.formats import FORMATS, INPUT_FORMATS, STORE_FORMATS
from crmnet.data.store import open_store, prepare

LEFT, RIGHT = "TGCATTTTTTTCACATC", "GGTTACGGCTGTT"


def _choices(command: str, option: str) -> tuple:
    """The ``choices`` of ``crmnet COMMAND OPTION`` as the parser has them."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return tuple(next(a for a in sub._actions if option in a.option_strings).choices)


def test_the_registry_is_what_commands_offer():
    assert FORMATS == ("auto", *INPUT_FORMATS)
    assert _choices("prepare", "--format") == STORE_FORMATS
    assert _choices("predict", "--format") == FORMATS
    assert "fasta" not in STORE_FORMATS and {"txt", "tsv", "csv"} <= set(STORE_FORMATS)


def test_the_page_offers_the_registry():
    pytest.importorskip("starlette")  # the serve extra
    from crmnet.serve.app import _templates
    from crmnet.serve.config import ServeConfig

    html = _templates().get_template("_sequences.html").render(limits=ServeConfig(), form={}, max_sequences=5)
    offered = [line.split('value="')[1].split('"')[0] for line in html.splitlines() if "<option" in line]
    assert tuple(offered) == FORMATS


def test_prepare_takes_every_format_with_measurements(tmp_path, rng):
    seqs = [LEFT + "".join(rng.choice(list("ACGT"), size=80)) + RIGHT for _ in range(40)]
    values = rng.normal(10, 3, size=40).round(4)
    (tmp_path / "t.tsv").write_text("id\tsequence\tMeasured Expression\n"
                                    + "".join(f"s{i}\t{s}\t{v}\n" for i, (s, v) in enumerate(zip(seqs, values))))
    store = prepare([tmp_path / "t.tsv"], tmp_path / "store")
    assert open_store(tmp_path / "store").manifest["sources"][0]["format"] == "tsv"
    np.testing.assert_allclose(np.sort(store.targets), np.sort(values.astype(np.float32)))
    (tmp_path / "t.fa").write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    assert main(["prepare", str(tmp_path / "t.fa"), "--out", str(tmp_path / "fa-store")]) == 2
    assert not (tmp_path / "fa-store").exists()
