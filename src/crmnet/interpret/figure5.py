"""The paper's Figure 5 from attribution maps.

Logos (5A–E), attribution at motif matches (5F), expression of sequences with the motif (5G), with tables,
``summary.json`` and ``summary.md``.

Known motifs are scanned with FIMO (:mod:`crmnet.interpret.scanning`) in the variable region the model saw;
5F/5G statistics are :mod:`crmnet.interpret.enrichment`'s; on a simulation the planted sites are scored
(:mod:`crmnet.interpret.scoring`). Figures are drawn by :mod:`crmnet.plot.interpret`.
"""

from __future__ import annotations

import json
import os

import numpy as np

from crmnet.data.construct import variable_region
from crmnet.data.jaspar import Motif, information_content
from crmnet.interpret.attribution import AttributionConfig, Attributions, display_filter
from crmnet.interpret.enrichment import NO_HITS, expression_enrichment, saliency_enrichment
from crmnet.interpret.motif_null import N_SHUFFLES, shuffle_null
from crmnet.interpret.scanning import Hits, scan
from crmnet.interpret.scoring import ground_truth_saliency
from crmnet.progress import progress as progress_bar
from crmnet.tables import format_p, markdown_table, write_tsv

LOGO_LETTERS = "ABCDE"


def _best_hit(hits: Hits, k: int, shown: np.ndarray) -> int | None:
    """Index of motif ``k``'s hit with the highest mean displayed attribution (ties: lowest p)."""
    idx = np.flatnonzero(hits.motif == k)
    if len(idx) == 0:
        return None
    means = np.array([shown[hits.seq[i], hits.start[i] : hits.end[i]].mean() for i in idx])
    return int(idx[np.lexsort((hits.pvalue[idx], -means))[0]])


def motif_track(motif: Motif, offset: int, strand: int, width: int) -> np.ndarray:
    """A motif's letter heights (bits) placed in a window, reverse-complemented for a ``-`` strand hit.

    Parameters
    ----------
    motif : Motif
    offset : int
        Window column where the motif starts (may be negative or run past the window: clipped).
    strand : int
        +1 or -1.
    width : int
        Window width.

    Returns
    -------
    ndarray, shape (4, width)
    """
    pwm = motif.pwm if strand > 0 else motif.pwm[::-1, ::-1]
    track = np.zeros((4, width))
    cols = slice(max(offset, 0), min(offset + pwm.shape[1], width))
    track[:, cols] = information_content(pwm)[:, cols.start - offset : cols.stop - offset]
    return track


def _logo_panels(tmp, attr: Attributions, hits: Hits, shown: np.ndarray, measured, ids, pad: int) -> list[dict]:
    """Figure 5A–E: the best-attributed hit of each motif over its JASPAR logo; one panel entry per motif."""
    from crmnet.fsutil import safe_component
    from crmnet.plot import save_figure
    from crmnet.plot.interpret import logo_figure

    panels = []
    for k, m in enumerate(hits.motifs):
        i = _best_hit(hits, k, shown)
        if i is None:
            panels.append({"motif": m.name, "figure": None})
            continue
        s, start, end, strand = int(hits.seq[i]), int(hits.start[i]), int(hits.end[i]), int(hits.strand[i])
        lo, hi = max(0, start - pad), min(int(attr.lengths[s]), end + pad)
        window = attr.onehot[s, :, lo:hi] * shown[s, lo:hi][None, :]
        label = ids[s] if ids is not None else f"sequence {s}"
        title = f"{label}: {m.name} at {start + 1}-{end} (1-based; p = {hits.pvalue[i]:.2g})"
        if measured is not None:
            title += f", measured {measured[s]:.2f}"
        track_title = f"JASPAR {m.matrix_id} {m.name} ({'+' if strand > 0 else '-'} strand)"
        fig = logo_figure(window, motif_track(m, start - lo, strand, hi - lo), title, track_title, first_position=lo)
        name = safe_component(m.name, "motif")  # a MEME file's motif name may hold '/' or '..'
        stem = f"fig5{LOGO_LETTERS[k]}_{name}" if k < len(LOGO_LETTERS) else f"fig5_logo_{name}"
        save_figure(fig, tmp / stem)
        panels.append({"motif": m.name, "figure": stem, "sequence": label, "start_1based": start + 1, "end_1based": end})
    return panels


def _annotation(row: dict) -> str:
    if row["note"] == NO_HITS:
        return NO_HITS
    q = row["q_value"]
    stars = "n.s." if q is None or q >= 0.05 else "***" if q < 1e-3 else "**" if q < 1e-2 else "*"
    return f"{stars}\n{format_p(q, 'q')}"


def _bars(rows: list[dict], keys: tuple[str, str], series: tuple[str, str], ylabel: str, title: str):
    from crmnet.plot.interpret import paired_bars_figure

    def get(r, k):
        return np.nan if r.get(k) is None else r[k]

    means = np.array([[get(r, keys[0]), get(r, keys[1])] for r in rows], dtype=float)
    sems = np.array([[get(r, keys[0].replace("mean", "sem")), get(r, keys[1].replace("mean", "sem"))] for r in rows],
                    dtype=float)
    return paired_bars_figure([r["motif"] for r in rows], means, sems, [_annotation(r) for r in rows],
                              series, ylabel, title)


def figure5(
    attr: Attributions,
    motifs: list[Motif],
    out: str | os.PathLike,
    *,
    measured: np.ndarray | None = None,
    ids: list[str] | None = None,
    config: AttributionConfig | None = None,
    threshold: float = 1e-4,
    truth: dict | None = None,
    overwrite: bool = False,
    logo_pad: int = 6,
    progress: bool = False,
    n_shuffles: int = N_SHUFFLES,
) -> dict:
    """Figure 5A–G of the paper, its tables and a Markdown summary, written atomically into directory ``out``.

    Parameters
    ----------
    attr : Attributions
        Maps of ``n`` sequences (written to ``out/attributions.npz``).
    motifs : list of Motif
        Known motifs, scanned with FIMO at p ≤ ``threshold`` in the variable region.
    out : path-like
        Output directory; refused if it exists unless ``overwrite``.
    measured : ndarray, shape (n,), optional
        Measured expression: adds Figure 5G.
    ids : list of str, optional
        Sequence names for the tables and titles.
    config : AttributionConfig, optional
        Its display rules shape the logos (5A–E); 5F uses the raw signed attributions.
    threshold : float
        FIMO p-value threshold.
    truth : dict, optional
        A simulation truth: adds the planted-site scores (ratio, AUROC; raw and displayed maps).
    overwrite : bool
    logo_pad : int
        Bases shown on each side of a logo's site.
    progress : bool
        Show the steps (FIMO scan, logos, 5F, 5G, planted sites, report; rate, ETA).
    n_shuffles : int
        Column-shuffled matrices per motif for 5F's specificity null (:mod:`crmnet.interpret.motif_null`;
        seed 0); 0 skips it.

    Returns
    -------
    dict
        The summary (``fig5F``, ``fig5G``, ``logos``, ``ground_truth`` as computed).
    """
    config = config or AttributionConfig()
    steps = 4 + (measured is not None) + (truth is not None)
    with progress_bar(total=steps, desc="figure 5", unit="step", enable=progress) as bar:
        return _figure5(attr, motifs, out, measured, ids, config, threshold, truth, overwrite, logo_pad, bar,
                        n_shuffles)


def _figure5(attr, motifs, out, measured, ids, config, threshold, truth, overwrite, logo_pad, bar,
             n_shuffles) -> dict:
    """:func:`figure5` with its step bar open in ``bar``."""
    from crmnet.fsutil import atomic_path, write_text_atomic
    from crmnet.plot import save_figure

    region = attr.mask & variable_region(attr.lengths, attr.mask.shape[1], config.flanks)
    shown = display_filter(attr, config)
    raw = attr.per_position
    hits = scan(motifs, attr.onehot, threshold=threshold, region=region)
    bar.update()
    summary: dict = {"n_sequences": len(attr), "method": attr.method, "threshold": threshold,
                     "n_shuffles": n_shuffles,
                     "config": config.to_dict(), "motifs": [m.matrix_id + " " + m.name for m in motifs]}
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        attr.save(tmp / "attributions.npz")
        write_tsv(tmp / "known_motif_hits.tsv", hits.rows(ids))
        summary["logos"] = _logo_panels(tmp, attr, hits, shown, measured, ids, logo_pad)
        bar.update()
        f_rows = saliency_enrichment(hits, raw, region)
        if n_shuffles:
            write_tsv(tmp / "table5F_shuffled.tsv", shuffle_null(f_rows, motifs, attr.onehot, raw, region,
                                                                 threshold=threshold, n_shuffles=n_shuffles))
        write_tsv(tmp / "table5F_saliency.tsv", f_rows)
        save_figure(_bars(f_rows, ("mean_matched", "mean_unmatched"), ("at motif matches", "rest of the sequence"),
                          f"mean {attr.method} per position (per-sequence means)",
                          "Figure 5F: attribution at motif matches (paired Wilcoxon, BH)"), tmp / "fig5F_saliency")
        summary["fig5F"] = f_rows
        bar.update()
        if measured is not None:
            g_rows = expression_enrichment(hits, measured)
            write_tsv(tmp / "table5G_expression.tsv", g_rows)
            save_figure(_bars(g_rows, ("mean_with", "mean_without"), ("with the motif", "without"),
                              "mean measured expression", "Figure 5G: expression of sequences with the motif"),
                        tmp / "fig5G_expression")
            summary["fig5G"] = g_rows
            bar.update()
        if truth is not None:
            summary["ground_truth"] = {"raw": ground_truth_saliency(raw, truth, region),
                                       "displayed": ground_truth_saliency(shown, truth, region)}
            bar.update()
        write_text_atomic(tmp / "summary.json", json.dumps(summary, indent=2, default=float))
        write_text_atomic(tmp / "summary.md", figure5_markdown(summary))
    bar.update()
    return summary


def _difference(r: dict) -> str:
    if r.get("ci_low") is None:
        return f"{r['difference']:.3g}"
    return f"{r['difference']:.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}]"


def _f_rows(rows: list[dict]) -> list[list]:
    return [[r["motif"], r["n_hits"], r["n_sequences"], NO_HITS, "", "", "", "", ""] if r["note"] == NO_HITS else
            [r["motif"], r["n_hits"], r["n_sequences"], r["mean_matched"], r["mean_unmatched"], _difference(r),
             r["abs_ratio"], r["wilcoxon_p"], r["q_value"]] for r in rows]


def _null_rows(rows: list[dict]) -> list[list]:
    def specific(r):
        return "–" if r.get("specific") is None else ("yes" if r["specific"] else "no")

    return [[r["motif"], _opt(r.get("difference")), f"{_opt(r.get('null_mean'))} ± {_opt(r.get('null_sd'))}",
             r.get("null_n"), _opt(r.get("null_z")), r.get("null_p"), r.get("null_q"), specific(r)] for r in rows]


def _g_rows(rows: list[dict]) -> list[list]:
    return [[r["motif"], 0, NO_HITS, r["mean_all"], "", "", "", "", ""] if r["note"] == NO_HITS else
            [r["motif"], r["n_sequences"], r["mean_with"], r["mean_all"], r["mean_without"], r["mannwhitney_p"],
             r["q_value"], r["mhg_p_top"], r["mhg_p_bottom"]] for r in rows]


def figure5_markdown(s: dict) -> str:
    """The Markdown report of :func:`figure5`'s summary.

    Parameters
    ----------
    s : dict
        As returned by :func:`figure5`.

    Returns
    -------
    str
    """
    lines = [f"# Figure 5: {s['method']} attributions of {s['n_sequences']} sequences", "",
             f"Known motifs scanned with FIMO (memelite), p ≤ {s['threshold']:g}, variable region only.", "",
             "## 5F: attribution at motif matches versus the rest of the same sequences", "",
             ("Per sequence with a hit: mean attribution at the matched positions and at the other positions "
              "of its variable region; paired two-sided Wilcoxon signed-rank test over those sequences, "
              "Benjamini-Hochberg over the motifs. abs ratio = mean |attribution| matched / unmatched."), ""]
    lines += markdown_table(["motif", "hits", "sequences", "mean matched", "mean unmatched",
                             "difference [95% CI]", "abs ratio", "Wilcoxon p", "BH q"], _f_rows(s["fig5F"]),
                            p_columns=("Wilcoxon p", "BH q"))
    if s.get("n_shuffles") and s["fig5F"] and "null_p" in s["fig5F"][0]:
        lines += ["", f"### Specific to the motif? Against {s['n_shuffles']} column-shuffled copies of each matrix", "",
                  ("The same difference for each shuffled matrix (same composition, order destroyed; scanned alike). "
                   "Empirical p = (1 + shuffles at least as extreme in the direction of the effect) / (1 + "
                   "shuffles with hits); BH over the motifs; specific where q ≤ 0.05."), ""]
        lines += markdown_table(["motif", "difference", "shuffled mean ± sd", "shuffles with hits", "z",
                                 "empirical p", "BH q", "specific"], _null_rows(s["fig5F"]),
                                p_columns=("empirical p", "BH q"))
    if "fig5G" in s:
        lines += ["", "## 5G: measured expression of sequences containing the motif", ""]
        lines += markdown_table(["motif", "sequences", "mean with", "mean of all", "mean without",
                                 "Mann-Whitney p", "BH q", "mHG p (high first)", "mHG p (low first)"],
                                _g_rows(s["fig5G"]),
                                p_columns=("Mann-Whitney p", "BH q", "mHG p (high first)", "mHG p (low first)"))
    if "ground_truth" in s:
        lines += ["", "## Ground truth (simulation): |attribution| on planted sites versus off every site", ""]
        lines += markdown_table(
            ["maps", "sites", "mean abs on", "mean abs off", "ratio", "AUROC", "signed mean on",
             "signed mean off", "Mann-Whitney p (abs)"],
            [[maps, k, v["abs_on_sites"], v["abs_elsewhere"], v["ratio"], v["auroc"], v["mean_on_sites"],
              v["mean_elsewhere"], v["mannwhitney_p"]] for maps, groups in s["ground_truth"].items()
             for k, v in groups.items()], p_columns=("Mann-Whitney p (abs)",))
    lines += ["", "Logos (5A–E): " + ", ".join(
        f"{p['motif']} → {p['figure']}" if p["figure"] else f"{p['motif']}: no hit" for p in s["logos"]), ""]
    return "\n".join(lines)


def console_lines(s: dict) -> list[str]:
    """Short text lines of :func:`figure5`'s summary for a terminal (no NaN, p-value bounds, not 0).

    Parameters
    ----------
    s : dict
        As returned by :func:`figure5`.

    Returns
    -------
    list of str
    """
    lines = []
    for r in s["fig5F"]:
        if r["note"] == NO_HITS:
            lines.append(f"  5F {r['motif']:>6}: no hits")
            continue
        lines.append(f"  5F {r['motif']:>6}: {r['n_hits']:5d} hits in {r['n_sequences']:5d} sequences, mean at matches "
                     f"{r['mean_matched']:.4g} vs rest {r['mean_unmatched']:.4g}, abs ratio {_opt(r['abs_ratio'])} "
                     f"({format_p(r['q_value'], 'q')})" + _null_text(r))
    for r in s.get("fig5G", []):
        if r["note"] == NO_HITS:
            lines.append(f"  5G {r['motif']:>6}: no hits")
            continue
        lines.append(f"  5G {r['motif']:>6}: {r['n_sequences']:5d} sequences, mean expression {r['mean_with']:.3f} "
                     f"vs all {r['mean_all']:.3f} ({format_p(r['q_value'], 'q')})")
    for group, v in s.get("ground_truth", {}).get("raw", {}).items():
        lines.append(f"  ground truth, {group}: mean |attribution| on / off the planted sites = {_opt(v['ratio'])}, "
                     f"AUROC {v['auroc']:.3f} (signed means {v['mean_on_sites']:.3g} / {v['mean_elsewhere']:.3g})")
    return lines


def _null_text(r: dict) -> str:
    if r.get("null_p") is None:
        return ""
    verdict = "specific" if r["specific"] else "not specific"
    return (f"; {r['null_n']} shuffled matrices {_opt(r['null_mean'])} ± {_opt(r['null_sd'])}, empirical "
            f"{format_p(r['null_p'])}, {format_p(r['null_q'], 'q')}: {verdict}")


def _opt(v) -> str:
    return "–" if v is None else f"{v:.3g}"
