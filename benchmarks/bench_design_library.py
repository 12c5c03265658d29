"""Graded-library design judged by a model that did not design it (issue 23, items 3 and 5).

1. The teacher: Vaishnav et al.'s DeepATT (complex medium), imported from
   ``$CRMNET_SHARED/models/vaishnav2022/deepatt_complex/DeepAtt_model.h5`` (or ``--teacher CKPT``).
2. The student: ``crmnet-tiny`` with the quickstart's settings trained on ``--n`` random calibrated promoters
   labelled by the teacher plus calibrated read-count noise (:func:`crmnet.workflows.teacher.simulate_teacher`),
   as ``benchmarks/bench_teacher.py`` does (``--student CKPT`` reuses one).
3. For each direction — student designs and the teacher judges; DeepATT designs and the student judges —
   ``--per-level`` sequences per level of ``--levels`` by four methods, all under the same constraints
   (``--forbid``, ``--gc``, ``--max-homopolymer``; the designs of ``crmnet design --seed 1``'s example):

   * ``random``: random promoters (the assay's composition) that pass the constraints, no selection;
   * ``screen``: of ``--screen`` such random promoters, the ones the designer predicts closest to the level;
   * ``mutagenesis``: from a random promoter, the one valid single mutant the designer predicts closest to the
     level (one round of saturation mutagenesis);
   * ``design``: :func:`crmnet.design.library.design_library` (what ``crmnet design`` runs), with starts
     screened from 1,000 random promoters (the default) and with plain random starts (``--pool 0``).

   Reported per method: the designer's own mean |prediction − level| (what it grades itself), and the judge's:
   the fraction of designs within 0.5 and within 1.0 of their level, the mean |miss| and the mean signed miss.
   With ``--student2`` (a second student, another seed), the student direction adds the design of the two
   students' ensemble (their mean, penalised by their disagreement). The agreement of student and teacher on
   2,000 random valid promoters is printed first: the ceiling of any judged hit rate.
4. Speed: designs per minute of the default ``design`` under each designer (wall clock; one torch thread).

Prints Markdown tables; writes ``results.json`` and the designs to ``--out``. Example:
    PYTHONPATH=src .venv/bin/python benchmarks/bench_design_library.py --out /tmp/bench_design_library
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_teacher import teacher_checkpoint, train_student  # the same teacher and student


def constraint_config(args):
    from crmnet.design.constraints import ConstraintConfig, parse_forbid, parse_gc

    return ConstraintConfig(gc=parse_gc(args.gc), forbid=parse_forbid(args.forbid), max_homopolymer=args.max_homopolymer)


def student_checkpoint(teacher, ckpt: Path, args) -> Path:
    """The student: ``--student``, or crmnet-tiny trained on teacher-labelled noisy data into ``out``."""
    if args.student:
        return Path(args.student)
    from crmnet.data.simulate import write_simulation
    from crmnet.workflows.teacher import simulate_teacher

    write_simulation(simulate_teacher(teacher, args.n, seed=args.seed, checkpoint=ckpt), args.out / "train.txt")
    result = train_student(args, args.out)
    print(f"student: {result.epochs} epochs, {result.steps} steps", flush=True)
    return args.out / "run" / "best.ckpt"


def baselines(scorer, constraints, levels, k, n_screen, rng) -> dict:
    """Codes (len(levels)·k, 110) and targets of the random, screen and mutagenesis methods."""
    import torch

    from crmnet.design.constraints import pick_distinct
    from crmnet.design.library import random_starts
    from crmnet.design.mutagenesis import single_mutants

    target = np.repeat(np.asarray(levels, np.float64), k)
    out = {"random": random_starts(rng, len(target), constraints, None)[0]}
    pool, lengths, _ = random_starts(rng, n_screen, constraints, None)
    value = scorer(pool, lengths)[1]
    out["screen"] = np.concatenate([pool[pick_distinct(pool, np.argsort(np.abs(value - t), kind="stable"), k, 1)]
                                    for t in levels])
    starts, lengths, windows = random_starts(rng, len(target), constraints, None)
    row, _, _, mutants = single_mutants(torch.as_tensor(starts), torch.as_tensor(windows))
    row, mutants = row.numpy(), mutants.numpy()
    ok = constraints.valid(mutants, windows[row], starts[row])
    row, mutants = row[ok], mutants[ok]
    miss = np.abs(scorer(mutants, np.full(len(mutants), 110))[1] - target[row])
    best = [np.flatnonzero(row == r)[np.argmin(miss[row == r])] for r in range(len(target))]
    out["mutagenesis"] = mutants[best]
    return {name: (codes, target) for name, codes in out.items()}


def agreement(a, b, constraints, rng, n: int = 2000) -> dict:
    """How two models agree on ``n`` random valid promoters: the ceiling of any judged hit rate."""
    from crmnet.design.library import random_starts

    codes, lengths, _ = random_starts(rng, n, constraints, None)
    x, y = a(codes, lengths)[1], b(codes, lengths)[1]
    d = np.abs(x - y)
    return {"n": n, "pearson_r": float(np.corrcoef(x, y)[0, 1]), "within_0.5": float(np.mean(d <= 0.5)),
            "within_1": float(np.mean(d <= 1.0)), "mean_abs_difference": float(d.mean())}


def method_sets(designer, args, constraints, ensemble=None) -> tuple[dict, dict]:
    """name → (codes, targets, the scorer that designed them); and the default design's speed."""
    from crmnet.design.library import DesignConfig, design_library

    levels = tuple(float(v) for v in args.levels.split(","))
    rng = np.random.default_rng(args.seed)
    sets = {k: (*v, designer) for k, v in baselines(designer, constraints, levels, args.per_level, args.screen,
                                                      rng).items()}
    config = DesignConfig(levels=levels, per_level=args.per_level, seed=args.seed, constraints=constraints.config)
    lib = design_library(designer, config.replace(pool=0))
    sets["design, random starts (--pool 0)"] = (lib.codes, lib.target, designer)
    t = time.perf_counter()
    lib = design_library(designer, config)
    seconds = time.perf_counter() - t
    sets[f"design (default: starts screened from --pool {config.pool})"] = (lib.codes, lib.target, designer)
    if ensemble is not None:
        ens = design_library(ensemble, config)
        sets[f"design, ensemble of {len(ensemble.names)} students (mean, --disagreement 1)"] = (
            ens.codes, ens.target, ensemble)
    rate = 60 * len(lib) / seconds
    print(f"design: {len(lib)} designs from {lib.designs_tried} lineages in {seconds:.1f} s wall = {rate:.1f} "
          "designs/min", flush=True)
    return sets, {"design_seconds": seconds, "designs": len(lib), "designs_per_minute": rate}


def evaluate(designer, judge, label: str, args, constraints, ensemble=None) -> dict:
    """Every method with ``designer`` (a LibraryScorer), judged by ``judge``; prints one table."""
    from crmnet.design.mutagenesis import default_windows

    sets, speed = method_sets(designer, args, constraints, ensemble)
    rows = {}
    for name, (codes, target, by) in sets.items():
        lengths = np.full(len(codes), codes.shape[1])
        assert constraints.valid(codes, default_windows(codes, lengths)).all(), name
        own, judged = by(codes, lengths)[1], judge(codes, lengths)[1]
        miss = judged - target
        rows[name] = {"n": len(codes), "designer_abs_error": float(np.abs(own - target).mean()),
                      "judge_within_0.5": float(np.mean(np.abs(miss) <= 0.5)),
                      "judge_within_1": float(np.mean(np.abs(miss) <= 1.0)),
                      "judge_abs_miss": float(np.abs(miss).mean()), "judge_signed_miss": float(miss.mean()),
                      "per_level_abs_miss": {f"{t:g}": float(np.abs(miss[target == t]).mean())
                                             for t in np.unique(target)}}
    print(f"\n## {label} ({args.per_level} per level, levels {args.levels})\n"
          "| method | designer's own mean abs error | judge: within 0.5 | judge: within 1.0 | judge: mean abs miss "
          "| judge: mean signed miss | judge: mean abs miss per level |\n|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        per = ", ".join(f"{k}: {v:.2f}" for k, v in r["per_level_abs_miss"].items())
        print(f"| {name} | {r['designer_abs_error']:.3f} | {r['judge_within_0.5']:.0%} | {r['judge_within_1']:.0%} | "
              f"{r['judge_abs_miss']:.2f} | {r['judge_signed_miss']:+.2f} | {per} |", flush=True)
    return {"methods": rows, **speed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output directory (replaced)")
    p.add_argument("--teacher", help="teacher checkpoint (default: DeepATT imported from the shared folder)")
    p.add_argument("--student", help="a trained student checkpoint (default: train one)")
    p.add_argument("--student2", help="a second student (another seed): adds a design by the two students' "
                                      "ensemble, penalised for disagreement")
    p.add_argument("--n", type=int, default=80_000, help="student's training + validation sequences (default 80,000)")
    p.add_argument("--epochs", type=int, default=4, help="student's maximum epochs (default 4)")
    p.add_argument("--levels", default="6,9,12,15")
    p.add_argument("--per-level", type=int, default=10)
    p.add_argument("--screen", type=int, default=1000, help="random promoters screened (default 1,000)")
    p.add_argument("--forbid", default="GGTCTC,CGTCTC,GAATTC")
    p.add_argument("--gc", default="0.35-0.60")
    p.add_argument("--max-homopolymer", type=int, default=6)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    import torch

    from crmnet.design.constraints import Constraints
    from crmnet.design.library import LibraryScorer
    from crmnet.design.oracle import ModelPredictor
    from crmnet.models.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    t0 = time.perf_counter()
    ckpt = teacher_checkpoint(args, args.out)
    teacher = load_checkpoint(ckpt)
    student = load_checkpoint(student_checkpoint(teacher, ckpt, args))
    print(f"[teacher and student ready: {time.perf_counter() - t0:.0f} s]", flush=True)
    constraints = Constraints(constraint_config(args))
    by_teacher = LibraryScorer({"teacher": ModelPredictor(teacher, 2048)})
    by_student = LibraryScorer({"student": ModelPredictor(student, 2048)})
    ensemble = None
    if args.student2:
        ensemble = LibraryScorer({"student": ModelPredictor(student, 2048),
                                  "student2": ModelPredictor(load_checkpoint(args.student2), 2048)})
    ceiling = agreement(by_student, by_teacher, constraints, np.random.default_rng(args.seed + 100))
    print(f"student vs teacher on {ceiling['n']:,} random valid promoters: r = {ceiling['pearson_r']:.3f}, "
          f"mean |difference| {ceiling['mean_abs_difference']:.2f}, within 0.5: {ceiling['within_0.5']:.0%}, "
          f"within 1.0: {ceiling['within_1']:.0%}", flush=True)
    results = {"agreement on random promoters": ceiling,
               "student designs, teacher (DeepATT) judges": evaluate(
                   by_student, by_teacher, "student designs, DeepATT (teacher) judges", args, constraints, ensemble),
               "DeepATT designs, student judges": evaluate(
                   by_teacher, by_student, "DeepATT designs, the student (crmnet-tiny on DeepATT labels) judges",
                   args, constraints)}
    print(f"\nTotal {time.perf_counter() - t0:.0f} s wall; torch threads 1, {os.cpu_count()} CPUs (shared).")
    (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                       "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
