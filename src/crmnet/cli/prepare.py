"""``crmnet prepare``: raw training files → a compact memory-mapped store."""

from __future__ import annotations

import argparse

from crmnet.cli.options import (
    SEED,
    Flag,
    add_config_options,
    add_input,
    add_output,
    add_overwrite,
    add_quiet,
    config_values,
    int_range,
)
from crmnet.data.formats import STORE_FORMATS
from crmnet.data.store import PrepareConfig

MAX_LENGTH = 65535  # the store keeps true lengths as uint16: longer inputs are refused anyway
#: the options of PrepareConfig's fields (encoding: --length, --pad, --truncate; progress: --quiet)
PREPARE_FLAGS = {
    "fmt": Flag("input format (default: auto)", flag="--format", choices=STORE_FORMATS),
    "media": Flag("medium of each input, in order (repeat per input), or once for all (default: 'default')",
                  flag="--medium", action="append", metavar="NAME", default=None, convert=tuple),
    "val_fraction": Flag("validation fraction, at least 0 and below 1 (default: 0.01)"),
    "seed": Flag("seed of the split and of --balance, 0 to 4,294,967,295 (default: 0)", type=SEED),
    "invalid": Flag("characters other than ACGTN: an error (default) or mapped to N and counted"),
    "duplicates": Flag("rows repeating a sequence of the same medium: keep all and count them (default), keep "
                       "the first, keep the first with the group's mean target, or refuse"),
    "balance": Flag("subsample (seeded) every medium to the size of the smallest", action="store_true"),
    "role": Flag("what the second column of a headerless txt file is: measured expression (default; a file "
                 "the data catalogue lists as published predictions, e.g. LegNet's, is refused) or a model's "
                 "predictions, to train on them on purpose (recorded in the manifest)"),
}


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
    add_config_options(p, PrepareConfig, PREPARE_FLAGS, skip=("encoding", "progress", "chunk_bytes"))
    # the store's Encoding, from three options
    p.add_argument("--length", type=int_range(1, MAX_LENGTH), default=112,
                   help=f"positions per sequence, 1 to {MAX_LENGTH:,} (default: 112, CRMnet)")
    p.add_argument("--pad", default="end", choices=("end", "start"), help="side padded with N (default: end)")
    p.add_argument("--truncate", default="end", choices=("end", "start"),
                   help="side cut from long sequences (default: end, keeps the first bases; 'start' keeps the last, "
                        "as Vaishnav et al.)")
    add_overwrite(p, "an existing STORE (a crmnet store or output, never a directory holding an input)")
    add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert txt/csv files (plain or gzip) into a memory-mapped training store."""
    import time

    from crmnet.data.encoding import Encoding
    from crmnet.data.store import prepare
    from crmnet.errors import CrmnetError

    try:
        enc = Encoding(length=args.length, pad=args.pad, truncate=args.truncate)
    except ValueError as exc:
        raise CrmnetError(str(exc)) from None
    start = time.perf_counter()
    try:
        cfg = PrepareConfig(**config_values(args), encoding=enc, progress=not args.quiet)
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
