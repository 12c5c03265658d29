"""Subcommand ``ecc``: the expression conservation coefficient across yeast isolates (crmnet.design.ecc)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from crmnet.cli.options import (
    POSITIVE,
    SEED,
    SEED_HELP,
    add_batch_size,
    add_device,
    add_input,
    add_output,
    add_overwrite,
    add_quiet,
    default_device,
)

COLUMNS = ("promoter", "n_orthologs", "n_isolates", "mean_hamming", "consensus", "sigma_actual", "sigma_sim",
           "sigma_sim_v2", "ecc_uncorrected", "ecc", "n_predicted")


def register(subparsers) -> None:
    """Add the ``ecc`` subcommand to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    p = subparsers.add_parser(
        "ecc", help="expression conservation coefficient (ECC) of native promoters across 1,011 yeast isolates",
        description="Vaishnav et al. 2022's ECC under any model: per promoter, the isolate-weighted spread of the "
                    "predicted expression of its orthologs against neutral controls mutated at the same Hamming "
                    "distances from the consensus. Writes DIR/ecc.tsv (empty cells where undefined), ecc.png, "
                    "summary.json and summary.md; the model's mutational robustness threshold epsilon derived "
                    "from its ECC is in the summary and, with --write-epsilon, stored in the checkpoint, where "
                    "mutagenesis uses it by default.")
    add_input(p, "--checkpoint", required=True, metavar="CKPT", help="a crmnet checkpoint")
    add_input(p, "--orthologs", required=True, metavar="FILE",
              help="proName, ortho_seq, num_isolates (header; plain or gzip), e.g. "
                   "20190719_Native80.2_orthologous_promoters_unique.txt.gz")
    add_output(p, "--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    p.add_argument("--seed", type=SEED, default=0, help=f"the neutral controls: {SEED_HELP}")
    p.add_argument("--limit", type=POSITIVE, metavar="N", help="only the first N promoters of the file (at least 1)")
    add_input(p, "--divergence", metavar="FILE",
              help="the authors' promoter divergence table: weight epsilon by its num_valid_hamming as their "
                   "notebook does (default: the isolates counted in --orthologs)")
    p.add_argument("--write-epsilon", action="store_true",
                   help="store the derived epsilon in CKPT (rewritten in place, atomically)")
    add_batch_size(p)
    add_device(p)
    add_overwrite(p, "an existing output directory")
    add_quiet(p)
    p.set_defaults(func=run_ecc)


def _summary_md(summary: dict, args: argparse.Namespace) -> str:
    from crmnet.tables import format_p

    return (f"# ECC of {Path(args.checkpoint).name}\n\n"
            f"- orthologs: `{args.orthologs}` ({summary['promoters']:,} promoters"
            f"{'' if args.limit is None else f', --limit {args.limit}'}, {summary['distinct_orthologs']:,} distinct "
            f"orthologs without N), seed {args.seed}\n"
            f"- {summary['sequences_predicted']:,} distinct sequences predicted\n"
            f"- finite ECC: {summary['finite_ecc']:,}; above zero: {100 * summary['fraction_above_zero']:.1f} % "
            f"(one-sided binomial {format_p(summary['binomial_p_above_zero'])}); median "
            f"{summary['median_ecc']:.3f}; correction term {summary['correction']:.3f}\n"
            f"- mutational robustness threshold epsilon = {summary['robustness_epsilon']:.4f} "
            f"(weights: {summary['epsilon_weights']})\n")


def run_ecc(args: argparse.Namespace) -> int:
    """Compute the ECC table, figure and summary; optionally store epsilon in the checkpoint."""
    import time

    import numpy as np

    from crmnet.design.ecc import run_ecc as compute
    from crmnet.design.ecc import store_epsilon
    from crmnet.design.oracle import ModelPredictor
    from crmnet.errors import InputError
    from crmnet.fsutil import atomic_path, refuse_existing
    from crmnet.models.checkpoint import load_checkpoint
    from crmnet.plot.common import save_png
    from crmnet.plot.design import ecc_figure
    from crmnet.tables import write_tsv

    if not Path(args.orthologs).is_file():
        raise InputError(args.orthologs, "no such file")
    refuse_existing(args.out, overwrite=args.overwrite, inputs=[args.checkpoint, args.orthologs])
    model = load_checkpoint(args.checkpoint)
    predictor = ModelPredictor(model, args.batch_size, default_device(args.device))
    t = time.perf_counter()
    rows, summary = compute(predictor, args.orthologs, seed=args.seed, limit=args.limit,
                            divergence=args.divergence, progress=not args.quiet)
    summary.update(seconds=round(time.perf_counter() - t, 1), seed=args.seed, limit=args.limit,
                   checkpoint=str(args.checkpoint), orthologs=str(args.orthologs))
    with atomic_path(args.out, overwrite=args.overwrite, inputs=[args.checkpoint, args.orthologs]) as tmp:
        tmp.mkdir()
        write_tsv(tmp / "ecc.tsv", [{c: r[c] for c in COLUMNS} for r in rows])
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (tmp / "summary.md").write_text(_summary_md(summary, args), encoding="utf-8")
        fig = ecc_figure(np.array([r["ecc"] for r in rows]), np.array([r["mean_hamming"] for r in rows]),
                         summary, Path(args.checkpoint).stem)
        save_png(fig, tmp / "ecc.png")
    print(_summary_md(summary, args).split("\n\n", 1)[1].rstrip(), file=sys.stderr)
    if args.write_epsilon:
        store_epsilon(args.checkpoint, summary)
        print(f"stored epsilon {summary['robustness_epsilon']:.4f} in {args.checkpoint}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0
