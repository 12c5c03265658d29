"""Subcommands ``evaluate``, ``predict`` and ``report``: thin calls into crmnet.evaluation.evaluate/predict/report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crmnet.errors import InputError


def register(subparsers) -> None:
    from crmnet.data.readers import FORMATS

    ev = subparsers.add_parser(
        "evaluate",
        help="score a checkpoint, prediction files or the published peers on the test sets",
        description=(
            "Score a model on the Vaishnav et al. test sets (complex-native, complex-random, defined-native, "
            "defined-random, resolved under --data-dir) or on test files. --checkpoint predicts the raw "
            "sequences in the model's own encoding; --predictions scores existing predictions (joined by "
            "sequence to --test when given); --peers adds the published peer models and tests every pair. "
            "Writes DIR/metrics.json, metrics.csv, predictions/, config.json (+ peers.*, comparisons.*)."
        ),
    )
    src = ev.add_argument_group("what to score (at least one)")
    src.add_argument("--checkpoint", metavar="CKPT", help="a crmnet checkpoint (.pt)")
    src.add_argument("--predictions", metavar="FILE", nargs="+", help="prediction file(s): CSV/TSV with sequence "
                     "and prediction (and measured) columns, e.g. the published peer CSVs or LegNet's TSVs")
    src.add_argument("--peers", action="store_true", help="score the published peer predictions under --data-dir "
                     "(Vaishnav transformer/CNN, DeepSEA, DanQ, DeepATT, LegNet) and compare every pair")
    ev.add_argument("--test", metavar="NAME_OR_FILE", nargs="+", help="test sets by name or file (default: all four "
                    "with --checkpoint/--peers; with --predictions one per file, to join measured values by sequence)")
    ev.add_argument("--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    ev.add_argument("--data-dir", metavar="DIR", help="data directory (default: $CRMNET_DATA_DIR, else ./data)")
    ev.add_argument("--label", help="name of the scored model in tables (default: from the checkpoint or file)")
    ev.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                    help="bootstrap replicates for 95%% intervals and paired tests (0: no intervals; default 1000)")
    ev.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    ev.add_argument("--batch-size", type=int, default=1024, help="prediction batch size (default 1024)")
    ev.add_argument("--device", help="torch device for --checkpoint (default: cuda if available, else cpu)")
    ev.add_argument("--invalid", choices=("error", "N"), default="error",
                    help="characters outside ACGTN: an error (default) or mapped to N")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    ev.set_defaults(func=run_evaluate)

    pr = subparsers.add_parser(
        "predict",
        help="predict expression for sequences in a FASTA, TSV or CSV file",
        description=(
            "Stream sequences through a checkpoint and write a TSV with id, sequence and prediction. Sequences "
            "are encoded in the model's own convention: lower case is read as upper case, longer sequences "
            "are truncated and shorter ones padded with N on the model's side (counts are reported), other "
            "characters are an error unless --invalid N."
        ),
    )
    pr.add_argument("input", metavar="INPUT", help="FASTA, TSV or CSV file of sequences")
    pr.add_argument("--checkpoint", required=True, metavar="CKPT", help="a crmnet checkpoint (.pt)")
    pr.add_argument("--out", required=True, metavar="FILE", help="output TSV (refused if it exists)")
    pr.add_argument("--format", choices=FORMATS, default="auto",
                    help="input format (default: detected from the first line; txt: headerless tab-separated, "
                         "tsv/csv: with a header)")
    pr.add_argument("--batch-size", type=int, default=1024, help="batch size (default 1024; results do not depend on it)")
    pr.add_argument("--chunk-size", type=int, default=65536, help="records read per chunk (default 65536)")
    pr.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    pr.add_argument("--invalid", choices=("error", "N"), default="error",
                    help="characters outside ACGTN: an error (default) or mapped to N")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    pr.set_defaults(func=run_predict)

    rp = subparsers.add_parser(
        "report",
        help="figures 2-4 and a Markdown/HTML summary from evaluation outputs",
        description=(
            "Assemble `crmnet evaluate` output directories (or metrics.json files) into report.md, report.html "
            "and figures: fig2 (predicted vs measured density), fig3 (benchmark bars), fig4 (runs side by "
            "side), each as PNG and PDF."
        ),
    )
    rp.add_argument("inputs", nargs="+", metavar="RUN_OR_METRICS", help="evaluation directories or metrics.json")
    rp.add_argument("--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    rp.add_argument("--title", default="crmnet evaluation report", help="report title")
    rp.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                    help="bootstrap replicates of the paired model comparisons (default 1000)")
    rp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    rp.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    rp.set_defaults(func=run_report)


def _default_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise InputError(None, f"{name} must be at least 1, got {value}")


def run_evaluate(args: argparse.Namespace) -> int:
    from crmnet.evaluation import evaluate as E

    if not (args.checkpoint or args.predictions or args.peers):
        raise InputError(None, "nothing to score: give --checkpoint, --predictions or --peers")
    if args.predictions and args.checkpoint:
        raise InputError(None, "give either --checkpoint or --predictions, not both (use two evaluations and "
                               "`crmnet report` to compare them)")
    if args.bootstrap < 0:
        raise InputError(None, f"--bootstrap must be 0 or more, got {args.bootstrap}")
    _check_positive("--batch-size", args.batch_size)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        from crmnet.errors import OutputExistsError

        raise OutputExistsError(out)
    ev = E.Evaluation()
    config = {"command": "evaluate", "data_dir": str(E.data_dir(args.data_dir).resolve()),
              "bootstrap": args.bootstrap, "seed": args.seed}
    if args.checkpoint:
        from crmnet.models.checkpoint import load_checkpoint

        model = load_checkpoint(args.checkpoint)
        names = args.test or list(E.TEST_SETS)
        tests = [E.resolve_test(t, args.data_dir) for t in names]
        label = args.label or f"{model.checkpoint_meta.get('model', 'model')} ({Path(args.checkpoint).stem})"
        E.evaluate_model(model, tests, ev, label=label, batch_size=args.batch_size,
                         device=_default_device(args.device), invalid=args.invalid, n_boot=args.bootstrap,
                         seed=args.seed)
        config.update(checkpoint=str(Path(args.checkpoint).resolve()), batch_size=args.batch_size)
    if args.predictions:
        if args.test and len(args.test) not in (1, len(args.predictions)):
            raise InputError(None, f"{len(args.predictions)} prediction files but {len(args.test)} --test names: "
                                   "give one test per file, or one for all")
        label = args.label or Path(args.predictions[0]).stem
        for i, path in enumerate(args.predictions):
            test = None
            if args.test:
                test = E.resolve_test(args.test[i if len(args.test) > 1 else 0], args.data_dir)
            E.evaluate_prediction_file(path, test, ev, label=label, n_boot=args.bootstrap, seed=args.seed)
        config.update(predictions=[str(Path(p).resolve()) for p in args.predictions])
    if args.peers:
        names = [t for t in (args.test or E.TEST_SETS) if t in E.TEST_SETS]
        E.peer_table(args.data_dir, names, ev, n_boot=args.bootstrap, seed=args.seed)
    if len(ev.predictions) > 1:
        ev.compare(n_boot=args.bootstrap, seed=args.seed)
    config["tests"] = list(ev.tests)
    E.write_evaluation(ev, out, config, overwrite=args.overwrite)
    _print_summary(ev, out)
    return 0


def _print_summary(ev, out: Path) -> None:
    for model, row in ev.metrics.items():
        for test, m in row.items():
            print(f"{model:32s} {test:16s} n={m['n']:6d}  r={m['pearson_r']:.4f}  r2={m['r2']:.4f}  "
                  f"mse={m['mse']:.4f}")
    for model, info in ev.info.get("models", {}).items():
        for test, t in info.get("tests", {}).items():
            if "matched" in t:
                print(f"{model}: {test}: {t['matched']} sequences matched, {t['unmatched_prediction_rows']} "
                      "prediction rows without a measurement", file=sys.stderr)
            if "encoding_message" in t:
                print(f"{model}: {test}: {t['encoding_message']}", file=sys.stderr)
    print(f"wrote {out}")


def run_predict(args: argparse.Namespace) -> int:
    from crmnet.evaluation.predict import predict_file
    from crmnet.models.checkpoint import load_checkpoint

    _check_positive("--batch-size", args.batch_size)
    _check_positive("--chunk-size", args.chunk_size)
    model = load_checkpoint(args.checkpoint)
    stats = predict_file(model, args.input, args.out, fmt=args.format, batch_size=args.batch_size,
                         device=_default_device(args.device), invalid=args.invalid, overwrite=args.overwrite,
                         chunk_size=args.chunk_size, progress=not args.no_progress and sys.stderr.isatty())
    print(stats.message(model.encoding), file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from crmnet.evaluation.report import build_report

    if args.bootstrap < 1:
        raise InputError(None, f"--bootstrap must be at least 1, got {args.bootstrap}")
    out = build_report(args.inputs, args.out, title=args.title, n_boot=args.bootstrap, seed=args.seed,
                       overwrite=args.overwrite)
    print(f"wrote {out / 'report.md'}, {out / 'report.html'} and figures")
    return 0

