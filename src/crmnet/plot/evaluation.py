"""Evaluation figures: Figure 2 (density scatter), Figure 3 (benchmark bars), Figure 4 (ablation bars)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crmnet.plot.common import _figure, _palette, format_p


def metrics_text(m: dict) -> str:
    """The annotation of a Figure 2 panel: r (with p), r² (the paper's "R²"), R² (1 − SS_res/SS_tot), MSE, N."""
    return (
        f"Pearson r = {m['pearson_r']:.4f} ({format_p(m['pearson_p'])})\n"
        f"r² (paper's R²) = {m['pearson_r_squared']:.4f}\n"
        f"R² (1 − SS_res/SS_tot) = {m['r2']:.4f}\n"
        f"MSE = {m['mse']:.4f}\n"
        f"N = {m['n']:,}"
    )


def density_scatter(ax, y_true, y_pred, metrics: dict, title: str | None = None, gridsize: int = 60):
    """Draw predicted (y) vs measured (x) as a hexbin density with the identity line on ``ax``.

    Parameters
    ----------
    ax : matplotlib Axes
    y_true, y_pred : (n,) float
    metrics : dict
        The pair's metrics (:func:`crmnet.evaluation.metrics.compute_metrics`), written in the corner.
    title : str, optional
    gridsize : int
        Hexagons across.

    Returns
    -------
    PolyCollection
        The hexbin (for a colour bar).
    """
    from matplotlib.colors import LogNorm

    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    m = metrics
    lo = float(min(y.min(), p.min()))
    hi = float(max(y.max(), p.max()))
    pad = 0.03 * (hi - lo or 1.0)
    extent = (lo - pad, hi + pad, lo - pad, hi + pad)
    hb = ax.hexbin(y, p, gridsize=gridsize, extent=extent, norm=LogNorm(), cmap="viridis", mincnt=1, linewidths=0)
    ax.plot(extent[:2], extent[2:], color="0.3", lw=0.8, ls="--")
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    ax.set_aspect("equal")
    ax.set_xlabel("measured expression")
    ax.set_ylabel("predicted expression")
    if title:
        ax.set_title(title)
    ax.text(
        0.03, 0.97, metrics_text(m), transform=ax.transAxes, va="top", ha="left", fontsize=8,
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9},
    )
    return hb


def count_ticks(vmax: float) -> list[int]:
    """Integer colour-bar ticks for counts 1..``vmax`` on a log scale.

    1, 2, 5, 10, 20, 50 ... while that makes at most 10 ticks, else the powers of ten.
    """
    top = max(int(np.floor(np.log10(max(vmax, 1.0)))), 0)
    ticks = [m * 10**e for e in range(top + 1) for m in (1, 2, 5) if m * 10**e <= vmax]
    return ticks if len(ticks) <= 10 else [10**e for e in range(top + 1)]


def count_colorbar(fig, hb, ax):
    """A colour bar for a log-scaled hexbin of counts, labelled with plain integers (not ``2×10^0``)."""
    cbar = fig.colorbar(hb, ax=ax, label="sequences per bin", shrink=0.8)
    counts = np.asarray(hb.get_array(), dtype=np.float64)
    ticks = count_ticks(float(counts.max()) if counts.size else 1.0)
    cbar.set_ticks(ticks, labels=[f"{t:,}" for t in ticks])
    cbar.ax.minorticks_off()
    return cbar


def figure2(panels: Sequence[tuple[str, np.ndarray, np.ndarray, dict]], suptitle: str | None = None):
    """Figure 2: one density scatter per ``(title, y_true (n,), y_pred (n,), metrics)`` panel, two per row.

    The metrics are the caller's (computed once, where the numbers are reported), so the figure and the
    tables cannot disagree.
    """
    if not panels:
        raise ValueError("figure 2 needs at least one panel of predictions")
    ncols = min(2, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    fig = _figure(4.6 * ncols, 4.4 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax, (title, y, p, metrics) in zip(axes, panels):
        count_colorbar(fig, density_scatter(ax, y, p, metrics, title=title), ax)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def _ordered_tests(table: dict[str, dict[str, dict]], tests: Sequence[str] | None) -> list[str]:
    """The test sets to draw: ``tests`` (those some row has), else every test in order of appearance."""
    seen: list[str] = []
    for row in table.values():
        seen.extend(t for t in row if t not in seen)
    return seen if tests is None else [t for t in tests if t in seen]


def _bar_errors(rows: list[dict | None], metric: str) -> np.ndarray | None:
    """(2, k) asymmetric error bars from bootstrap intervals, or None when no row has one."""
    err = np.zeros((2, len(rows)))
    found = False
    for j, m in enumerate(rows):
        ci = (m or {}).get("bootstrap", {}).get(metric)
        if ci is not None:
            err[0, j] = max(m[metric] - ci[0], 0.0)
            err[1, j] = max(ci[1] - m[metric], 0.0)
            found = True
    return err if found else None


def benchmark_bars(table: dict[str, dict[str, dict]], tests: Sequence[str] | None = None,
                   metrics: Sequence[str] = ("pearson_r", "mse"), title: str | None = None):
    """Figure 3: grouped bars, one group per test set and one bar per model (row of ``table``)."""
    if not table:
        raise ValueError("figure 3 needs at least one model")
    tests = _ordered_tests(table, tests)
    models = list(table)
    width = 0.8 / len(models)
    fig = _figure(max(6.0, 1.6 * len(tests) + 0.25 * len(models) * len(tests)), 3.4 * len(metrics))
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    colors = _palette(len(models))
    x = np.arange(len(tests))
    for ax, metric in zip(axes, metrics):
        for i, model in enumerate(models):
            rows = [table[model].get(t) for t in tests]
            vals = np.array([np.nan if m is None else m[metric] for m in rows])
            ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=model, color=colors[i],
                   yerr=_bar_errors(rows, metric), capsize=2, error_kw={"lw": 0.8})
        ax.set_xticks(x, tests)
        ax.set_xlim(-0.5, len(tests) - 0.5)
        ax.set_ylabel(_LABELS.get(metric, metric))
        if metric in ("pearson_r", "spearman_r", "pearson_r_squared"):
            finite = [m[metric] for row in table.values() for m in row.values() if np.isfinite(m[metric])]
            low = min(finite) - 0.05 if finite else 0.0
            ax.set_ylim(low, 1.0)  # zoomed to the data; negative correlations stay visible
            if low < 0:
                ax.axhline(0.0, color="black", lw=0.6)
        ax.grid(axis="y", lw=0.4, alpha=0.6)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", fontsize=8, ncols=min(4, len(models)), frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def ablation_bars(runs: dict[str, dict[str, dict]], tests: Sequence[str] | None = None,
                  metric: str = "pearson_r", title: str | None = None):
    """Figure 4: one panel per test set, one horizontal bar per run; the first run is the reference line."""
    if not runs:
        raise ValueError("figure 4 needs at least one run")
    tests = _ordered_tests(runs, tests)
    names = list(runs)
    fig = _figure(3.4 * len(tests), 0.9 + 0.38 * len(names))
    axes = fig.subplots(1, len(tests), squeeze=False, sharey=True)[0]
    y = np.arange(len(names))[::-1]
    colors = _palette(len(names))
    for ax, test in zip(axes, tests):
        rows = [runs[n].get(test) for n in names]
        vals = np.array([np.nan if m is None else m[metric] for m in rows])
        err = _bar_errors(rows, metric)
        ax.barh(y, vals, color=colors, xerr=err, capsize=2, error_kw={"lw": 0.8})
        ref = vals[0]
        if np.isfinite(ref):
            ax.axvline(ref, color="0.3", lw=0.8, ls="--")
        lo = vals if err is None else vals - err[0]
        hi = vals if err is None else vals + err[1]
        ok = np.isfinite(vals)
        if ok.any():
            span = max(float(hi[ok].max() - lo[ok].min()), 0.01)
            ax.set_xlim(float(lo[ok].min()) - 0.3 * span, float(hi[ok].max()) + 0.9 * span)
        right = vals if err is None else vals + err[1]
        for i, (yi, v) in enumerate(zip(y, vals)):
            if np.isfinite(v):
                delta = "" if i == 0 or not np.isfinite(ref) else f" ({v - ref:+.4f})"
                ax.text(right[i], yi, f" {v:.4f}{delta}", va="center", fontsize=7)
        ax.set_title(test)
        ax.set_xlabel(_LABELS.get(metric, metric))
        ax.grid(axis="x", lw=0.4, alpha=0.6)
    axes[0].set_yticks(y, names)
    if title:
        fig.suptitle(title)
    return fig


_LABELS = {
    "pearson_r": "Pearson r",
    "spearman_r": "Spearman ρ",
    "r2": "R² (1 − SS_res/SS_tot)",
    "pearson_r_squared": "r² (paper's R²)",
    "mse": "MSE",
    "mae": "MAE",
}
