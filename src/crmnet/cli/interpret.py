"""Subcommands ``interpret`` (attributions and Figure 5A–G) and ``motifs`` (de novo motif discovery)."""

from __future__ import annotations

from pathlib import Path

from crmnet.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "interpret",
        help="saliency / ISM attributions of a checkpoint, known-motif statistics, Figure 5A-G",
        description=(
            "Attributions (input x gradient, or in-silico saturation mutagenesis) of a trained checkpoint on "
            "SEQUENCES, then the paper's Figure 5: logos of the best-attributed site of each known motif over "
            "its JASPAR logo (5A-E), attribution at motif matches vs all positions (5F) and the measured "
            "expression of sequences with each motif vs all (5G), with tables and summary.md in DIR."
        ),
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="crmnet checkpoint of any registered model")
    p.add_argument("--sequences", required=True, metavar="FILE",
                   help="sequences (txt/TSV, CSV or FASTA; e.g. test/Native_complex.csv); measured values enable 5G")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    _add_motif_arguments(p)
    p.add_argument("--method", choices=("saliency", "ism"), default="saliency",
                   help="saliency = input x gradient (the paper's); ism = every single-base substitution")
    p.add_argument("--threshold", type=float, default=1e-4, help="FIMO p-value threshold (default 1e-4)")
    p.add_argument("--batch-size", type=int, default=1024,
                   help="sequences (ISM: substituted sequences) per batch; results do not depend on it")
    p.add_argument("--limit", type=int, metavar="N", help="use only the first N sequences")
    p.add_argument("--keep-below-mean", action="store_true",
                   help="display rule off: keep values below the per-sequence mean")
    p.add_argument("--min-value", type=float, default=0.1,
                   help="display rule: drop values below this (default 0.1, the paper's); negative = off")
    p.add_argument("--keep-flanks", action="store_true", help="display rule off: show the constant flanks too")
    p.add_argument("--gradient-correction", action="store_true",
                   help="saliency: subtract the mean gradient over A, C, G, T per position (Majdandzic et al. 2023)")
    p.add_argument("--ism-all-positions", action="store_true",
                   help="ISM: mutate the constant flanks too (default: only the variable region)")
    p.add_argument("--truth", metavar="JSON",
                   help="simulation truth (default: SEQUENCES.truth.json if present): planted-site saliency ratio")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    p.set_defaults(func=run_interpret)

    m = subparsers.add_parser(
        "motifs",
        help="de novo motifs: k-mer enrichment, mHG, TF-MoDISco; TOMTOM matches to yeast JASPAR",
        description=(
            "De novo discovery without MEME: (a) k-mers and gapped k-mers enriched in the top vs bottom "
            "expressed sequences (Fisher exact, Benjamini-Hochberg), merged into motifs; (b) the minimum-"
            "hypergeometric (mHG) statistic over the expression ranking (DRIMust) with exact p-values; (c) "
            "TF-MoDISco on attribution maps from 'crmnet interpret'. Every motif is matched with TOMTOM to the "
            "S. cerevisiae JASPAR CORE motifs (p, E, q). With a simulation truth: precision and recall."
        ),
    )
    m.add_argument("--sequences", required=True, metavar="FILE", help="sequences with measured expression")
    m.add_argument("--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    m.add_argument("--attributions", metavar="NPZ",
                   help="attributions.npz from 'crmnet interpret' on the same sequences: adds TF-MoDISco")
    m.add_argument("--k", type=int, default=6, help="informative bases per k-mer (default 6)")
    m.add_argument("--gaps", default="0,1,2,3,4,5,6", help="gap lengths of gapped k-mers, comma-separated")
    m.add_argument("--top", type=int, default=2000, help="top expressed sequences compared (default 2000)")
    m.add_argument("--bottom", type=int, default=2000, help="bottom expressed sequences compared (default 2000)")
    m.add_argument("--alpha", type=float, default=0.05, help="q-value threshold for k-mers (default 0.05)")
    m.add_argument("--max-motifs", type=int, default=10, help="motifs per method and direction (default 10)")
    m.add_argument("--no-mhg", action="store_true", help="skip the mHG test")
    m.add_argument("--modisco-runs", type=int, default=10, help="Leiden runs of TF-MoDISco (default 10)")
    m.add_argument("--limit", type=int, metavar="N", help="use only the first N sequences")
    m.add_argument("--truth", metavar="JSON", help="simulation truth (default: SEQUENCES.truth.json if present)")
    m.add_argument("--release", default=None, help="JASPAR release of the TOMTOM targets (default JASPAR2024)")
    m.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    m.set_defaults(func=run_motifs)


def _add_motif_arguments(p) -> None:
    p.add_argument("--motifs", nargs="+", metavar="NAME_OR_ID",
                   help="yeast JASPAR names or matrix ids (default: the paper's NHP10 REB1 ABF1 AZF1 RAP1)")
    p.add_argument("--meme", metavar="FILE", help="scan the motifs of this MEME file instead")
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
        if args.limit < 1:
            raise InputError("--limit", f"must be positive, not {args.limit}")
        n = min(n, args.limit)
    measured = None if table.measured is None else table.measured[:n]
    if need_measured and measured is None:
        raise InputError(args.sequences, "no measured expression values in this file (needed for discovery)")
    ids = table.ids[:n] if table.ids is not None else None
    truth = None
    truth_file = Path(args.truth) if args.truth else Path(f"{args.sequences}.truth.json")
    if args.truth or truth_file.exists():
        from crmnet.interpret.attribution import read_truth

        # A truth describes the whole file; with --limit only its first sequences are used.
        truth = read_truth(truth_file, len(table.sequences))
        if n < len(table.sequences):
            truth = _truth_prefix(truth, n)
    return table.sequences[:n], measured, ids, truth


def _truth_prefix(truth: dict, n: int) -> dict:
    sites = truth["planted_sites"]
    keep = [i for i, s in enumerate(sites["seq"]) if s < n]
    planted = {k: [v[i] for i in keep] for k, v in sites.items()}
    return {**truth, "n": n, "planted_sites": planted}


def _check_out(args) -> None:
    from crmnet.errors import OutputExistsError

    if Path(args.out).exists() and not args.overwrite:
        raise OutputExistsError(args.out)  # before minutes of work, not after


def run_interpret(args) -> int:
    from crmnet.interpret.attribution import AttributionConfig, attribute, figure5
    from crmnet.models.checkpoint import load_checkpoint

    _check_out(args)
    motifs = _known_motifs(args)
    sequences, measured, ids, truth = _read(args, need_measured=False)
    try:
        config = AttributionConfig(
            method=args.method, batch_size=args.batch_size, drop_below_mean=not args.keep_below_mean,
            min_value=None if args.min_value < 0 else args.min_value, zero_flanks=not args.keep_flanks,
            ism_variable_only=not args.ism_all_positions, gradient_correction=args.gradient_correction,
        )
    except ValueError as exc:  # e.g. --batch-size 0
        raise InputError("arguments", str(exc)) from None
    model = load_checkpoint(args.checkpoint, map_location=args.device)
    attr = attribute(model, sequences, config, source=args.sequences)
    attr.meta.update({"checkpoint": str(args.checkpoint), "sequences": str(args.sequences)})
    summary = figure5(attr, motifs, args.out, measured=measured, ids=ids, config=config, threshold=args.threshold,
                      truth=truth, overwrite=args.overwrite)
    print(f"{args.method} attributions of {len(sequences):,} sequences; Figure 5 written to {args.out}")
    for row in summary["fig5F"]:
        print(f"  5F {row['motif']:>6}: {row['n_hits']:5d} hits, mean at matches {row['mean_matched']:.4g} "
              f"vs all {row['mean_all']:.4g} (q = {row['q_value']:.2g})")
    for row in summary.get("fig5G", []):
        print(f"  5G {row['motif']:>6}: {row['n_sequences']:5d} sequences, mean expression {row['mean_with']:.3f} "
              f"vs all {row['mean_all']:.3f} (q = {row['q_value']:.2g})")
    if "ground_truth" in summary:
        for group, v in summary["ground_truth"]["raw"].items():
            print(f"  ground truth, {group}: mean |attribution| on / off the planted sites = {v['ratio']:.3g} "
                  f"(signed means {v['mean_on_sites']:.3g} / {v['mean_elsewhere']:.3g})")
    return 0


def run_motifs(args) -> int:
    from crmnet.data.jaspar import DEFAULT_RELEASE, load_yeast_motifs
    from crmnet.interpret.attribution import Attributions
    from crmnet.interpret.motifs import DiscoveryConfig, discover

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
        attributions = _matching_attributions(Attributions.load(args.attributions), sequences, args.attributions)
    targets = load_yeast_motifs(release=args.release or DEFAULT_RELEASE)
    summary = discover(sequences, measured, args.out, config, attributions=attributions, truth=truth, targets=targets,
                       mhg_test=not args.no_mhg, modisco_options={"n_leiden_runs": args.modisco_runs},
                       overwrite=args.overwrite, source=args.sequences)
    print(f"de novo discovery on {len(sequences):,} sequences written to {args.out}")
    for method, entry in summary["methods"].items():
        line = f"  {method}: {entry['n_motifs']} motifs"
        if "recovery" in entry:
            r = entry["recovery"]
            line += f"; precision {r['precision']:.2f}, recall {r['recall']:.2f} ({', '.join(r['recovered']) or 'none'})"
        print(line)
    return 0


def _matching_attributions(attr, sequences: list[str], path: str):
    """The attribution maps of ``sequences`` (the first ones of ``attr``), checked base by base."""
    import numpy as np

    from crmnet.interpret.attribution import Attributions, sequence_onehot

    n = len(sequences)
    if len(attr) < n:
        raise InputError(path, f"{len(attr)} attribution maps for {n} sequences")
    width = attr.onehot.shape[2]
    if max(len(s) for s in sequences) > width:
        raise InputError(path, "the attribution maps are shorter than the sequences: not computed on this file")
    x = sequence_onehot(sequences, width)
    seen = attr.mask[:n]
    if not np.array_equal(x.argmax(1)[seen], attr.onehot[:n].argmax(1)[seen]):
        raise InputError(path, "the attribution maps were computed on other sequences than --sequences")
    return Attributions(attr.onehot[:n], attr.hypothetical[:n], attr.lengths[:n], attr.mask[:n], attr.method,
                        dict(attr.meta))
