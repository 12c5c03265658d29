"""``crmnet prepare``: raw training files → a compact memory-mapped store."""

from __future__ import annotations

import argparse

from crmnet.cli.options import SEED, add_input, add_output, add_overwrite, add_quiet
from crmnet.data.formats import STORE_FORMATS


def register(subparsers) -> None:
    """Add the ``prepare`` subcommand to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    p = subparsers.add_parser(
        "prepare",
        help="convert txt/tsv/csv files (plain or gzip) into a memory-mapped training store",
        description=(
            "Stream INPUT files (headerless 'sequence<TAB>expression' training files, or TSV/CSV tables with "
            "a 'Measured Expression' column such as the Vaishnav test CSVs) into a store directory: uint8 codes, float32 targets, a seeded train/validation split and "
            "a manifest. Written under a temporary name and renamed when complete."
        ),
    )
    add_input(p, "inputs", nargs="+", metavar="INPUT", help="input files (txt, tsv or csv, plain or .gz; regular "
              "files, not pipes: the manifest records each one's path and sha256)")
    add_output(p, "--out", required=True, metavar="STORE", help="store directory to create")
    p.add_argument("--format", default="auto", choices=STORE_FORMATS, help="input format (default: auto)")
    p.add_argument("--medium", action="append", metavar="NAME",
                   help="medium of each input, in order (repeat per input), or once for all (default: 'default')")
    p.add_argument("--length", type=int, default=112, help="positions per sequence (default: 112, CRMnet)")
    p.add_argument("--pad", default="end", choices=("end", "start"), help="side padded with N (default: end)")
    p.add_argument("--truncate", default="end", choices=("end", "start"),
                   help="side cut from long sequences (default: end, keeps the first bases; 'start' keeps the last, "
                        "as Vaishnav et al.)")
    p.add_argument("--val-fraction", type=float, default=0.01, help="validation fraction (default: 0.01)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the split and of --balance, 0 to 4,294,967,295 (default: 0)")
    p.add_argument("--invalid", default="error", choices=("error", "N"),
                   help="characters other than ACGTN: an error (default) or mapped to N and counted")
    p.add_argument("--duplicates", default="keep", choices=("keep", "first", "mean", "error"),
                   help="rows repeating a sequence of the same medium: keep all and count them (default), keep "
                        "the first, keep the first with the group's mean target, or refuse")
    p.add_argument("--role", default="measured", choices=("measured", "predicted"),
                   help="what the second column of a headerless txt file is: measured expression (default; a file "
                        "the data catalogue lists as published predictions, e.g. LegNet's, is refused) or a model's "
                        "predictions, to train on them on purpose (recorded in the manifest)")
    p.add_argument("--balance", action="store_true",
                   help="subsample (seeded) every medium to the size of the smallest")
    add_overwrite(p, "an existing STORE (a crmnet store or output, never a directory holding an input)")
    add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert txt/csv files (plain or gzip) into a memory-mapped training store."""
    import time

    from crmnet.data.encoding import Encoding
    from crmnet.data.store import PrepareConfig, prepare
    from crmnet.errors import CrmnetError

    if not 1 <= args.length <= 65535:  # the store keeps true lengths as uint16: longer inputs are refused anyway
        raise CrmnetError(f"--length must be between 1 and 65,535, got {args.length:,}")
    try:
        enc = Encoding(length=args.length, pad=args.pad, truncate=args.truncate)
    except ValueError as exc:
        raise CrmnetError(str(exc)) from None
    start = time.perf_counter()
    try:
        cfg = PrepareConfig(fmt=args.format, media=tuple(args.medium or ()), encoding=enc,
                            val_fraction=args.val_fraction, seed=args.seed, invalid=args.invalid,
                            duplicates=args.duplicates, balance=args.balance, role=args.role, progress=not args.quiet)
        store = prepare(args.inputs, args.out, cfg, overwrite=args.overwrite)
    except ValueError as exc:
        if isinstance(exc, CrmnetError):
            raise
        raise CrmnetError(str(exc)) from None  # a bad option value, reported like any other user error
    seconds = time.perf_counter() - start
    m = store.manifest
    size = sum(f.stat().st_size for f in store.path.iterdir())
    print(
        f"{store.path}: {m['n_rows']:,} rows ({m['n_train']:,} train, {m['n_val']:,} validation; media "
        f"{dict(zip(m['media'], m['media_rows']))}), {m['duplicates']['duplicate_rows']:,} duplicate rows "
        f"({m['duplicates']['policy']}), {m['truncated_rows']:,} truncated, "
        f"{m['invalid']['characters_mapped_to_N']:,} characters mapped to N; {size / max(m['n_rows'], 1):.1f} "
        f"bytes/row; {seconds:.1f} s ({m['rows_read'] / seconds:,.0f} rows/s)"
    )
    return 0
