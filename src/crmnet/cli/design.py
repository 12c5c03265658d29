"""Subcommands ``variants``, ``mutagenesis``, ``evolvability`` and ``evolve``: thin calls into crmnet.design."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crmnet.cli import default_device, require_positive
from crmnet.errors import InputError


def _common(p, several: bool = False) -> None:
    if several:
        p.add_argument("--checkpoint", required=True, action="append", metavar="[NAME=]CKPT",
                       help="a crmnet checkpoint; repeat for several models, named NAME (default A, B, ...) "
                            "for --objective")
    else:
        p.add_argument("--checkpoint", required=True, metavar="CKPT",
                       help="a crmnet checkpoint (.ckpt from training, .pt from import or download)")
    p.add_argument("--batch-size", type=int, default=4096, help="sequences per forward pass (default 4096)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                   help="no progress (by default a bar on a terminal, else a log line every "
                        "$CRMNET_PROGRESS_INTERVAL seconds, default 30)")


def register(subparsers) -> None:
    """Add the ``variants``, ``mutagenesis``, ``evolvability`` and ``evolve`` subcommands to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    va = subparsers.add_parser(
        "variants", help="predicted effect of variants: delta = prediction(variant) - prediction(reference)",
        description="Read a TSV/CSV with a header holding reference and variant sequences (other columns are "
                    "carried through), predict each distinct sequence once and write every input column plus "
                    "ref_prediction, alt_prediction and delta. Reference and variant may differ in length "
                    "(each is predicted as given). With --measured-column, OUT.metrics.json holds Pearson r, "
                    "Spearman, MSE ... of the predicted against the measured delta (the format of evaluate).")
    va.add_argument("--pairs", required=True, metavar="FILE", help="TSV/CSV of pairs, with a header")
    va.add_argument("--out", required=True, metavar="OUT.tsv", help="output TSV (refused if it exists)")
    va.add_argument("--ref-column", default="reference", help="reference-sequence column (default reference)")
    va.add_argument("--alt-column", default="variant", help="variant-sequence column (default variant)")
    va.add_argument("--measured-column", metavar="NAME", help="column of measured deltas, for metrics")
    _common(va)
    va.set_defaults(func=run_variants)

    mu = subparsers.add_parser(
        "mutagenesis", help="saturation mutagenesis: every single-base mutant of every sequence",
        description="Predict all single-base substitutions in a window of each sequence (default: the 80-nt "
                    "variable region between the constant flanks, else the whole sequence). Writes OUT/ with "
                    "deltas.npz (N, L, 4), mutants.tsv, evolvability.tsv (robustness, largest gain and loss), "
                    "evolvability.png and heat maps of the first --figures sequences. Streams the input.")
    mu.add_argument("input", metavar="INPUT", help="FASTA, TSV or CSV of sequences")
    mu.add_argument("--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    mu.add_argument("--window", metavar="START-END", help="positions to mutate, 1-based inclusive (e.g. 18-97)")
    mu.add_argument("--epsilon", type=float,
                    help="robustness threshold on |delta| (default: the checkpoint's own, stored by `crmnet ecc "
                         "--write-epsilon`, else 0.1616, Vaishnav et al.'s transformer's)")
    mu.add_argument("--figures", type=int, default=10, metavar="K", help="heat maps of the first K sequences (default 10)")
    mu.add_argument("--no-tsv", action="store_true", help="skip mutants.tsv (3L rows per sequence)")
    mu.add_argument("--chunk-size", type=int, default=512,
                    help="sequences whose mutants are predicted together (default 512)")
    _common(mu)
    mu.set_defaults(func=run_mutagenesis)

    ev = subparsers.add_parser(
        "evolvability", help="robustness and evolvability vectors from a mutagenesis deltas.npz",
        description="Recompute evolvability (robustness at --epsilon, sorted delta vectors, largest gain and "
                    "loss) from `crmnet mutagenesis` output: writes OUT/evolvability.tsv, vectors.npz, "
                    "evolvability.png.")
    ev.add_argument("deltas", metavar="DELTAS.npz", help="deltas.npz written by crmnet mutagenesis")
    ev.add_argument("--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    ev.add_argument("--epsilon", type=float,
                    help="robustness threshold (default: the one mutagenesis used, from epsilon.json beside "
                         "DELTAS.npz, else 0.1616)")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing output")
    ev.set_defaults(func=run_evolvability)

    eo = subparsers.add_parser(
        "evolve", help="evolution trajectories: neutral drift, SSWM or a genetic algorithm under a model",
        description="Evolve start sequences under an objective: one model's prediction, or several models "
                    "combined (--checkpoint complex=A.pt --checkpoint defined=B.pt --objective 'complex - "
                    "defined'). Only the window (default: the variable region) mutates. Writes OUT/trajectory.tsv "
                    "(every generation: sequence, predictions, objective, mutations from the start), "
                    "trajectory.png and config.json. Seeded and reproducible.")
    eo.add_argument("input", metavar="INPUT", help="FASTA, TSV or CSV of start sequences")
    eo.add_argument("--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    eo.add_argument("--objective", help="expression over the model names with + - * and numbers "
                                        "(default: the only model)")
    eo.add_argument("--mode", choices=("drift", "sswm", "ga"), default="sswm", help="default sswm")
    eo.add_argument("--generations", type=int, default=10, help="generations / steps (default 10)")
    eo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    eo.add_argument("--direction", choices=("max", "min"), default="max", help="sswm: maximise or minimise")
    eo.add_argument("--mutations", type=int, default=1, help="drift: substitutions per generation (default 1)")
    eo.add_argument("--population", type=int, default=None,
                    help="drift: replicate lineages per start (default 1); ga: population size (default 100)")
    eo.add_argument("--target", type=float, help="ga: target objective value")
    eo.add_argument("--tolerance", type=float, default=0.1, help="ga: stop within this of the target (default 0.1)")
    eo.add_argument("--mutation-rate", type=float, default=0.01, help="ga: per-base mutation probability")
    eo.add_argument("--crossover", type=float, default=0.5, help="ga: crossover probability (default 0.5)")
    eo.add_argument("--selection", choices=("tournament", "truncation"), default="tournament")
    eo.add_argument("--tournament", type=int, default=3, help="ga: tournament size (default 3)")
    eo.add_argument("--elite", type=int, default=1, help="ga: best sequences kept unchanged (default 1)")
    eo.add_argument("--window", metavar="START-END", help="positions that may mutate, 1-based inclusive")
    _common(eo, several=True)
    eo.set_defaults(func=run_evolve)


def run_variants(args: argparse.Namespace) -> int:
    """Predict the effect of variants: prediction(variant) − prediction(reference)."""
    from crmnet.design.variants import variants_file
    from crmnet.models.checkpoint import load_checkpoint

    require_positive("--batch-size", args.batch_size)
    model = load_checkpoint(args.checkpoint)
    res = variants_file(model, args.pairs, args.out, ref_column=args.ref_column, alt_column=args.alt_column,
                        measured_column=args.measured_column, batch_size=args.batch_size,
                        device=default_device(args.device), overwrite=args.overwrite)
    print(f"{res['n']:,} pairs, {res['unique']:,} distinct sequences predicted", file=sys.stderr)
    if res["unequal_lengths"]:
        print(f"{res['unequal_lengths']:,} pairs have reference and variant of different lengths (insertions or "
              "deletions): each was predicted as given", file=sys.stderr)
    if res["metrics"]:
        m = next(iter(res["metrics"].values()))
        print(f"delta vs measured: r={m['pearson_r']:.4f} spearman={m['spearman_r']:.4f} mse={m['mse']:.4f} "
              f"(wrote {res['metrics_path']})")
    print(f"wrote {args.out}")
    return 0


def run_mutagenesis(args: argparse.Namespace) -> int:
    """Saturation mutagenesis: predict every single-base mutant of every sequence."""
    import time

    from crmnet.design.mutagenesis import parse_window
    from crmnet.design.oracle import ModelPredictor
    from crmnet.design.outputs import mutagenesis_file
    from crmnet.models.checkpoint import load_checkpoint

    require_positive("--batch-size", args.batch_size)
    require_positive("--chunk-size", args.chunk_size)
    if args.figures < 0:
        raise InputError(None, f"--figures must be 0 or more, got {args.figures}")
    if args.epsilon is not None and not args.epsilon > 0:
        raise InputError(None, f"--epsilon must be positive, got {args.epsilon}")
    window = parse_window(args.window)
    model = load_checkpoint(args.checkpoint)
    args.epsilon, source = _epsilon(args.epsilon, model)
    predictor = ModelPredictor(model, args.batch_size, default_device(args.device))
    t = time.perf_counter()
    res = mutagenesis_file(predictor, args.input, args.out, window=window, epsilon=args.epsilon,
                           max_figures=args.figures, write_tsv=not args.no_tsv, chunk_size=args.chunk_size,
                           overwrite=args.overwrite, progress=not args.quiet, label=Path(args.checkpoint).stem,
                           epsilon_source=source)
    dt = time.perf_counter() - t
    print(f"{res['n']:,} sequences, {res['mutants']:,} mutants in {dt:.1f} s "
          f"({res['mutants'] / max(dt, 1e-9):,.0f} mutants/s)", file=sys.stderr)
    print(f"robustness epsilon = {args.epsilon:.4g} ({source})", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


def _epsilon(given: float | None, model) -> tuple[float, str]:
    """The robustness threshold to use and where it came from (said once the work has succeeded)."""
    from crmnet.design.ecc import checkpoint_epsilon
    from crmnet.design.evolvability import EPSILON

    stored = checkpoint_epsilon(model)
    if given is not None:
        value, source = given, "--epsilon"
    elif stored is not None:
        value, source = stored[0], f"the checkpoint's own, from {stored[1]}"
    else:
        value, source = EPSILON, "default: Vaishnav et al.'s transformer's; `crmnet ecc --write-epsilon` derives the model's own"
    return value, source


def _recorded_epsilon(given: float | None, path: Path) -> tuple[float, str]:
    """(ε, where from): --epsilon, else the one recorded by mutagenesis beside its deltas, else the default."""
    import json

    from crmnet.design.evolvability import EPSILON

    if given is not None:
        return given, "--epsilon"
    if path.is_file():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
            value = float(recorded["epsilon"])
        except (ValueError, KeyError, TypeError):
            raise InputError(str(path), "not an epsilon.json written by crmnet mutagenesis") from None
        return value, f"as mutagenesis used: {recorded.get('source', '')}"
    return EPSILON, "default"


def run_evolvability(args: argparse.Namespace) -> int:
    """Robustness and evolvability vectors (table and figure) from a mutagenesis deltas file."""
    import numpy as np

    from crmnet.design.evolvability import Evolvability, evolvability
    from crmnet.design.outputs import read_saturation, write_evolvability_rows
    from crmnet.fsutil import atomic_path
    from crmnet.plot.common import save_png
    from crmnet.plot.design import evolvability_figure

    if args.epsilon is not None and not args.epsilon > 0:
        raise InputError(None, f"--epsilon must be positive, got {args.epsilon}")
    args.epsilon, source = _recorded_epsilon(args.epsilon, Path(args.deltas).with_name("epsilon.json"))
    sat, ids = read_saturation(args.deltas)
    ev = evolvability(sat, args.epsilon)
    with atomic_path(args.out, overwrite=args.overwrite) as tmp:
        tmp.mkdir()
        with open(tmp / "evolvability.tsv", "w", encoding="utf-8") as fh:
            fh.write("\t".join(("id", *Evolvability.COLUMNS)) + "\n")
            write_evolvability_rows(fh, ev, ids)
        np.savez(tmp / "vectors.npz", vector=ev.vector, ids=np.array(ids, dtype=str), epsilon=ev.epsilon)
        save_png(evolvability_figure(ev.prediction, ev.robustness, ev.epsilon, "model"), tmp / "evolvability.png")
    print(f"robustness epsilon = {args.epsilon:.4g} ({source})", file=sys.stderr)
    print(f"{len(ids):,} sequences: median robustness {np.nanmedian(ev.robustness):.3f}; wrote {args.out}")
    return 0


def _objective(args):
    from crmnet.design.oracle import ModelPredictor, Objective
    from crmnet.models.checkpoint import load_checkpoint

    predictors = {}
    for k, spec in enumerate(args.checkpoint):
        name, _, path = spec.rpartition("=") if "=" in spec else (chr(ord("A") + k), "", spec)
        if not name.isidentifier() or name in predictors:
            raise InputError(None, f"--checkpoint {spec!r}: NAME must be a unique identifier (letters, digits, _)")
        predictors[name] = ModelPredictor(load_checkpoint(path), args.batch_size, default_device(args.device))
    return Objective(predictors, args.objective)


def run_evolve(args: argparse.Namespace) -> int:
    """Evolve sequences under a model (neutral drift, SSWM or a genetic algorithm)."""
    from crmnet.data.encoding import without_invalid_hint
    from crmnet.data.readers import read_records
    from crmnet.design.evolve import EvolveConfig, evolve_to_file
    from crmnet.design.mutagenesis import parse_window
    from crmnet.fsutil import refuse_existing

    require_positive("--batch-size", args.batch_size)
    population = args.population if args.population is not None else (100 if args.mode == "ga" else 1)
    config = EvolveConfig(mode=args.mode, generations=args.generations, seed=args.seed, direction=args.direction,
                          mutations=args.mutations, population=population, mutation_rate=args.mutation_rate,
                          crossover=args.crossover, selection=args.selection, tournament=args.tournament,
                          elite=args.elite, target=args.target, tolerance=args.tolerance,
                          window=parse_window(args.window))
    refuse_existing(args.out, overwrite=args.overwrite)
    try:
        table = read_records(args.input)
    except InputError as exc:
        raise without_invalid_hint(exc) from None  # evolve has no --invalid option
    seqs, lines = table.sequences, table.lines.tolist()
    ids = table.ids or [str(line) for line in lines]
    objective = _objective(args)
    res = evolve_to_file(objective, ids, seqs, args.out, config, source=args.input, lines=lines,
                         overwrite=args.overwrite, progress=not args.quiet)
    finals = ", ".join(f"{v:.4g}" for v in list(res["final"].values())[:5])
    print(f"{args.mode}: {res['generations']} generations, {res['rows']:,} rows; final objective {finals}"
          f"{' ...' if len(res['final']) > 5 else ''}; wrote {args.out}")
    return 0
