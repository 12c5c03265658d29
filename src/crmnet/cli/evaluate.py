"""Subcommands ``evaluate``, ``predict`` and ``report``: thin calls into crmnet.evaluation.evaluate/predict/report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crmnet.cli.options import (
    SEED,
    SEED_HELP,
    add_batch_size,
    add_device,
    add_input,
    add_output,
    add_overwrite,
    add_quiet,
    default_device,
    int_range,
)
from crmnet.errors import InputError

MAX_BOOTSTRAP = 1_000_000


def register(subparsers) -> None:
    """Add the ``evaluate``, ``predict`` and ``report`` subcommands to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    _register_evaluate(subparsers)
    _register_predict(subparsers)
    _register_report(subparsers)


def _register_evaluate(subparsers) -> None:
    ev = subparsers.add_parser(
        "evaluate",
        help="score a checkpoint, prediction files or the published peers on the test sets",
        description=(
            "Score a model on the Vaishnav et al. test sets (complex-native, complex-random, defined-native, "
            "defined-random, resolved under --data-dir) or on test files. --checkpoint predicts the raw "
            "sequences in the model's own encoding; --predictions scores existing predictions (joined by "
            "sequence to --test when given; each file is its own model unless one --label names them all); "
            "--peers adds the published peer models and tests every pair (with Benjamini-Hochberg q over all "
            "pairs). Every test row is scored, repeated "
            "sequences included; a prediction file must cover its test set (or --allow-partial). "
            "Writes DIR/metrics.json (with coverage and duplicate counts), metrics.csv, predictions/, "
            "config.json (+ peers.*, comparisons.*). Console: r2 is R², the coefficient of determination "
            "1 - SS_res/SS_tot; pearson_r_squared is r² (what the CRMnet paper calls R²)."
        ),
    )
    src = ev.add_argument_group("what to score (at least one)")
    add_input(src, "--checkpoint", metavar="CKPT", help="a crmnet checkpoint (.ckpt from training, .pt from import or download)")
    add_input(src, "--predictions", metavar="FILE", nargs="+", help="prediction file(s): CSV/TSV with sequence "
              "and prediction (and measured) columns, e.g. the published peer CSVs or LegNet's TSVs")
    src.add_argument("--peers", action="store_true", help="score the published peer predictions under --data-dir "
                     "(Vaishnav transformer/CNN, DeepSEA, DanQ, DeepATT, LegNet) and compare every pair")
    add_input(ev, "--test", metavar="NAME_OR_FILE", nargs="+", help="test sets by name or file (default: all four "
              "with --checkpoint/--peers; with --predictions one per file, to join measured values by sequence)")
    add_output(ev, "--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    add_input(ev, "--data-dir", metavar="DIR", help="data directory (default: $CRMNET_DATA_DIR, else ./data)")
    ev.add_argument("--label", nargs="+", metavar="LABEL",
                    help="name of the scored model in tables: one per --predictions file, or one for all when the "
                         "files are one model's predictions on different test sets (default: the checkpoint's "
                         "model, or each file's name); a model scored twice on one test set is refused")
    ev.add_argument("--allow-partial", action="store_true",
                    help="score predictions that cover only part of a test set on the rows they cover (default: an "
                         "error); the coverage is always in metrics.json")
    cols = ev.add_argument_group("columns of CSV/TSV files with a header (--predictions and --test files)")
    cols.add_argument("--sequence-column", metavar="NAME", help="sequence column (default: sequence, seq, 0 or "
                      "seq110)")
    cols.add_argument("--measured-column", metavar="NAME", help="measured expression column (default: 'Measured "
                      "Expression'; e.g. meanEL in Vaishnav et al.'s full tables)")
    cols.add_argument("--predicted-column", metavar="NAME", help="prediction column (default: 'Predicted "
                      "Expression'; e.g. edvPred)")
    cols.add_argument("--group-column", metavar="NAME",
                      help="a column of the test set naming each row's lineage, trajectory or class: the bootstrap "
                           "resamples whole groups, comparisons use a cluster-robust test instead of Steiger's "
                           "(which assumes independent sequences), and r within groups is reported "
                           "(multimodality in metrics.json)")
    ev.add_argument("--bootstrap", type=int_range(0, MAX_BOOTSTRAP), default=1000, metavar="N",
                    help=f"bootstrap replicates for 95%% intervals and paired tests, 0 to {MAX_BOOTSTRAP:,} (0: no "
                         "intervals; default 1000)")
    ev.add_argument("--seed", type=SEED, default=0, help=SEED_HELP)
    add_batch_size(ev)
    add_device(ev)
    ev.add_argument("--invalid", choices=("error", "N"), default="error",
                    help="characters outside ACGTN: an error (default) or mapped to N")
    add_overwrite(ev, "an existing output directory")
    add_quiet(ev)
    ev.set_defaults(func=run_evaluate)


def _register_predict(subparsers) -> None:
    from crmnet.data.formats import FORMATS

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
    add_input(pr, "input", metavar="INPUT", help="FASTA, TSV or CSV file of sequences (plain or gzip), a pipe, "
              "or - for standard input")
    add_input(pr, "--checkpoint", required=True, action="append", metavar="CKPT",
              help="a crmnet checkpoint (.ckpt from training, .pt from import or download); repeat for an "
                   "ensemble: the members' mean, and their spread in a column")
    pr.add_argument("--interval", type=float, metavar="LEVEL",
                    help="add lower and upper columns: the conformal interval at LEVEL in (0, 1), e.g. 0.9 (needs a "
                         "checkpoint made by `crmnet calibrate`)")
    add_output(pr, "--out", required=True, metavar="FILE", stdout=True,
               help="output TSV (refused if it exists); - writes it to standard output")
    pr.add_argument("--format", choices=FORMATS, default="auto",
                    help="input format (default: detected from the first line; txt: headerless tab-separated, "
                         "tsv/csv: with a header)")
    add_batch_size(pr)
    pr.add_argument("--chunk-size", type=int_range(1, 1 << 22), default=8192,
                    help="records read per chunk, 1 to 4,194,304 (default 8192)")
    add_device(pr)
    pr.add_argument("--invalid", choices=("error", "N"), default="error",
                    help="characters outside ACGTN: an error (default) or mapped to N")
    add_quiet(pr)
    add_overwrite(pr, "an existing output file")
    pr.set_defaults(func=run_predict)


def _register_report(subparsers) -> None:
    rp = subparsers.add_parser(
        "report",
        help="figures 2-4 and a Markdown/HTML summary from evaluation outputs",
        description=(
            "Assemble `crmnet evaluate` output directories (or metrics.json files) into report.md, report.html "
            "and figures: fig2 (predicted vs measured density), fig3 (benchmark bars), fig4 (runs side by "
            "side), each as PNG and PDF."
        ),
    )
    add_input(rp, "inputs", nargs="+", metavar="RUN_OR_METRICS", help="evaluation directories or metrics.json")
    add_output(rp, "--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    rp.add_argument("--title", default="crmnet evaluation report", help="report title")
    rp.add_argument("--bootstrap", type=int_range(1, MAX_BOOTSTRAP), default=1000, metavar="N",
                    help=f"bootstrap replicates of the paired model comparisons, 1 to {MAX_BOOTSTRAP:,} (default 1000)")
    rp.add_argument("--seed", type=SEED, default=0, help=SEED_HELP)
    add_overwrite(rp, "an existing output directory")
    add_quiet(rp)
    rp.set_defaults(func=run_report)


def run_evaluate(args: argparse.Namespace) -> int:
    """Score a checkpoint, prediction files or the published peers on the test sets."""
    from crmnet.data.readers import Columns
    from crmnet.evaluation.evaluate import EvaluateConfig, run_evaluation, summary_rows
    from crmnet.evaluation.outputs import write_evaluation
    from crmnet.fsutil import refuse_existing
    from crmnet.tables import render

    cfg = EvaluateConfig(
        checkpoint=args.checkpoint, predictions=tuple(args.predictions or ()), labels=tuple(args.label or ()),
        peers=args.peers, tests=tuple(args.test or ()), data_dir=args.data_dir, bootstrap=args.bootstrap,
        seed=args.seed, batch_size=args.batch_size, device=default_device(args.device) if args.checkpoint else None,
        invalid=args.invalid, allow_partial=args.allow_partial,
        columns=Columns(sequence=args.sequence_column, measured=args.measured_column,
                        predicted=args.predicted_column),
        quiet=args.quiet,
        group_column=args.group_column,
    )
    cfg.check()
    inputs = [*(args.predictions or ()), *(t for t in args.test or () if Path(t).exists()),
              *([args.checkpoint] if args.checkpoint else []), *([args.data_dir] if args.data_dir else [])]
    refuse_existing(args.out, overwrite=args.overwrite, inputs=inputs)  # before the work, not after it
    ev, config = run_evaluation(cfg)
    write_evaluation(ev, args.out, config, overwrite=args.overwrite)
    print(render(*summary_rows(ev), style="text"), end="")
    for model, info in ev.info.get("models", {}).items():
        for test, t in info.get("tests", {}).items():
            if "matched" in t:
                print(f"{model}: {test}: {t['matched']} sequences matched, {t['unmatched_prediction_rows']} "
                      "prediction rows without a measurement", file=sys.stderr)
            if "encoding_message" in t:
                print(f"{model}: {test}: {t['encoding_message']}", file=sys.stderr)
    _print_statistics(ev)
    print(f"wrote {args.out}")
    return 0


def _print_statistics(ev) -> None:
    """Warnings of the multimodality check, and the comparisons that survive multiplicity correction."""
    for model, per_test in ev.coverage.items():
        for test, m in per_test.items():
            message = m["multimodality"]["message"]
            if message:
                print(f"warning: {model}: {test}: {message}", file=sys.stderr)
            if "intervals" in m:
                cells = ", ".join(f"{k}: {v['coverage']:.3f} (width {v['mean_width']:.3g})"
                                  for k, v in m["intervals"].items())
                print(f"{model}: {test}: interval coverage, nominal: empirical (mean width): {cells}; "
                      f"{m['calibration_note']}", file=sys.stderr)
    if ev.comparisons:
        k = sum(c["q_bh"] < 0.05 for c in ev.comparisons)
        print(f"{len(ev.comparisons)} pairwise comparisons: {k} with Benjamini-Hochberg q < 0.05 (q_bh in "
              "comparisons.csv)", file=sys.stderr)


def run_predict(args: argparse.Namespace) -> int:
    """Predict expression for the sequences of a FASTA, TSV or CSV file."""
    from crmnet.evaluation.conformal import check_level, require_calibration
    from crmnet.evaluation.predict import predict_file
    from crmnet.fsutil import refuse_existing
    from crmnet.models.checkpoint import load_models

    if args.interval is not None:
        check_level(args.interval)
    if args.out != "-":
        refuse_existing(args.out, overwrite=args.overwrite, inputs=[args.input, *args.checkpoint])
    model = load_models(args.checkpoint)
    if args.interval is not None and len(args.checkpoint) > 1:
        members = " ".join(f"--checkpoint {c}" for c in args.checkpoint)
        raise InputError(None, f"--interval needs a calibrated model, and an ensemble of {len(args.checkpoint)} "
                               f"checkpoints has none: run `crmnet calibrate {members} --data LABELLED --out "
                               "CAL.pt`, then predict with --checkpoint CAL.pt")
    if args.interval is not None:
        require_calibration(model, args.checkpoint[0])
    stats = predict_file(model, args.input, args.out, fmt=args.format, batch_size=args.batch_size,
                         device=default_device(args.device), invalid=args.invalid, overwrite=args.overwrite,
                         chunk_size=args.chunk_size, progress=not args.quiet, interval=args.interval)
    print(stats.message(model.encoding), file=sys.stderr)
    print(f"wrote {args.out if args.out != '-' else 'the predictions to standard output'}",
          file=sys.stderr if args.out == "-" else sys.stdout)
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Write figures 2-4 and a Markdown/HTML summary from evaluation outputs."""
    from crmnet.evaluation.report import build_report
    from crmnet.fsutil import refuse_existing

    refuse_existing(args.out, overwrite=args.overwrite, inputs=args.inputs)
    out = build_report(args.inputs, args.out, title=args.title, n_boot=args.bootstrap, seed=args.seed,
                       overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {out / 'report.md'}, {out / 'report.html'} and figures")
    return 0

