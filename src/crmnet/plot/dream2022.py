"""DREAM 2022 figure: a model's per-subset Pearson r² and Spearman ρ beside the published teams."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crmnet.plot.common import _figure, _palette


def subset_bars(rows: dict[str, dict[str, dict[str, float]]], subsets: Sequence[str], title: str | None = None):
    """Grouped bars, one group per subset and one bar per model, for Pearson r² (top) and Spearman ρ (bottom).

    Parameters
    ----------
    rows : dict
        Model label → {"pearson_r2": {subset: value}, "spearman": {subset: value}}; a subset a model
        lacks is left empty.
    subsets : sequence of str
        The subsets, in order (x axis).
    title : str, optional
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not rows:
        raise ValueError("the DREAM figure needs at least one model")
    models = list(rows)
    width = 0.8 / len(models)
    fig = _figure(max(7.0, 1.1 * len(subsets) + 0.15 * len(models) * len(subsets)), 6.4)
    axes = fig.subplots(2, 1)
    colors = _palette(len(models))
    x = np.arange(len(subsets))
    for ax, metric, label in zip(axes, ("pearson_r2", "spearman"), ("Pearson r²", "Spearman ρ")):
        for i, model in enumerate(models):
            vals = np.array([rows[model][metric].get(s, np.nan) for s in subsets], dtype=float)
            ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=model, color=colors[i])
            if i == 0:  # the scored model comes first: say where it has no value rather than leave a gap
                for j in np.flatnonzero(np.isnan(vals)):
                    ax.text(x[j] - 0.4 + width / 2, 0.02, "missing", rotation=90, fontsize=7, va="bottom", ha="center")
        ax.set_xticks(x, subsets, rotation=20, ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(subsets) - 0.5)
        ax.set_ylabel(label)
        low = min(0.0, np.nanmin([rows[m][metric].get(s, np.nan) for m in models for s in subsets] + [0.0]))
        ax.set_ylim(low, 1.0)
        ax.axhline(0.0, color="black", lw=0.6)
        ax.grid(axis="y", lw=0.4, alpha=0.6)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", fontsize=7, ncols=min(3, len(models)), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
