"""Figures (matplotlib only in this package): data in, ``Figure`` out; no pyplot state, no display, no ``show()``.

Figures are built on :class:`matplotlib.figure.Figure` directly, so they render headless (Agg for PNG,
the PDF backend for PDF) and never touch a global figure manager. :func:`save_figure` writes PNG and PDF
atomically, :func:`save_png` a PNG only.

* Figure 2 — :func:`density_scatter` / :func:`figure2`: predicted vs measured as a 2-D density (hexbin,
  log counts), annotated with Pearson r and its p, both kinds of R² (clearly named) and MSE.
* Figure 3 — :func:`benchmark_bars`: models × test sets, Pearson r and MSE, with bootstrap intervals.
* Figure 4 — :func:`ablation_bars`: several runs (ablations) per test set, Δr against the first run.
* :func:`learning_curve_figure`: a training run's loss and validation metric per epoch.

``table`` arguments are ``{row label: {test name: metrics dict}}`` with the keys of
:func:`crmnet.evaluation.metrics.compute_metrics` (and optionally ``"bootstrap"`` intervals).
"""

from __future__ import annotations

from crmnet.plot.common import FORMATS, format_p, save_figure, save_png
from crmnet.plot.evaluation import (
    ablation_bars,
    benchmark_bars,
    density_scatter,
    figure2,
    metrics_text,
)
from crmnet.plot.training import learning_curve_figure

__all__ = [
    "FORMATS", "ablation_bars", "benchmark_bars", "density_scatter", "figure2", "format_p",
    "learning_curve_figure", "metrics_text", "save_figure", "save_png",
]
