"""De novo motif discovery: k-mers, mHG and TF-MoDISco, each motif matched to the yeast JASPAR motifs.

:func:`discover` runs (a) Fisher-exact k-mer and gapped k-mer enrichment and (b) the mHG test
(:mod:`crmnet.interpret.kmers`), (c) TF-MoDISco on attribution maps (:func:`modisco_motifs`), matches every
discovered motif with TOMTOM (:mod:`crmnet.interpret.matching`) and, on a simulation, scores the planted
motifs' recovery (:mod:`crmnet.interpret.scoring`, strict rule by default).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from crmnet.data.jaspar import Motif
from crmnet.interpret.kmers import DiscoveryConfig, kmer_enrichment, kmer_mhg, merge_kmers
from crmnet.interpret.matching import Matches, match_rows, tomtom_match
from crmnet.interpret.scoring import motif_classes, recovery
from crmnet.progress import progress as progress_bar
from crmnet.tables import format_p, markdown_table, write_tsv


def modisco_motifs(onehot: np.ndarray, hypothetical: np.ndarray, *, trim: float = 0.3, n_leiden_runs: int = 10,
                   min_metacluster_size: int = 100, max_seqlets: int = 20000, window: int = 15,
                   flank: int = 5) -> list[Motif]:
    """TF-MoDISco (modisco-lite) patterns from attribution maps.

    Each pattern is trimmed to the columns whose total |contribution| is at least ``trim`` × the largest;
    its counts are the position frequencies × the number of seqlets.

    Parameters
    ----------
    onehot, hypothetical : ndarray, shape (n, 4, W)
        Sequences and hypothetical contributions, channels A, C, G, T.
    trim, n_leiden_runs, min_metacluster_size, max_seqlets, window, flank
        TF-MoDISco settings (``window``: sliding window; ``flank``: added on each side of a seqlet).

    Returns
    -------
    list of Motif
        ``modisco_pos_i`` (positive contributions) and ``modisco_neg_i`` patterns.
    """
    from modiscolite.tfmodisco import TFMoDISco

    hyp = hypothetical - hypothetical.mean(axis=1, keepdims=True)  # off-simplex component removed
    pos, neg = TFMoDISco(
        one_hot=np.ascontiguousarray(onehot.transpose(0, 2, 1), dtype=np.float32),
        hypothetical_contribs=np.ascontiguousarray(hyp.transpose(0, 2, 1), dtype=np.float32),
        sliding_window_size=window, flank_size=flank, min_metacluster_size=min_metacluster_size,
        max_seqlets_per_metacluster=max_seqlets, n_leiden_runs=n_leiden_runs, verbose=False,
        # Seqlets are window + 2 flank long; modisco's defaults trim to 30 and re-add 10, which is more
        # than a 110-nt promoter's seqlets hold, and every pattern would be dropped.
        trim_to_window_size=window, initial_flank_to_add=flank,
    )
    motifs = []
    for sign, patterns in (("pos", pos), ("neg", neg)):
        for i, pattern in enumerate(patterns or []):
            contrib = np.abs(pattern.contrib_scores).sum(axis=1)
            keep = np.flatnonzero(contrib >= trim * contrib.max())
            ppm = pattern.sequence[keep[0] : keep[-1] + 1].T
            n_seqlets = len(pattern.seqlets)
            motifs.append(Motif(f"modisco_{sign}_{i + 1}", f"seqlets={n_seqlets}", ppm * n_seqlets + 1e-3))
    return motifs


@dataclass
class _Found:
    """One method's discovered motifs with their TOMTOM matches and table rows."""

    motifs: list[Motif]
    matches: Matches
    rows: list[dict]


def _claimed_class(motif: Motif) -> str | None:
    """The class a discovered motif claims by its name: high expression / positive contributions = activator."""
    parts = motif.name.split("_")
    if "top" in parts or "pos" in parts:
        return "activator"
    if "bottom" in parts or "neg" in parts:
        return "repressor"
    return None


def _discover_motifs(codes: np.ndarray, expression: np.ndarray, region: np.ndarray, config: DiscoveryConfig,
                     attributions, mhg_test: bool, modisco_options: dict | None, bar) -> tuple[dict, dict]:
    """Run each method: returns ({method: motifs}, {table name: k-mer rows}).

    ``bar`` moves per gap and for TF-MoDISco.
    """
    found: dict[str, list[Motif]] = {}
    kmer_rows = kmer_enrichment(codes, expression, region, config, bar.update)
    found["kmer"] = merge_kmers(kmer_rows, config, "kmer")
    tables = {"kmers.tsv": kmer_rows}
    if mhg_test:
        mhg_rows = kmer_mhg(codes, expression, region, config, bar.update)
        found["mhg"] = merge_kmers(mhg_rows, config, "mhg")
        tables["kmers_mhg.tsv"] = mhg_rows
    if attributions is not None:
        if len(attributions) != len(codes):
            raise ValueError(f"{len(attributions)} attribution maps for {len(codes)} sequences")
        # Only the contributions are limited to the variable region: a seqlet reaching into a flank still
        # needs its bases (an all-zero one-hot column makes modisco's frequencies 0/0).
        mask = attributions.mask & region[:, : attributions.mask.shape[1]]
        found["modisco"] = modisco_motifs(attributions.onehot, attributions.hypothetical * mask[:, None, :],
                                          **(modisco_options or {}))
        bar.update()
    return found, tables


def discover(
    sequences: list[str],
    expression: np.ndarray,
    out: str | os.PathLike,
    config: DiscoveryConfig | None = None,
    *,
    attributions=None,
    truth: dict | None = None,
    targets: list[Motif] | None = None,
    mhg_test: bool = True,
    modisco_options: dict | None = None,
    lenient: bool = False,
    overwrite: bool = False,
    source: str | None = None,
    progress: bool = False,
) -> dict:
    """De novo discovery, every motif matched to the known ones with TOMTOM, written into directory ``out``.

    Parameters
    ----------
    sequences : list of str, length n
    expression : ndarray, shape (n,)
        Measured expression.
    out : path-like
        Output directory (tables, MEME file, logos, summary.json, summary.md); written atomically.
    config : DiscoveryConfig, optional
    attributions : crmnet.interpret.attribution.Attributions, optional
        Maps of the same ``n`` sequences: adds TF-MoDISco.
    truth : dict, optional
        A simulation truth: adds recovery of the planted motifs (strict rule; per class).
    targets : list of Motif, optional
        Known motifs (default: all yeast JASPAR CORE motifs).
    mhg_test : bool
        Run the mHG k-mer test.
    modisco_options : dict, optional
        Keyword arguments of :func:`modisco_motifs`.
    lenient : bool
        Also score recovery with the lenient rule (reported as ``recovery_lenient``, labelled).
    overwrite : bool
        Replace ``out``.
    source : str, optional
        Where the sequences came from, for error messages.
    progress : bool
        Show the steps (each gap length of each k-mer test, TF-MoDISco, TOMTOM per method, the report;
        rate, ETA): a bar on a terminal, periodic log lines elsewhere.

    Returns
    -------
    dict
        The summary: n_sequences, config, n_targets and per method n_motifs, motifs (TOMTOM rows) and,
        with a truth, recovery.
    """
    from crmnet.data.construct import variable_region
    from crmnet.data.encoding import Encoding, encode
    from crmnet.data.jaspar import load_yeast_motifs

    config = config or DiscoveryConfig()
    targets = targets if targets is not None else load_yeast_motifs()
    expression = np.asarray(expression, dtype=np.float64)
    width = max(len(s) for s in sequences)
    codes, _ = encode(sequences, Encoding(length=width, channels="ACGT"), source=source)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    region = variable_region(lengths, width, config.flanks)
    n_methods = 1 + mhg_test + (attributions is not None)
    steps = len(config.gaps) + (len(config.mhg_gaps) if mhg_test else 0) + (attributions is not None) + n_methods + 1
    with progress_bar(total=steps, desc="motifs", unit="step", enable=progress) as bar:
        motifs, tables = _discover_motifs(codes, expression, region, config, attributions, mhg_test,
                                          modisco_options, bar)
        found = {}
        for method, ms in motifs.items():
            matches = tomtom_match(ms, targets)
            rows = match_rows(ms, targets, method, matches)
            for r in rows:  # a best match that TOMTOM does not call significant is no match
                r["significant_match"] = r["q_value"] is not None and r["q_value"] < config.alpha
            found[method] = _Found(ms, matches, rows)
            bar.update()
        summary = _summary(len(sequences), config, targets, found, truth, lenient)
        _write_discovery(out, summary, found, tables, config.alpha, overwrite)
        bar.update()
    return summary


def _summary(n: int, config: DiscoveryConfig, targets: list[Motif], found: dict[str, _Found], truth: dict | None,
             lenient: bool) -> dict:
    """The summary of :func:`discover` (recovery scored when a truth is given)."""
    summary: dict = {"n_sequences": n, "config": config.to_dict(), "n_targets": len(targets), "methods": {}}
    for method, f in found.items():
        entry: dict = {"n_motifs": len(f.motifs), "n_matched": sum(r["significant_match"] for r in f.rows),
                       "motifs": f.rows}
        if truth is not None:
            entry.update(_score(f, targets, truth, lenient))
        summary["methods"][method] = entry
    return summary


def _score(f: _Found, targets: list[Motif], truth: dict, lenient: bool) -> dict:
    planted = [m["name"] for m in truth["motifs"]]
    kwargs = {"classes": motif_classes(truth), "query_classes": [_claimed_class(m) for m in f.motifs],
              "matches": f.matches}
    out = {"recovery": recovery(f.motifs, targets, planted, rule="strict", **kwargs)}
    if lenient:
        out["recovery_lenient"] = recovery(f.motifs, targets, planted, rule="lenient", **kwargs)
    return out


def _write_discovery(out, summary: dict, found: dict[str, _Found], tables: dict[str, list[dict]], alpha: float,
                     overwrite: bool) -> None:
    from crmnet.data.jaspar import information_content, write_meme
    from crmnet.fsutil import atomic_path, write_text_atomic
    from crmnet.plot import save_figure
    from crmnet.plot.interpret import motif_logos_figure

    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        for name, rows in tables.items():
            write_tsv(tmp / name, [r for r in rows if r["q_value"] <= alpha] or rows[:50])
        for method, f in found.items():
            if f.motifs:
                titles = [_logo_title(m, r, alpha) for m, r in zip(f.motifs, f.rows)]
                tracks = [information_content(m.pwm) for m in f.motifs]
                save_figure(motif_logos_figure(tracks, titles), tmp / f"discovered_{method}")
        write_tsv(tmp / "discovered_motifs.tsv", [r for f in found.values() for r in f.rows])
        discovered = [m for f in found.values() for m in f.motifs]
        if discovered:
            write_meme(discovered, tmp / "discovered_motifs.meme")
        write_text_atomic(tmp / "summary.json", json.dumps(summary, indent=2, default=float))
        write_text_atomic(tmp / "summary.md", discovery_markdown(summary))


def _logo_title(motif: Motif, row: dict, alpha: float) -> str:
    """A discovered motif's logo title: its JASPAR match only when TOMTOM calls it significant (q < ``alpha``)."""
    if row["significant_match"]:
        return (f"{motif.name}: {row['consensus']} ~ {row['best_match']} ({format_p(row['q_value'], 'q')}, "
                f"E = {row['e_value']:.2g})")
    best = "" if row["best_match"] is None else f" (closest {row['best_match']}, {format_p(row['q_value'], 'q')})"
    return f"{motif.name}: {row['consensus']}: no significant JASPAR match at q < {alpha:g}{best}"


def _match_text(row: dict) -> str:
    text = f"{row['best_match_id']} {row['best_match']}"
    return text if row["significant_match"] else f"none significant (closest: {text})"


def _recovery_line(r: dict) -> str:
    line = (f"{r['rule_text']}: precision {r['precision']:.2f} ({r['true_positives']}/{r['n_discovered']}), "
            f"recall {r['recall']:.2f} ({len(r['recovered'])}/{r['n_planted']}: {', '.join(r['recovered']) or 'none'})")
    for label, c in r.get("classes", {}).items():
        prec = "–" if c["precision"] is None else f"{c['precision']:.2f}"
        line += (f"; {label}s: recall {c['recall']:.2f} ({', '.join(c['recovered']) or 'none'}), precision {prec} "
                 f"({c['true_positives']}/{c['n_discovered']})")
    return line + "."


def discovery_markdown(summary: dict) -> str:
    """The Markdown report of :func:`discover`'s summary.

    Parameters
    ----------
    summary : dict
        As returned by :func:`discover`.

    Returns
    -------
    str
    """
    lines = [f"# De novo motif discovery on {summary['n_sequences']} sequences", "",
             (f"Each motif matched with TOMTOM (memelite) against {summary['n_targets']} S. cerevisiae JASPAR "
              "CORE motifs; E = p × targets, q = Benjamini-Hochberg over all pairs."), ""]
    for method, entry in summary["methods"].items():
        lines += [(f"## {method}: {entry['n_motifs']} motifs, {entry['n_matched']} with a significant JASPAR match "
                  f"(TOMTOM q < {summary['config']['alpha']:g})"), ""]
        for key in ("recovery", "recovery_lenient"):
            if key in entry:
                lines += [_recovery_line(entry[key]), ""]
        if entry["motifs"]:
            lines += markdown_table(
                ["motif", "consensus", "best JASPAR match", "p", "E", "q"],
                [[r["motif"], r["consensus"], _match_text(r), r["p_value"], r["e_value"],
                  r["q_value"]] for r in entry["motifs"]], p_columns=("p", "q"))
            lines.append("")
    return "\n".join(lines)
