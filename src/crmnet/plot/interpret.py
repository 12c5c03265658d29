"""Interpretation figures: Figure 5A–E logos, the 5F/5G paired bars, logos of discovered motifs.

Arrays in, ``Figure`` out; nothing here knows about motifs or attributions beyond their arrays, so the
interpretation stage (:mod:`crmnet.interpret`) computes what is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crmnet.plot.common import _figure, one_based_ticks

_MATCHED, _CONTROL = "#4c72b0", "#999999"


def logo_figure(values: np.ndarray, track: np.ndarray, title: str, track_title: str, first_position: int = 0):
    """Figure 5A–E panel: a sequence's attribution logo above a motif's information-content logo.

    Parameters
    ----------
    values : ndarray, shape (4, w)
        Attributions of the shown window (A, C, G, T rows; the observed base only).
    track : ndarray, shape (4, w)
        Letter heights in bits of the matched motif, aligned to the window (zero where it does not reach).
    title, track_title : str
        Titles of the upper and lower panel.
    first_position : int
        0-based sequence coordinate of the window's first column (the x axis is labelled 1-based).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from tangermeme.plot import plot_logo

    width = values.shape[1]
    fig = _figure(max(6.0, 0.28 * width), 3.8)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1.3, 1.0])
    if np.any(values):
        plot_logo(values, ax=top)
    else:  # every value removed by the display rules: an empty panel, said so
        top.text(0.5, 0.5, "no value passes the display rules", ha="center", va="center", transform=top.transAxes)
    top.set_ylabel("saliency")
    top.set_title(title, fontsize=10)
    plot_logo(track, ax=bottom)
    bottom.set_ylabel("bits")
    bottom.set_ylim(0, 2)
    bottom.set_title(track_title, fontsize=9)
    one_based_ticks(bottom, width, first_position, step=5)
    bottom.set_xlabel("position in the sequence (1-based)")
    return fig


def paired_bars_figure(labels: Sequence[str], means: np.ndarray, sems: np.ndarray, annotations: Sequence[str],
                       series: tuple[str, str], ylabel: str, title: str):
    """Figure 5F/5G: per motif, the motif's bar beside its own control bar, annotated with the test.

    Parameters
    ----------
    labels : sequence of str, length m
        Motif names.
    means, sems : ndarray, shape (m, 2)
        Mean and standard error of (matched, control); NaN where there is nothing (no hits).
    annotations : sequence of str, length m
        Text above each pair (stars and the q-value, or "no hits").
    series : (str, str)
        Legend labels of the matched and the control bars.
    ylabel, title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    means = np.asarray(means, dtype=float).reshape(len(labels), 2)
    sems = np.nan_to_num(np.asarray(sems, dtype=float).reshape(len(labels), 2))
    fig = _figure(1.2 * len(labels) + 2.5, 3.8)
    ax = fig.subplots()
    x = np.arange(len(labels))
    for j, (colour, name) in enumerate(zip((_MATCHED, _CONTROL), series)):
        ax.bar(x + (j - 0.5) * 0.4, np.nan_to_num(means[:, j]), width=0.4, yerr=sems[:, j], color=colour,
               capsize=3, label=name)
    ax.axhline(0.0, color="black", lw=0.5)
    for i, text in enumerate(annotations):
        finite = np.isfinite(means[i])
        top = float(np.max(means[i][finite] + sems[i][finite])) if finite.any() else 0.0
        ax.annotate(text, (i, max(top, 0.0)), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_xticks(x, list(labels), rotation=30)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.margins(y=0.25)
    return fig


def motif_logos_figure(tracks: Sequence[np.ndarray], titles: Sequence[str]):
    """Information-content logos, one row each (e.g. discovered motifs with their best known match).

    Parameters
    ----------
    tracks : sequence of ndarray, each shape (4, w_i)
        Letter heights in bits.
    titles : sequence of str
        One title per logo.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from tangermeme.plot import plot_logo

    n = max(len(tracks), 1)
    width = max((t.shape[1] for t in tracks), default=6)
    fig = _figure(max(5.0, 0.35 * width + 2), 1.5 * n)
    axes = np.atleast_1d(fig.subplots(n, 1, squeeze=False)[:, 0])
    for ax, track, title in zip(axes, tracks, titles):
        plot_logo(track, ax=ax)
        ax.set_ylim(0, 2)
        ax.set_ylabel("bits")
        ax.set_title(title, fontsize=8, loc="left")
    return fig
