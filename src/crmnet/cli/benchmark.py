"""Subcommand ``benchmark``: the field's benchmarks (``dream2022``: crmnet.evaluation.dream_benchmark)."""

from __future__ import annotations

from crmnet.cli.options import (
    add_batch_size,
    add_device,
    add_input,
    add_output,
    add_overwrite,
    default_device,
)


def register(subparsers) -> None:
    """Add the ``benchmark`` subcommand to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    p = subparsers.add_parser(
        "benchmark",
        help="score a model the official way on a community benchmark (dream2022)",
        description=(
            "dream2022: the Random Promoter DREAM Challenge 2022 test set (Rafi et al. 2025), scored as the "
            "organisers' prixfixe/evaluation.py does: Pearson r and Spearman rho per subset (all, high, low, yeast, "
            "random, challenging; SNVs, motif_perturbation and motif_tiling on alt/ref differences) and the "
            "weighted Pearson (r^2) and Spearman scores (/4.65). --split final excludes every public-leaderboard "
            "index (needs the labelled test set: crmnet download dream2022); --split public scores the public "
            "leaderboard. Subsets without sequences or predictions are reported missing and the scores are "
            "renormalised by the weights present (labelled partial). Writes OUT/scores.json, scores.md/.tsv "
            "(beside the published teams), scores.png/.pdf and predictions.json."
        ),
    )
    p.add_argument("benchmark", choices=["dream2022"], help="which benchmark")
    what = p.add_mutually_exclusive_group(required=True)
    add_input(what, "--checkpoint", metavar="CKPT", help="a crmnet checkpoint: predicts every test sequence known")
    add_input(what, "--predictions", metavar="FILE", help="a submission: JSON {\"index\": prediction} (the "
                      "leaderboard format) or sequence<TAB>prediction, one line per test index in order")
    add_input(p, "--data-dir", metavar="DIR", help="data directory holding dream2022/ (default: $CRMNET_DATA_DIR, "
                   "else ./data)")
    p.add_argument("--split", choices=["public", "final"], default="final", help="final (official; default) or public")
    add_output(p, "--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    p.add_argument("--label", help="the model's name in the table and figure")
    add_batch_size(p)
    add_device(p)
    add_overwrite(p, "an output directory crmnet wrote earlier")
    p.set_defaults(func=run_benchmark)


def run_benchmark(args) -> int:
    """Score a checkpoint or a submission on a benchmark, print the scores; returns the exit status 0."""
    from crmnet.data.catalogue import data_dir
    from crmnet.evaluation.dream_benchmark import run

    scores = run(data_dir(args.data_dir), args.split, args.out, checkpoint=args.checkpoint,
                 predictions=args.predictions, label=args.label, overwrite=args.overwrite, batch_size=args.batch_size,
                 device=default_device(args.device) if args.checkpoint else None)
    for name, s in scores["subsets"].items():
        cover = "" if s["n"] == s["n_expected"] else f" of {s['n_expected']:,}"
        print(f"{name:20s} n={s['n']:,}{cover}  r={s['pearson']:.4f}  r2={s['pearson_r2']:.4f}  rho={s['spearman']:.4f}")
    tag = " (partial: missing " + ", ".join(scores["missing_subsets"]) + ")" if scores["partial"] else ""
    if scores["partial"] and not scores["missing_subsets"]:
        tag = " (partial coverage)"
    print(f"Pearson score {scores['pearson_score']:.4f}  Spearman score {scores['spearman_score']:.4f}{tag}")
    print(f"wrote {args.out}/scores.json")
    return 0
