"""Labels a user reads: `crmnet models` says "BN stats"; Figure 2's colour bar shows plain counts."""

from __future__ import annotations

import numpy as np

from crmnet.evaluation.metrics import compute_metrics
from crmnet.plot.evaluation import count_ticks, figure2


def test_models_table_says_bn_stats():
    from crmnet.cli.models import format_table

    rows = [{"name": "m", "params": 10, "buffers": 4, "flops": 2e6, "input": "4x110 ACGT", "description": "d"}]
    header = format_table(rows).splitlines()[0]
    assert "BN stats" in header and "buffers" not in header


def test_count_ticks_are_plain_integers():
    assert count_ticks(1) == [1]
    assert count_ticks(37) == [1, 2, 5, 10, 20]
    assert count_ticks(250_000) == [1, 10, 100, 1_000, 10_000, 100_000]


def test_figure2_colour_bar_reads_integers():
    rng = np.random.default_rng(0)
    y = rng.normal(size=3000)
    p = y + rng.normal(scale=0.3, size=3000)
    fig = figure2([("test", y, p, compute_metrics(y, p))])
    cbar_ax = fig.axes[-1]
    labels = [t.get_text() for t in cbar_ax.get_yticklabels()]
    assert labels and all(label.replace(",", "").isdigit() for label in labels), labels
    assert not cbar_ax.yaxis.get_minor_ticks() or not any(t.label1.get_text() for t in cbar_ax.yaxis.get_minor_ticks())
