"""Subcommand ``design``: graded promoter libraries under constraints.

Also the constraint options every design command shares (``crmnet evolve`` takes them too).
"""

from __future__ import annotations

import argparse
import sys

from crmnet.cli.options import (
    POSITIVE,
    SEED,
    SEED_HELP,
    Flag,
    add_batch_size,
    add_config_options,
    add_device,
    add_input,
    add_output,
    add_overwrite,
    add_quiet,
    config_values,
    default_device,
    finite_float,
    int_range,
)
from crmnet.errors import InputError

# Limits checked before any work.
MAX_DESIGNS = 10_000
MAX_STEPS = 10_000
MAX_POOL = 1_000_000


def add_constraint_options(p, distance: bool = True) -> None:
    """The options of :class:`crmnet.design.constraints.ConstraintConfig`, one flag per field.

    ``distance=False`` leaves out ``--min-distance`` (a trajectory is not a library of designs).
    """
    g = p.add_argument_group("constraints (checked on every proposal and again before writing)")
    g.add_argument("--protect", metavar="RANGES", help="positions that keep the start's bases, 1-based inclusive "
                                                       "ranges of the full sequence, e.g. 18-25,60-64")
    g.add_argument("--gc", metavar="LO-HI", help="G+C fraction of the variable region, e.g. 0.35-0.60")
    g.add_argument("--forbid", metavar="SEQS", help="comma-separated sequences (IUPAC codes allowed) absent from "
                                                    "both strands, e.g. GGTCTC,CGTCTC,GAATTC")
    g.add_argument("--max-homopolymer", type=POSITIVE, metavar="N", help="longest run of one base touching the "
                                                                    "variable region")
    g.add_argument("--max-edits", type=int_range(0), metavar="N", help="most substitutions from the start sequence")
    if distance:
        g.add_argument("--min-distance", type=int_range(0), default=1, metavar="N",
                       help="least Hamming distance between any two designs (default 1: distinct)")


def constraints_from(args: argparse.Namespace):
    """The :class:`~crmnet.design.constraints.ConstraintConfig` of the parsed options."""
    from crmnet.design.constraints import ConstraintConfig, parse_forbid, parse_gc, parse_ranges

    return ConstraintConfig(protect=parse_ranges(args.protect), gc=parse_gc(args.gc), forbid=parse_forbid(args.forbid),
                            max_homopolymer=args.max_homopolymer, max_edits=args.max_edits,
                            min_distance=getattr(args, "min_distance", 1))


def predictors_from(args) -> dict:
    """``--checkpoint [NAME=]CKPT`` (repeated) → name → ModelPredictor (default names A, B, ...)."""
    from crmnet.design.oracle import ModelPredictor
    from crmnet.models.checkpoint import load_checkpoint

    predictors = {}
    for k, spec in enumerate(args.checkpoint):
        name, _, path = spec.rpartition("=") if "=" in spec else (chr(ord("A") + k), "", spec)
        if not name.isidentifier() or name in predictors:
            raise InputError(None, f"--checkpoint {spec!r}: NAME must be a unique identifier (letters, digits, _)")
        predictors[name] = ModelPredictor(load_checkpoint(path), args.batch_size, default_device(args.device))
    return predictors


def _levels(text: str) -> tuple[float, ...]:
    """``--levels`` ``6,9,12,15`` → (6.0, 9.0, 12.0, 15.0)."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(None, f"--levels {text!r}: expected comma-separated numbers, e.g. 6,9,12,15") from None


def window_range(text: str) -> tuple[int, int] | None:
    """``--window START-END`` (1-based inclusive) → 0-based half-open (errors name the option)."""
    from crmnet.design.mutagenesis import parse_window

    return parse_window(text)


WINDOW_HELP = "positions that may change, 1-based inclusive (default: the variable region)"
#: the options of DesignConfig's fields (--levels or --target: one of them)
DESIGN_FLAGS = {
    "levels": Flag("target levels of a graded library, e.g. 6,9,12,15", type=str, metavar="L1,L2,...",
                   default=None, convert=_levels),
    "per_level": Flag(f"designs per level (and per start sequence), 1 to {MAX_DESIGNS:,}; default 3, or 1 with "
                      "--start", type=int_range(1, MAX_DESIGNS), default=None),
    "seed": Flag(SEED_HELP, type=SEED),
    "tolerance": Flag("stop a lineage this close to its level, > 0 (default 0.1)", type=finite_float(0, open_low=True)),
    "max_steps": Flag(f"most substitutions per lineage, 1 to {MAX_STEPS:,} (default 60)", type=int_range(1, MAX_STEPS)),
    "oversample": Flag("lineages run per wanted design, 1 to 100 (default 2)", type=int_range(1, 100)),
    "pool": Flag(f"random promoters screened for the starts closest to each level, 0 to {MAX_POOL:,} (default "
                 "1000; 0: plain random starts)", type=int_range(0, MAX_POOL)),
    "disagreement": Flag("several models without --objective: cost per unit of their standard deviation "
                         "(default 1)", type=finite_float(0)),
    "window": Flag(WINDOW_HELP, type=str, metavar="START-END", convert=window_range),
}


def register(subparsers) -> None:
    """Add the ``design`` subcommand to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    from crmnet.design.library import DesignConfig

    p = subparsers.add_parser(
        "design", help="a graded promoter library: designs at chosen expression levels that obey constraints",
        description="Design --per-level sequences for each of --levels (or, from --start sequences, designs at "
                    "--target): starts screened from --pool random promoters, then constrained steepest descent "
                    "over valid single mutants of the variable region. Several --checkpoint: their mean, penalised by --disagreement times their standard "
                    "deviation (or --objective, an expression over their names as in evolve). Writes "
                    "OUT/designs.tsv (id, full sequence with the assay's flanks, target, prediction, error, "
                    "edits, GC, longest homopolymer, checks passed), designs.fasta, designs.png and config.json.")
    add_input(p, "--checkpoint", required=True, action="append", metavar="[NAME=]CKPT", named=True,
              help="a crmnet checkpoint; repeat for several models (named NAME, default A, B, ...)")
    add_output(p, "--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    p.add_argument("--objective", help="expression over the model names with + - * and numbers "
                                       "(default: the only model, or the mean of several)")
    add_input(p, "--start", metavar="FILE", help="FASTA/TSV/CSV of start sequences (default: random promoters "
                                                 "with the assay's flanks and composition)")
    p.add_argument("--target", type=finite_float(), help="one target level (with --start: tune given sequences)")
    add_config_options(p, DesignConfig, DESIGN_FLAGS, skip=("constraints",))
    add_constraint_options(p)
    add_batch_size(p)
    add_device(p)
    add_overwrite(p)
    add_quiet(p)
    p.set_defaults(func=run_design)


def _starts(args, constraints, window):
    """(codes, lengths), ids of --start (checked against the constraints), or (None, None)."""
    if not args.start:
        return None, None
    from crmnet.data.encoding import without_invalid_hint
    from crmnet.data.readers import read_records
    from crmnet.design.mutagenesis import resolve_windows
    from crmnet.design.oracle import encode_sequences

    try:
        table = read_records(args.start)
    except InputError as exc:
        raise without_invalid_hint(exc) from None  # design has no --invalid option
    lines = table.lines.tolist()
    codes, lengths = encode_sequences(table.sequences, args.start, lines)
    constraints.check_starts(codes, resolve_windows(codes, lengths, window, args.start, lines), args.start, lines)
    return (codes, lengths), table.ids or [str(line) for line in lines]


def run_design(args: argparse.Namespace) -> int:
    """Design a graded library (or tune start sequences to a target) under constraints."""
    import time

    from crmnet.design.constraints import Constraints
    from crmnet.design.library import DesignConfig, LibraryScorer, design_library
    from crmnet.design.library_io import write_library
    from crmnet.fsutil import refuse_existing
    from crmnet.progress import progress as progress_bar

    if (args.levels is None) == (args.target is None):
        raise InputError(None, "give either --levels L1,L2,... (a graded library) or --target T")
    per_level = args.per_level if args.per_level is not None else (1 if args.start else 3)
    config = DesignConfig(**{"levels": (args.target,), **config_values(args), "per_level": per_level},
                          constraints=constraints_from(args))
    refuse_existing(args.out, overwrite=args.overwrite)  # inputs: checked by crmnet.cli.main (declared above)
    starts, start_ids = _starts(args, Constraints(config.constraints), config.window)
    scorer = LibraryScorer(predictors_from(args), args.objective)
    t = time.perf_counter()
    with progress_bar(total=config.max_steps, desc="design", unit="step", enable=not args.quiet) as bar:
        library = design_library(scorer, config, starts, progress=lambda s, n, msg: bar.update(1 if s else 0))
    seconds = time.perf_counter() - t
    rows = write_library(library, args.out, config, expression=scorer.expression, checkpoints=args.checkpoint,
                         start_ids=start_ids, overwrite=args.overwrite)
    errors = [abs(r["error"]) for r in rows]
    wanted = len(config.levels) * per_level * (len(start_ids) if start_ids else 1)
    hits = sum(e <= config.tolerance for e in errors)
    print(f"{len(rows)} of {wanted} designs ({hits} within {config.tolerance:g} of their level, largest miss "
          f"{max(errors):.3g}) from {library.designs_tried} lineages in {seconds:.1f} s "
          f"({60 * len(rows) / max(seconds, 1e-9):.1f} designs/min)", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0
