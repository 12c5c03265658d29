"""Subcommands ``calibrate`` and ``ensemble``: thin calls into crmnet.evaluation.calibrate and crmnet.models.ensemble."""

from __future__ import annotations

import argparse
import sys

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
)
from crmnet.errors import InputError


def register(subparsers) -> None:
    """Add the ``calibrate`` and ``ensemble`` subcommands to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    ca = subparsers.add_parser(
        "calibrate", help="conformal calibration: a checkpoint that gives prediction intervals",
        description="Predict a labelled set the model was not trained on (--data: a test-set name or any file "
                    "`crmnet evaluate --test` reads; or --pairs with measured variant effects) and write an "
                    "ordinary checkpoint that also carries a split-conformal calibration: the level-independent "
                    "scores (absolute residuals, or for an ensemble residuals over the members' spread where "
                    "that narrows intervals without losing coverage on held-out halves), the set's size, SHA-256 "
                    "and medium. Then `crmnet predict --interval 0.9` gives lower and upper bounds at any level.")
    add_input(ca, "--checkpoint", required=True, action="append", metavar="CKPT",
              help="a crmnet checkpoint; repeat to calibrate the ensemble of several (written as one)")
    what = ca.add_mutually_exclusive_group(required=True)
    add_input(what, "--data", metavar="NAME_OR_FILE", help="labelled sequences: a test set (complex-native, "
                      "complex-random, defined-native, defined-random) or a file with sequence and measured columns")
    add_input(what, "--pairs", metavar="FILE", help="TSV/CSV of reference/variant pairs with measured deltas: "
                      "calibrates the intervals of `crmnet variants`")
    add_output(ca, "--out", required=True, metavar="CAL.pt", help="calibrated checkpoint to write")
    add_input(ca, "--data-dir", metavar="DIR", help="data directory of the test sets (default: $CRMNET_DATA_DIR, "
                    "else ./data)")
    ca.add_argument("--sequence-column", metavar="NAME", help="--data: sequence column (as in evaluate)")
    ca.add_argument("--measured-column", metavar="NAME", help="--data: measured column (default 'Measured "
                    "Expression'); --pairs: measured delta column (default measured)")
    ca.add_argument("--ref-column", default="reference", help="--pairs: reference column (default reference)")
    ca.add_argument("--alt-column", default="variant", help="--pairs: variant column (default variant)")
    ca.add_argument("--medium", help="the calibration set's medium, recorded (default: the test set's, else none)")
    ca.add_argument("--method", choices=("auto", "absolute", "normalized"), default="auto",
                    help="conformity score (default auto: normalised by the ensemble's spread only where it narrows "
                         "held-out intervals without losing coverage)")
    ca.add_argument("--seed", type=SEED, default=0, help=f"auto's random halves: {SEED_HELP}")
    add_batch_size(ca)
    add_device(ca)
    add_overwrite(ca, "an existing output checkpoint")
    add_quiet(ca)
    ca.set_defaults(func=run_calibrate)

    en = subparsers.add_parser(
        "ensemble", help="several checkpoints as one model: mean prediction and members' spread",
        description="Write one checkpoint holding every member (same input layout): it predicts the members' "
                    "mean; `predict` adds their spread (standard deviation). Reverse-complement averaging stays "
                    "inside each member. Calibrate it with `crmnet calibrate` like a single model.")
    add_input(en, "members", nargs="+", metavar="CKPT", help="member checkpoints (two or more)")
    add_output(en, "--out", required=True, metavar="E.pt", help="ensemble checkpoint to write")
    add_overwrite(en, "an existing output checkpoint")
    en.set_defaults(func=run_ensemble)


def run_calibrate(args: argparse.Namespace) -> int:
    """Calibrate a checkpoint (or an ensemble) on labelled sequences or measured variant effects."""
    from crmnet.data.readers import Columns
    from crmnet.fsutil import refuse_existing
    from crmnet.models.checkpoint import load_models

    refuse_existing(args.out, overwrite=args.overwrite, inputs=[*args.checkpoint, args.data or args.pairs])
    model = load_models(args.checkpoint)
    device = default_device(args.device)
    if args.pairs:
        from crmnet.design.uncertainty import calibrate_pairs

        cal = calibrate_pairs(model, args.pairs, args.out, ref_column=args.ref_column, alt_column=args.alt_column,
                              measured_column=args.measured_column or "measured", medium=args.medium,
                              method=args.method, seed=args.seed, batch_size=args.batch_size, device=device,
                              overwrite=args.overwrite)
    else:
        from crmnet.evaluation.calibrate import calibrate_checkpoint

        cal = calibrate_checkpoint(model, args.data, args.out, data_dir=args.data_dir,
                                   columns=Columns(sequence=args.sequence_column, measured=args.measured_column),
                                   medium=args.medium, method=args.method, seed=args.seed,
                                   batch_size=args.batch_size, device=device, overwrite=args.overwrite,
                                   progress=not args.quiet)
    what = "variant effects" if cal.target == "delta" else "expression"
    print(f"calibrated {what} on {cal.n:,} {'pairs' if cal.target == 'delta' else 'sequences'} of {cal.source} "
          f"({cal.members} member{'s' if cal.members > 1 else ''}): method {cal.method}", file=sys.stderr)
    print(f"  why: {cal.selection.get('reason', args.method + ' was asked for')}", file=sys.stderr)
    from crmnet.evaluation.conformal import conformal_quantile

    widths = ", ".join(f"{level:g}: ±{conformal_quantile(cal.scores, level):.3g}"
                       f"{'' if cal.method == 'absolute' else ' × (spread + ' + format(cal.offset, '.3g') + ')'}"
                       for level in (0.8, 0.9, 0.95))
    print(f"  half-widths by level: {widths}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


def run_ensemble(args: argparse.Namespace) -> int:
    """Write an ensemble checkpoint of several member checkpoints."""
    from crmnet.fsutil import refuse_existing
    from crmnet.models.checkpoint import load_models, save_checkpoint

    if len(args.members) < 2:
        raise InputError(None, f"an ensemble needs at least two checkpoints, got {len(args.members)}")
    refuse_existing(args.out, overwrite=args.overwrite, inputs=args.members)
    model = load_models(args.members)
    save_checkpoint(args.out, model, provenance=model.checkpoint_meta["provenance"], overwrite=args.overwrite)
    print(f"ensemble of {len(model.members)} members ({', '.join(sorted({c['model'] for c in model.config.members}))}, "
          f"input {model.encoding.length} nt {model.encoding.channels}) -> {args.out}")
    return 0
