"""Figures of the web pages (``crmnet serve``): built headless, rendered to bytes in memory."""

from __future__ import annotations

import io

import numpy as np

from crmnet.plot.common import _figure, _palette, one_based_ticks

BASES = "ACGT"


def figure_bytes(fig, fmt: str = "png", dpi: int = 100) -> bytes:
    """``fig`` rendered as PNG or SVG bytes (nothing written to disk)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


def prediction_histogram(values: dict[str, np.ndarray], title: str = ""):
    """Distribution of predictions, one overlaid histogram per model.

    Parameters
    ----------
    values : model name → (n,) predictions
    title : str
    """
    fig = _figure(6.0, 3.2)
    ax = fig.add_subplot()
    finite = [v[np.isfinite(v)] for v in values.values()]
    every = np.concatenate(finite) if finite else np.zeros(0)
    lo, hi = (float(every.min()), float(every.max())) if len(every) else (0.0, 1.0)
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, min(60, max(10, len(every) // 5)) + 1)
    for (name, v), colour in zip(values.items(), _palette(len(values))):
        ax.hist(v[np.isfinite(v)], bins=bins, histtype="stepfilled", alpha=0.45, color=colour, label=name)
    ax.set_xlabel("predicted expression")
    ax.set_ylabel("sequences")
    if len(values) > 1:
        ax.legend(fontsize=8)
    ax.set_title(title or f"{len(every) // max(len(values), 1):,} sequences", fontsize=9)
    return fig


def explain_figure(onehot: np.ndarray, saliency: np.ndarray, delta: np.ndarray, hits: list[dict], title: str):
    """One sequence explained: saliency logo with known motif matches, and the single-mutant heat map.

    Parameters
    ----------
    onehot : (4, W) the sequence, ``A C G T`` (all zero at N)
    saliency : (4, W) input × gradient of the observed bases
    delta : (4, W) prediction(mutant) − prediction(sequence) of each substitution (0 at the reference,
        NaN where not mutated)
    hits : motif matches, dicts with ``motif``, ``start_1based``, ``end_1based`` (inclusive: the rows of
        :meth:`crmnet.interpret.scanning.Hits.rows`), ``strand``, ``score`` (FIMO)
    title : str
    """
    import pandas as pd
    from tangermeme.plot import plot_logo

    width = onehot.shape[1]
    fig = _figure(max(8.0, 0.13 * width + 2.0), 5.4)
    top, bottom = fig.subplots(2, 1, height_ratios=[1.4, 1.0])
    annotations = None
    if hits:
        annotations = pd.DataFrame({"motif_name": [f"{h['motif']}{h['strand']}" for h in hits],
                                    "start": [h["start_1based"] - 1 for h in hits], "end": [h["end_1based"] for h in hits],
                                    "strand": [h["strand"] for h in hits], "score": [h["score"] for h in hits]})
    plot_logo(saliency, ax=top, annotations=annotations, show_score=False)
    top.set_ylabel("saliency\n(input × gradient)")
    top.set_title(title, fontsize=10)
    top.set_xlim(-0.5, width - 0.5)
    one_based_ticks(top, width)
    finite = delta[np.isfinite(delta)]
    limit = float(np.abs(finite).max()) if len(finite) and np.abs(finite).max() > 0 else 1.0
    image = bottom.imshow(delta, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest",
                          extent=(-0.5, width - 0.5, 3.5, -0.5))
    ref_pos, ref_base = np.nonzero(onehot.T)
    bottom.scatter(ref_pos, ref_base, s=5, c="black", marker="o")
    bottom.set_yticks(range(4), list(BASES))
    one_based_ticks(bottom, width)
    bottom.set_xlabel("position in the sequence (1-based; dots: the sequence's own base)")
    bottom.set_ylabel("substituted base")
    fig.colorbar(image, ax=bottom, label="Δ prediction", pad=0.01)
    return fig


def evolvability_vectors(vectors: np.ndarray, labels: list[str], epsilon: float, title: str):
    """Vaishnav et al.'s evolvability vectors.

    Each sequence's sorted single-mutant Δ (up to 20 drawn), with the neutral band ``|Δ| < ε``.

    Parameters
    ----------
    vectors : (N, M) sorted Δ, NaN-padded
    labels : N sequence names
    epsilon : the neutrality threshold
    title : str
    """
    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot()
    shown = min(len(vectors), 20)
    for row, label, colour in zip(vectors[:shown], labels[:shown], _palette(shown)):
        v = row[np.isfinite(row)]
        ax.plot(np.linspace(0, 1, len(v)), v, lw=1.2, color=colour, label=label)
    ax.axhspan(-epsilon, epsilon, color="grey", alpha=0.25, label=f"|Δ| < {epsilon:g} (neutral)")
    ax.set_xlabel("single mutants, sorted by Δ (fraction)")
    ax.set_ylabel("Δ prediction")
    ax.set_title(title if shown == len(vectors) else f"{title} (first {shown} of {len(vectors)})", fontsize=9)
    if shown <= 10:
        ax.legend(fontsize=7)
    return fig
