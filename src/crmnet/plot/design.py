"""Figures of the design analyses: mutagenesis heat maps, evolvability and evolution trajectories."""

from __future__ import annotations

import numpy as np

from crmnet.plot.common import _figure, _palette


def heatmap_figure(sat, i: int, title: str):
    """Position × base heat map of sequence ``i`` of a Saturation.

    Δ in a diverging colour map centred on 0, the reference base of each position marked with a dot.

    Parameters
    ----------
    sat : Saturation
        ``delta`` (N, L, 4), ``reference`` (N, L), ``start`` (N,), ``length`` (N,), ``prediction`` (N,).
    i : int
        Which sequence.
    title : str
    """
    length = int(sat.length[i])
    delta = sat.delta[i, :length].T  # (4, L)
    ref = sat.reference[i, :length]
    limit = float(np.nanmax(np.abs(delta))) if np.isfinite(delta).any() else 1.0
    fig = _figure(max(6.0, 0.11 * length + 1.5), 2.4)
    ax = fig.add_subplot()
    first = int(sat.start[i]) + 1
    extent = (first - 0.5, first + length - 0.5, 3.5, -0.5)
    image = ax.imshow(delta, aspect="auto", cmap="RdBu_r", vmin=-limit or -1, vmax=limit or 1, extent=extent,
                      interpolation="nearest")
    is_base = ref < 4
    ax.scatter(first + np.flatnonzero(is_base), ref[is_base], s=6, c="black", marker="o", label="reference")
    ax.set_yticks(range(4), list("ACGT"))
    ax.set_xlabel("position in the sequence (1-based)")
    ax.set_title(f"{title}: predicted {float(sat.prediction[i]):.3g}", fontsize=9)
    fig.colorbar(image, ax=ax, label="Δ prediction", pad=0.01)
    return fig


def evolvability_figure(prediction: np.ndarray, robustness: np.ndarray, epsilon: float, label: str):
    """Population view: mutational robustness against predicted expression (a hexbin when many points).

    Parameters
    ----------
    prediction, robustness : (N,) float
    epsilon : the robustness threshold, for the axis label
    label : model name
    """
    fig = _figure(5.0, 4.0)
    ax = fig.add_subplot()
    ok = np.isfinite(prediction) & np.isfinite(robustness)
    if ok.sum() > 2000:
        hb = ax.hexbin(prediction[ok], robustness[ok], gridsize=50, bins="log", mincnt=1, cmap="viridis")
        fig.colorbar(hb, ax=ax, label="sequences (log)")
    else:
        ax.scatter(prediction[ok], robustness[ok], s=8, alpha=0.6)
    ax.set_xlabel(f"predicted expression ({label})")
    ax.set_ylabel(f"mutational robustness (fraction |Δ| < {epsilon:g})")
    ax.set_title(f"{int(ok.sum()):,} sequences", fontsize=9)
    return fig


def trajectory_figure(generation: np.ndarray, lineage: np.ndarray, objective: np.ndarray, title: str,
                      target: float | None = None, tolerance: float | None = None):
    """Objective per generation: one line per lineage (up to 20 drawn).

    With a target (GA), per start sequence (up to 10) the sequence closest to the target and the population
    mean.

    Parameters
    ----------
    generation, lineage : (R,) int, one row per individual and generation
    objective : (R,) float
    title : str
    target, tolerance : the GA's target band, drawn when given
    """
    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot()
    lineages = np.unique(lineage)
    shown = lineages[: 20 if target is None else 10]
    # Markers, so that a lineage that stopped at generation 0 is a visible point, not an empty line.
    style = {"marker": "o", "ms": 3}
    for k, colour in zip(shown, _palette(len(shown))):
        sel = lineage == k
        if target is None:
            ax.plot(generation[sel], objective[sel], color=colour, lw=1.2, alpha=0.8, label=f"lineage {k}", **style)
            continue
        gens = np.unique(generation[sel])
        values = [objective[sel & (generation == g)] for g in gens]
        ax.plot(gens, [v[np.argmin(np.abs(v - target))] for v in values], color=colour, lw=1.8,
                label=f"start {k}: closest to target", **style)
        if max(len(v) for v in values) > 1:  # a population of one has no separate mean to draw
            ax.plot(gens, [v.mean() for v in values], color=colour, lw=1.0, ls="--", label=f"start {k}: mean")
    if target is not None:
        ax.axhspan(target - tolerance, target + tolerance, color="grey", alpha=0.25, label="target ± tolerance")
    more = f"first {len(shown)} of {len(lineages)} drawn" if len(shown) < len(lineages) else None
    ax.legend(fontsize=7, ncol=2 if len(ax.get_legend_handles_labels()[1]) > 6 else 1, title=more,
              title_fontsize=7)
    ax.set_xlabel("generation")
    ax.set_ylabel("objective")
    ax.set_title(title, fontsize=9)
    return fig


def library_figure(target: np.ndarray, prediction: np.ndarray, per_model: dict, tolerance: float, title: str):
    """A graded library: each design's prediction against its target level.

    Parameters
    ----------
    target, prediction : (n,) float — level and predicted value per design
    per_model : name → (n,) float — each model's prediction (drawn faintly; empty for one model)
    tolerance : the search's tolerance, drawn as a band around each level
    title : str
    """
    fig = _figure(5.0, 4.0)
    ax = fig.add_subplot()
    levels = np.unique(target)
    span = float(levels.max() - levels.min()) or 1.0
    for level in levels:
        ax.fill_between([level - 0.04 * span, level + 0.04 * span], level - tolerance, level + tolerance,
                        color="grey", alpha=0.3, lw=0)
    jitter = (np.arange(len(target)) % 5 - 2) * 0.006 * span
    for (name, values), colour in zip(per_model.items(), _palette(max(1, len(per_model)))):
        ax.scatter(target + jitter, values, s=10, alpha=0.5, color=colour, marker="x", label=name)
    ax.scatter(target + jitter, prediction, s=18, color="black", label="prediction" if per_model else None)
    lo, hi = min(levels.min(), np.min(prediction)) - 0.5, max(levels.max(), np.max(prediction)) + 0.5
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    if per_model:
        ax.legend(fontsize=7)
    ax.set_xlabel("target level")
    ax.set_ylabel("predicted expression")
    ax.set_title(f"{title}: {len(target)} designs", fontsize=9)
    return fig


def ecc_figure(ecc: np.ndarray, divergence: np.ndarray, summary: dict, label: str):
    """The expression conservation coefficient: its distribution, and against sequence divergence.

    Parameters
    ----------
    ecc : (P,) float, NaN where undefined
    divergence : (P,) float, each promoter's mean Hamming distance of its isolates to the consensus
    summary : dict
        ``finite_ecc``, ``fraction_above_zero``, ``median_ecc`` (printed in the title).
    label : model name
    """
    fig = _figure(9.0, 3.6)
    ok = np.isfinite(ecc)
    ax = fig.add_subplot(1, 2, 1)
    ax.hist(ecc[ok], bins=100, color="#980043", linewidth=0)
    ax.axvline(0, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("expression conservation coefficient (ECC)")
    ax.set_ylabel("promoters")
    ax.set_title(f"{label}: {summary['finite_ecc']:,} finite, {100 * summary['fraction_above_zero']:.1f} % > 0, "
                 f"median {summary['median_ecc']:.3f}", fontsize=9)
    ax = fig.add_subplot(1, 2, 2)
    ok &= np.isfinite(divergence) & (divergence > 0)
    if ok.sum() > 2000:
        hb = ax.hexbin(divergence[ok], ecc[ok], gridsize=50, xscale="log", bins="log", mincnt=1, cmap="viridis")
        fig.colorbar(hb, ax=ax, label="promoters (log)")
    else:
        ax.scatter(divergence[ok], ecc[ok], s=6, alpha=0.5)
        ax.set_xscale("log")
    ax.axhline(0, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("mean Hamming distance of the isolates to the consensus")
    ax.set_ylabel("ECC")
    return fig
