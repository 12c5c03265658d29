"""Positions people read are 1-based: every figure and table writer that shows one says so and counts from 1."""

from __future__ import annotations

import numpy as np
import pytest

from crmnet.data.jaspar import Motif
from crmnet.design.evolve import mutations_from
from crmnet.design.mutagenesis import Saturation
from crmnet.interpret.scanning import Hits


def _labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


def test_logo_figure_axis_is_1_based():
    pytest.importorskip("tangermeme")
    from crmnet.plot.interpret import logo_figure

    values = np.zeros((4, 12))
    values[0] = 0.5
    fig = logo_figure(values, np.zeros((4, 12)), "t", "track", first_position=17)  # column 0 = 0-based 17
    bottom = fig.axes[-1]
    assert "1-based" in bottom.get_xlabel()
    labels = _labels(bottom)
    assert labels[0] == "18" and "20" in labels and "25" in labels
    assert bottom.get_xticks()[labels.index("20")] == 2  # position 20 is column 2 (0-based 19)


def test_explain_figure_axes_and_motif_box_are_1_based():
    pytest.importorskip("tangermeme")
    from crmnet.plot.serve import explain_figure

    width = 30
    onehot = np.zeros((4, width))
    onehot[0] = 1
    delta = np.zeros((4, width))
    hits = [{"motif": "M", "start_1based": 5, "end_1based": 10, "strand": "+", "score": 3.0}]
    fig = explain_figure(onehot, onehot * 0.1, delta, hits, "t")
    top, bottom = fig.axes[0], fig.axes[1]
    assert "1-based" in bottom.get_xlabel()
    for ax in (top, bottom):
        labels = _labels(ax)
        assert labels[:3] == ["1", "10", "20"] and list(ax.get_xticks()[:3]) == [0, 9, 19]


def test_heatmap_figure_is_1_based():
    from crmnet.plot.design import heatmap_figure

    sat = Saturation(delta=np.zeros((1, 5, 4), np.float32), reference=np.zeros((1, 5), np.uint8),
                     start=np.array([17]), length=np.array([5]), prediction=np.zeros(1, np.float32))
    ax = heatmap_figure(sat, 0, "t").axes[0]
    assert "1-based" in ax.get_xlabel()
    assert ax.get_xlim()[0] == pytest.approx(17.5)  # first column is position 18


def test_motif_hit_rows_are_1_based_inclusive():
    motif = Motif("M", "MA0000.1", np.ones((4, 6)))
    hits = Hits([motif], np.array([0]), np.array([0]), np.array([17]), np.array([23]), np.array([1], np.int8),
                np.array([5.0]), np.array([1e-5]), 1, 110)
    (row,) = hits.rows()
    assert (row["start_1based"], row["end_1based"]) == (18, 23)  # 0-based [17, 23) = positions 18..23
    assert "start" not in row and "end" not in row


def test_evolve_mutation_names_are_1_based():
    start = np.array([3, 0, 1, 2], np.uint8)  # T A C G
    now = np.array([0, 0, 1, 3], np.uint8)
    assert mutations_from(start, now, 4) == ["T1A", "G4T"]


@pytest.mark.slow  # ~30 s: FIMO over every yeast JASPAR motif and the page's figure
def test_serve_explain_tables_are_1_based():
    pytest.importorskip("starlette")
    from crmnet.serve.analyses import explain_job

    class Served:
        name = "m"

    import torch

    from crmnet.models import build_model

    torch.manual_seed(0)
    Served.model = build_model("crmnet-tiny")
    seq = "TGCATTTTTTTCACATC" + "TTACCCGGAT" * 8 + "GGTTACGGCTGTT"
    result = explain_job(Served(), "s", seq, 1e-2)(lambda *a: None)
    positions = result.files["positions.tsv"][0].decode().splitlines()
    assert positions[0].startswith("position_1based\t") and positions[1].startswith("1\tT\t")
    assert positions[-1].startswith(f"{len(seq)}\tT\t")
    motifs = result.files["motifs.tsv"][0].decode().splitlines()
    assert motifs[0].split("\t")[2:4] == ["start_1based", "end_1based"]
    for line in motifs[1:]:
        start, end = (int(v) for v in line.split("\t")[2:4])
        assert 1 <= start <= end <= len(seq)
    ref, pos = result.context["best"][0][0], int(result.context["best"][0][1:-1])
    assert seq[pos - 1] == ref  # T55A names the base at 1-based position 55
