"""Subcommands ``variants``, ``mutagenesis``, ``evolvability`` and ``evolve``: thin calls into crmnet.design."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crmnet.cli.library import add_constraint_options, constraints_from, predictors_from, window_range
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
from crmnet.data.construct import add_flanks_option, flank_note
from crmnet.errors import InputError

# Limits checked before any work (each a few hours of CPU at most, or memory a laptop has).
MAX_GENERATIONS = 100_000
MAX_POPULATION = 100_000
MAX_MUTATIONS = 1_000
MAX_FIGURES = 1_000
EPSILON = finite_float(0, open_low=True)
PROBABILITY = finite_float(0, 1)


def _common(p, several: bool = False) -> None:
    if several:
        add_input(p, "--checkpoint", required=True, action="append", metavar="[NAME=]CKPT", named=True,
                  help="a crmnet checkpoint; repeat for several models, named NAME (default A, B, ...) "
                       "for --objective")
    else:
        add_input(p, "--checkpoint", required=True, metavar="CKPT",
                  help="a crmnet checkpoint (.ckpt from training, .pt from import or download)")
    add_batch_size(p)
    add_device(p)
    add_overwrite(p)
    add_flanks_option(p)
    add_quiet(p)


def _penalty_options(p) -> None:
    p.add_argument("--penalty", choices=("spread", "bound"),
                   help="penalise uncertainty so design does not exploit one model's errors: spread = objective "
                        "minus weight x the ensemble's spread (propagated through --objective); bound = the "
                        "conformal lower bound at --penalty-level (calibrated checkpoints); minimising: the "
                        "other side")
    p.add_argument("--penalty-weight", type=float, default=1.0, metavar="LAMBDA",
                   help="--penalty spread: the weight of the spread (default 1)")
    p.add_argument("--penalty-level", type=float, default=0.9, metavar="LEVEL",
                   help="--penalty bound: the interval level (default 0.9)")


def _penalty(args, direction: str = "max"):
    from crmnet.design.oracle import Penalty

    if args.penalty is None:
        return None
    return Penalty(args.penalty, args.penalty_weight, args.penalty_level, direction)


def _register_variants(subparsers) -> None:
    va = subparsers.add_parser(
        "variants", help="predicted effect of variants: delta = prediction(variant) - prediction(reference)",
        description="Read a TSV/CSV with a header holding reference and variant sequences (other columns are "
                    "carried through), predict each distinct sequence once and write every input column plus "
                    "ref_prediction, alt_prediction and delta. Reference and variant may differ in length "
                    "(each is predicted as given). With --measured-column, OUT.metrics.json holds Pearson r, "
                    "Spearman, MSE ... of the predicted against the measured delta (the format of evaluate).")
    add_input(va, "--pairs", required=True, metavar="FILE", help="TSV/CSV of pairs, with a header")
    add_output(va, "--out", required=True, metavar="OUT.tsv", help="output TSV (refused if it exists)")
    va.add_argument("--ref-column", default="reference", help="reference-sequence column (default reference)")
    va.add_argument("--alt-column", default="variant", help="variant-sequence column (default variant)")
    va.add_argument("--measured-column", metavar="NAME", help="column of measured deltas, for metrics")
    va.add_argument("--interval", type=float, metavar="LEVEL",
                    help="add delta_lower and delta_upper at LEVEL in (0, 1) (a checkpoint from `crmnet calibrate`: "
                         "calibrated on measured pairs with --pairs, else a conservative union bound of two "
                         "expression intervals; the basis is printed)")
    _common(va)
    va.set_defaults(func=run_variants)


def register(subparsers) -> None:
    """Add the ``variants``, ``mutagenesis``, ``evolvability`` and ``evolve`` subcommands to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    _register_variants(subparsers)
    mu = subparsers.add_parser(
        "mutagenesis", help="saturation mutagenesis: every single-base mutant of every sequence",
        description="Predict all single-base substitutions in a window of each sequence (default: the 80-nt "
                    "variable region between the constant flanks, else the whole sequence). Writes OUT/ with "
                    "deltas.npz (N, L, 4), mutants.tsv, evolvability.tsv (robustness, largest gain and loss), "
                    "evolvability.png and heat maps of the first --figures sequences. Streams the input.")
    add_input(mu, "input", metavar="INPUT", help="FASTA, TSV or CSV of sequences")
    add_output(mu, "--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    mu.add_argument("--window", metavar="START-END", help="positions to mutate, 1-based inclusive (e.g. 18-97)")
    mu.add_argument("--epsilon", type=EPSILON,
                    help="robustness threshold on |delta|, a finite number > 0 (default: the checkpoint's own, "
                         "stored by `crmnet ecc --write-epsilon`, else 0.1616, Vaishnav et al.'s transformer's)")
    mu.add_argument("--figures", type=int_range(0, MAX_FIGURES), default=10, metavar="K",
                    help=f"heat maps of the first K sequences, 0 to {MAX_FIGURES:,} (default 10)")
    mu.add_argument("--no-tsv", action="store_true", help="skip mutants.tsv (3L rows per sequence)")
    mu.add_argument("--chunk-size", type=int_range(1, 1 << 16), default=512,
                    help="sequences whose mutants are predicted together, 1 to 65,536 (default 512)")
    _penalty_options(mu)
    _common(mu)
    mu.set_defaults(func=run_mutagenesis)

    ev = subparsers.add_parser(
        "evolvability", help="robustness and evolvability vectors from a mutagenesis deltas.npz",
        description="Recompute evolvability (robustness at --epsilon, sorted delta vectors, largest gain and "
                    "loss) from `crmnet mutagenesis` output: writes OUT/evolvability.tsv, vectors.npz, "
                    "evolvability.png.")
    add_input(ev, "deltas", metavar="DELTAS.npz", help="deltas.npz written by crmnet mutagenesis")
    add_output(ev, "--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    ev.add_argument("--epsilon", type=EPSILON,
                    help="robustness threshold, a finite number > 0 (default: the one mutagenesis used, from "
                         "epsilon.json beside DELTAS.npz, else 0.1616)")
    add_overwrite(ev)
    ev.set_defaults(func=run_evolvability)

    _register_evolve(subparsers)


#: the options of EvolveConfig's fields
EVOLVE_FLAGS = {
    "mode": Flag("default sswm", choices=("drift", "sswm", "ga")),
    "generations": Flag(f"generations / steps, 1 to {MAX_GENERATIONS:,} (default 10)",
                        type=int_range(1, MAX_GENERATIONS)),
    "seed": Flag(SEED_HELP, type=SEED),
    "direction": Flag("sswm: maximise or minimise", choices=("max", "min")),
    "mutations": Flag(f"drift: substitutions per generation, 1 to {MAX_MUTATIONS:,} (default 1)",
                      type=int_range(1, MAX_MUTATIONS)),
    "population": Flag(f"drift: replicate lineages per start (default 1); ga: population size (default 100); "
                       f"1 to {MAX_POPULATION:,}", type=int_range(1, MAX_POPULATION), default=None),
    "mutation_rate": Flag("ga: per-base mutation probability, 0 to 1", type=PROBABILITY),
    "crossover": Flag("ga: crossover probability, 0 to 1 (default 0.5)", type=PROBABILITY),
    "selection": Flag("ga: parents by tournament (default) or truncation", choices=("tournament", "truncation")),
    "tournament": Flag("ga: tournament size, at least 1 (default 3)", type=POSITIVE),
    "elite": Flag("ga: best sequences kept unchanged (default 1)", type=int_range(0, MAX_POPULATION)),
    "target": Flag("ga: target objective value (a finite number)", type=finite_float()),
    "tolerance": Flag("ga: stop within this of the target, > 0 (default 0.1)", type=finite_float(0, open_low=True)),
    "window": Flag("positions that may mutate, 1-based inclusive", type=str, metavar="START-END", convert=window_range),
}


def _register_evolve(subparsers) -> None:
    from crmnet.design.evolve import EvolveConfig

    eo = subparsers.add_parser(
        "evolve", help="evolution trajectories: neutral drift, SSWM or a genetic algorithm under a model",
        description="Evolve start sequences under an objective: one model's prediction, or several models "
                    "combined (--checkpoint complex=A.pt --checkpoint defined=B.pt --objective 'complex - "
                    "defined'). Only the window (default: the variable region) mutates. Writes OUT/trajectory.tsv "
                    "(every generation: sequence, predictions, objective, mutations from the start), "
                    "trajectory.png and config.json. Seeded and reproducible.")
    add_input(eo, "input", metavar="INPUT", help="FASTA, TSV or CSV of start sequences")
    add_output(eo, "--out", required=True, metavar="DIR", help="output directory (refused if it exists)")
    eo.add_argument("--objective", help="expression over the model names with + - * and numbers "
                                        "(default: the only model)")
    add_config_options(eo, EvolveConfig, EVOLVE_FLAGS, skip=("constraints",))
    _penalty_options(eo)
    add_constraint_options(eo, distance=False)
    _common(eo, several=True)
    eo.set_defaults(func=run_evolve)


def run_variants(args: argparse.Namespace) -> int:
    """Predict the effect of variants: prediction(variant) − prediction(reference)."""
    from crmnet.design.variants import variants_file
    from crmnet.evaluation.conformal import check_level, require_calibration
    from crmnet.models.checkpoint import load_checkpoint

    if args.interval is not None:
        check_level(args.interval)
    model = load_checkpoint(args.checkpoint)
    if args.interval is not None:
        require_calibration(model, args.checkpoint, "delta")
    res = variants_file(model, args.pairs, args.out, ref_column=args.ref_column, alt_column=args.alt_column,
                        measured_column=args.measured_column, batch_size=args.batch_size,
                        device=default_device(args.device), overwrite=args.overwrite, interval=args.interval,
                        checkpoint=args.checkpoint, flanks=args.flanks)
    if res["flanked"]:
        print(flank_note(res["flanked"]), file=sys.stderr)
    if res["interval_basis"]:
        print(f"intervals: {res['interval_basis']}", file=sys.stderr)
    print(f"{res['n']:,} pairs, {res['unique']:,} distinct sequences predicted", file=sys.stderr)
    if res["unequal_lengths"]:
        print(f"{res['unequal_lengths']:,} pairs have reference and variant of different lengths (insertions or "
              "deletions): each was predicted as given", file=sys.stderr)
    if res["metrics"]:
        m = next(iter(res["metrics"].values()))
        print(f"delta vs measured: r={m['pearson_r']:.4f} spearman={m['spearman_r']:.4f} mse={m['mse']:.4f} "
              f"(wrote {res['metrics_path']})")
        for level, c in m.get("intervals", {}).items():
            print(f"delta intervals at {level}: coverage {c['coverage']:.3f} of {c['n']:,} measured pairs, mean "
                  f"width {c['mean_width']:.3g}")
    print(f"wrote {args.out}")
    return 0


def run_mutagenesis(args: argparse.Namespace) -> int:
    """Saturation mutagenesis: predict every single-base mutant of every sequence."""
    import time

    from crmnet.design.ecc import epsilon_for
    from crmnet.design.mutagenesis import parse_window
    from crmnet.design.oracle import ModelPredictor, Objective
    from crmnet.design.outputs import mutagenesis_file
    from crmnet.models.checkpoint import load_checkpoint

    window = parse_window(args.window)
    model = load_checkpoint(args.checkpoint)
    args.epsilon, source = epsilon_for(model, args.epsilon)
    predictor = ModelPredictor(model, args.batch_size, default_device(args.device))
    if args.penalty:
        predictor = Objective({"model": predictor}, penalty=_penalty(args))
    t = time.perf_counter()
    res = mutagenesis_file(predictor, args.input, args.out, window=window, epsilon=args.epsilon,
                           max_figures=args.figures, write_tsv=not args.no_tsv, chunk_size=args.chunk_size,
                           overwrite=args.overwrite, progress=not args.quiet, label=Path(args.checkpoint).stem,
                           flanks=args.flanks, epsilon_source=source)
    if res["flanked"]:
        print(flank_note(res["flanked"]), file=sys.stderr)
    dt = time.perf_counter() - t
    print(f"{res['n']:,} sequences, {res['mutants']:,} mutants in {dt:.1f} s "
          f"({res['mutants'] / max(dt, 1e-9):,.0f} mutants/s)", file=sys.stderr)
    print(f"robustness epsilon = {args.epsilon:.4g} ({source})", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


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

    from crmnet.design.evolvability import evolvability
    from crmnet.design.outputs import read_saturation, write_evolvability_rows
    from crmnet.fsutil import atomic_path
    from crmnet.plot.common import save_png
    from crmnet.plot.design import evolvability_figure

    args.epsilon, source = _recorded_epsilon(args.epsilon, Path(args.deltas).with_name("epsilon.json"))
    sat, ids = read_saturation(args.deltas)
    ev = evolvability(sat, args.epsilon)
    with atomic_path(args.out, overwrite=args.overwrite) as tmp:
        tmp.mkdir()
        with open(tmp / "evolvability.tsv", "w", encoding="utf-8") as fh:
            write_evolvability_rows(fh, ev, ids, header=True)
        np.savez(tmp / "vectors.npz", vector=ev.vector, ids=np.array(ids, dtype=str), epsilon=ev.epsilon)
        save_png(evolvability_figure(ev.prediction, ev.robustness, ev.epsilon, "model"), tmp / "evolvability.png")
    print(f"robustness epsilon = {args.epsilon:.4g} ({source})", file=sys.stderr)
    print(f"{len(ids):,} sequences: median robustness {np.nanmedian(ev.robustness):.3f}; wrote {args.out}")
    return 0


def _objective(args):
    from crmnet.design.oracle import Objective

    return Objective(predictors_from(args), args.objective, penalty=_penalty(args, args.direction))


def run_evolve(args: argparse.Namespace) -> int:
    """Evolve sequences under a model (neutral drift, SSWM or a genetic algorithm)."""
    from crmnet.data.encoding import without_invalid_hint
    from crmnet.data.readers import read_records
    from crmnet.design.evolve import EvolveConfig, evolve_to_file
    from crmnet.fsutil import refuse_existing

    population = args.population if args.population is not None else (100 if args.mode == "ga" else 1)
    config = EvolveConfig(**{**config_values(args), "population": population}, constraints=constraints_from(args))
    refuse_existing(args.out, overwrite=args.overwrite)
    try:
        table = read_records(args.input)
    except InputError as exc:
        raise without_invalid_hint(exc) from None  # evolve has no --invalid option
    seqs, lines = table.sequences, table.lines.tolist()
    ids = table.ids or [str(line) for line in lines]
    objective = _objective(args)
    if args.flanks:
        from crmnet.cli.interpret import complete_regions

        seqs = complete_regions(seqs, next(iter(objective.predictors.values())).model.encoding)
    res = evolve_to_file(objective, ids, seqs, args.out, config, source=args.input, lines=lines,
                         overwrite=args.overwrite, progress=not args.quiet)
    finals = ", ".join(f"{v:.4g}" for v in list(res["final"].values())[:5])
    print(f"{args.mode}: {res['generations']} generations, {res['rows']:,} rows; final objective {finals}"
          f"{' ...' if len(res['final']) > 5 else ''}; wrote {args.out}")
    return 0
