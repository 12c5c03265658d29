"""Subcommands ``interpret`` (attributions and Figure 5A–G) and ``motifs`` (de novo motif discovery)."""

from __future__ import annotations

from pathlib import Path

from crmnet.cli.options import (
    POSITIVE,
    add_batch_size,
    add_device,
    add_input,
    add_output,
    add_overwrite,
    add_quiet,
    default_device,
    finite_float,
    int_range,
)
from crmnet.data.construct import add_flanks_option
from crmnet.errors import InputError


def register(subparsers) -> None:
    """Add the ``interpret`` and ``motifs`` subcommands to ``subparsers`` (argparse)."""
    p = subparsers.add_parser(
        "interpret",
        help="saliency / ISM attributions of a checkpoint, known-motif statistics, Figure 5A-G",
        description=(
            "Attributions (input x gradient, or in-silico saturation mutagenesis) of a trained checkpoint on "
            "SEQUENCES, then the paper's Figure 5: logos of the best-attributed site of each known motif over "
            "its JASPAR logo (5A-E), attribution at motif matches vs the rest of the same sequences (5F, paired "
            "Wilcoxon over sequences) and the measured "
            "expression of sequences with each motif vs all (5G), with tables and summary.md in DIR."
        ),
    )
    add_input(p, "--checkpoint", required=True, metavar="CKPT", help="crmnet checkpoint of any registered model")
    add_input(p, "--sequences", required=True, metavar="FILE",
              help="sequences (txt/TSV, CSV or FASTA; e.g. test/Native_complex.csv); measured values enable 5G")
    add_output(p, "--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    _add_motif_arguments(p)
    p.add_argument("--method", choices=("saliency", "ism", "deeplift_shap", "integrated_gradients"), default="saliency",
                   help="saliency = input x gradient (the paper's); ism = every single-base substitution; "
                        "deeplift_shap = DeepLIFT/SHAP against 20 dinucleotide shuffles (tangermeme); "
                        "integrated_gradients = from all-N (captum)")
    p.add_argument("--ig-steps", type=int_range(1, 10_000), default=64, metavar="N",
                   help="integration points for integrated_gradients, 1 to 10,000 (default 64)")
    p.add_argument("--threshold", type=finite_float(0, 1, open_low=True), default=1e-4,
                   help="FIMO p-value threshold, in (0, 1] (default 1e-4)")
    p.add_argument("--shuffles", type=int_range(0, 10_000), default=30, metavar="N",
                   help="5F: column-shuffled copies of each motif matrix as its specificity null, 0 to 10,000 "
                        "(default 30; 0: none)")
    add_batch_size(p, what="sequences (ISM: substituted sequences) per batch")
    p.add_argument("--limit", type=POSITIVE, metavar="N", help="use only the first N sequences (at least 1)")
    p.add_argument("--keep-below-mean", action="store_true",
                   help="display rule off: keep values below the per-sequence mean")
    p.add_argument("--min-value", type=finite_float(), default=0.1,
                   help="display rule: drop values below this (default 0.1, the paper's); negative = off")
    p.add_argument("--keep-flanks", action="store_true", help="display rule off: show the constant flanks too")
    p.add_argument("--gradient-correction", action="store_true",
                   help="saliency: subtract the mean gradient over A, C, G, T per position (Majdandzic et al. 2023)")
    p.add_argument("--ism-all-positions", action="store_true",
                   help="ISM: mutate the constant flanks too (default: only the variable region)")
    add_input(p, "--truth", metavar="JSON",
              help="simulation truth (default: SEQUENCES.truth.json if present): planted-site ratio and AUROC")
    add_device(p)
    add_overwrite(p, "DIR if it exists")
    add_flanks_option(p)
    add_quiet(p)
    p.set_defaults(func=run_interpret)

    _register_motifs(subparsers)


def _register_motifs(subparsers) -> None:
    m = subparsers.add_parser(
        "motifs",
        help="de novo motifs: k-mer enrichment, mHG, TF-MoDISco; TOMTOM matches to yeast JASPAR",
        description=(
            "De novo discovery without MEME: (a) k-mers and gapped k-mers enriched in the top vs bottom "
            "expressed sequences (Fisher exact, Benjamini-Hochberg), merged into motifs; (b) the minimum-"
            "hypergeometric (mHG) statistic over the expression ranking (DRIMust) with exact p-values; (c) "
            "TF-MoDISco on attribution maps from 'crmnet interpret'. Every motif is matched with TOMTOM to the "
            "S. cerevisiae JASPAR CORE motifs (p, E, q). With a simulation truth: precision and recall, strict "
            "rule (a motif is correct when its best match among all yeast motifs is a planted one at q <= 0.05; "
            "each planted motif counts once), overall and for activators and repressors."
        ),
    )
    add_input(m, "--sequences", required=True, metavar="FILE", help="sequences with measured expression")
    add_output(m, "--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    add_input(m, "--attributions", metavar="NPZ",
              help="attributions.npz from 'crmnet interpret' on the same sequences: adds TF-MoDISco")
    m.add_argument("--k", type=int, default=6, help="informative bases per k-mer (default 6)")
    m.add_argument("--gaps", default="0,1,2,3,4,5,6", help="gap lengths of gapped k-mers, comma-separated")
    m.add_argument("--top", type=POSITIVE, default=2000, help="top expressed sequences compared (default 2000)")
    m.add_argument("--bottom", type=POSITIVE, default=2000, help="bottom expressed sequences compared (default 2000)")
    m.add_argument("--alpha", type=finite_float(0, 1, open_low=True), default=0.05,
                   help="q-value threshold for k-mers, in (0, 1] (default 0.05)")
    m.add_argument("--max-motifs", type=int_range(1, 1000), default=10,
                   help="motifs per method and direction, 1 to 1,000 (default 10)")
    m.add_argument("--no-mhg", action="store_true", help="skip the mHG test")
    m.add_argument("--modisco-runs", type=int_range(1, 1000), default=10,
                   help="Leiden runs of TF-MoDISco, 1 to 1,000 (default 10)")
    m.add_argument("--limit", type=POSITIVE, metavar="N", help="use only the first N sequences (at least 1)")
    add_input(m, "--truth", metavar="JSON", help="simulation truth (default: SEQUENCES.truth.json if present)")
    m.add_argument("--release", default=None, help="JASPAR release of the TOMTOM targets (default JASPAR2024)")
    m.add_argument("--lenient", action="store_true",
                   help="with a truth, also score recovery by the lenient rule (any planted match at q <= 0.05 or "
                        "E <= 1, duplicates counted), labelled beside the strict rule")
    add_overwrite(m, "DIR if it exists")
    add_quiet(m)
    m.set_defaults(func=run_motifs)


def _add_motif_arguments(p) -> None:
    p.add_argument("--motifs", nargs="+", metavar="NAME_OR_ID",
                   help="yeast JASPAR names or matrix ids (default: the paper's NHP10 REB1 ABF1 AZF1 RAP1)")
    add_input(p, "--meme", metavar="FILE", help="scan the motifs of this MEME file instead")
    p.add_argument("--release", default=None, help="JASPAR release (default JASPAR2024)")


def _known_motifs(args):
    from crmnet.data.jaspar import DEFAULT_RELEASE, PAPER_MOTIFS, load_yeast_motifs, read_meme

    if args.meme and args.motifs:
        raise InputError("--meme", "give either --motifs or --meme, not both")
    if args.meme:
        return read_meme(args.meme)
    return load_yeast_motifs(args.motifs or list(PAPER_MOTIFS), release=args.release or DEFAULT_RELEASE)


def _read(args, need_measured: bool):
    from crmnet.data.readers import read_records

    table = read_records(args.sequences)
    n = len(table.sequences)
    if args.limit is not None:
        n = min(n, args.limit)
    measured = None if table.measured is None else table.measured[:n]
    if need_measured and measured is None:
        raise InputError(args.sequences, "no measured expression values in this file (needed for discovery)")
    ids = table.ids[:n] if table.ids is not None else None
    truth = None
    truth_file = Path(args.truth) if args.truth else Path(f"{args.sequences}.truth.json")
    if args.truth or truth_file.exists():
        from crmnet.interpret.scoring import read_truth, truth_prefix

        # A truth describes the whole file; with --limit only its first sequences are used.
        truth = truth_prefix(read_truth(truth_file, len(table.sequences)), n)
    return table.sequences[:n], measured, ids, truth


def complete_regions(sequences, encoding) -> list:
    """``sequences`` with each bare 80-nt variable region completed by the construct's flanks, said once on stderr."""
    import sys

    from crmnet.data.construct import add_flanks, flank_note

    sequences, n = add_flanks(sequences, encoding)
    if n:
        print(flank_note(n), file=sys.stderr)
    return sequences


def _check_out(args) -> None:
    from crmnet.errors import OutputExistsError

    if Path(args.out).exists() and not args.overwrite:
        raise OutputExistsError(args.out)  # before minutes of work, not after


def run_interpret(args) -> int:
    """``crmnet interpret``: attributions of a checkpoint and Figure 5; returns the exit status."""
    from crmnet.interpret.attribution import AttributionConfig, attribute
    from crmnet.interpret.figure5 import console_lines, figure5
    from crmnet.models.checkpoint import load_checkpoint

    _check_out(args)
    motifs = _known_motifs(args)
    sequences, measured, ids, truth = _read(args, need_measured=False)
    try:
        config = AttributionConfig(
            method=args.method, batch_size=args.batch_size, drop_below_mean=not args.keep_below_mean,
            min_value=None if args.min_value < 0 else args.min_value, zero_flanks=not args.keep_flanks,
            ism_variable_only=not args.ism_all_positions, gradient_correction=args.gradient_correction,
            ig_steps=args.ig_steps,
        )
    except ValueError as exc:  # e.g. --batch-size 0
        raise InputError("arguments", str(exc)) from None
    model = load_checkpoint(args.checkpoint, map_location=default_device(args.device))
    if args.flanks:
        sequences = complete_regions(sequences, model.encoding)
    attr = attribute(model, sequences, config, source=args.sequences, progress=not args.quiet)
    attr.meta.update({"checkpoint": str(args.checkpoint), "sequences": str(args.sequences)})
    summary = figure5(attr, motifs, args.out, measured=measured, ids=ids, config=config, threshold=args.threshold,
                      truth=truth, overwrite=args.overwrite, progress=not args.quiet, n_shuffles=args.shuffles)
    print(f"{args.method} attributions of {len(sequences):,} sequences; Figure 5 written to {args.out}")
    print("\n".join(console_lines(summary)))
    return 0


def run_motifs(args) -> int:
    """``crmnet motifs``: de novo discovery and, with a truth, recovery scores; returns the exit status."""
    from crmnet.data.jaspar import DEFAULT_RELEASE, load_yeast_motifs
    from crmnet.interpret.attribution import Attributions, matching_attributions
    from crmnet.interpret.denovo import discover
    from crmnet.interpret.kmers import DiscoveryConfig

    _check_out(args)
    try:
        gaps = tuple(int(g) for g in args.gaps.split(",") if g.strip())
        config = DiscoveryConfig(k=args.k, gaps=gaps, n_top=args.top, n_bottom=args.bottom, alpha=args.alpha,
                                 max_motifs=args.max_motifs)
    except ValueError as exc:
        raise InputError("arguments", str(exc)) from None
    sequences, measured, _, truth = _read(args, need_measured=True)
    attributions = None
    if args.attributions:
        attributions = matching_attributions(Attributions.load(args.attributions), sequences, args.attributions)
    targets = load_yeast_motifs(release=args.release or DEFAULT_RELEASE)
    summary = discover(sequences, measured, args.out, config, attributions=attributions, truth=truth, targets=targets,
                       mhg_test=not args.no_mhg, modisco_options={"n_leiden_runs": args.modisco_runs},
                       lenient=args.lenient, overwrite=args.overwrite, source=args.sequences,
                       progress=not args.quiet)
    print(f"de novo discovery on {len(sequences):,} sequences written to {args.out}")
    for method, entry in summary["methods"].items():
        line = (f"  {method}: {entry['n_motifs']} motifs, {entry['n_matched']} with a significant JASPAR match "
                f"(TOMTOM q < {config.alpha:g}; the others are listed as not significant)")
        for key in ("recovery", "recovery_lenient"):
            if key in entry:
                r = entry[key]
                precision = "–" if r["precision"] is None else f"{r['precision']:.2f}"
                line += (f"; {r['rule']}: precision {precision}, recall {r['recall']:.2f} "
                         f"({', '.join(r['recovered']) or 'none'})")
        print(line)
    return 0
