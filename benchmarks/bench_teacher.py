"""Teacher benchmark: a student trained on a real model's noisy labels, and how well its attributions
recover the teacher's own ISM (issue 17, item 2).

1. The teacher: a crmnet checkpoint (``--teacher``), or by default Vaishnav et al.'s DeepATT (complex
   medium) imported from ``$CRMNET_SHARED/models/vaishnav2022/deepatt_complex/DeepAtt_model.h5``.
2. Data (:func:`crmnet.workflows.teacher.simulate_teacher`): ``--n`` random calibrated promoters with
   noisy training-style labels, and an independent ``--n-test`` set with low-noise test-style labels; the
   teacher's ISM of the first ``--ism-n`` test sequences is the interpretation truth.
3. Student: the quickstart's ``crmnet-tiny`` settings (``--epochs`` epochs) trained on the noisy labels;
   its Pearson r on the test set against the teacher's noise-free values and against the noisy labels,
   beside the noise ceiling (noise-free vs labels).
4. Interpretation (:func:`crmnet.interpret.teacher_score.score_against_teacher`): the student's saliency,
   ISM and DeepLIFT/SHAP maps of the ``--ism-n`` sequences against the teacher's ISM; for reference the
   teacher's own saliency (what saliency loses with a perfect student), a random map (chance) and the
   teacher's ISM with its four-base columns shuffled across positions (its base preferences alone).

Prints Markdown tables with wall and CPU seconds per stage; writes ``results.json`` and all data to
``--out``. Example (defaults: 4–4.6 CPU minutes, 4.4–10 wall minutes on a shared 2-core machine; student
test r 0.91 against the teacher's noise-free values):
    PYTHONPATH=src .venv/bin/python benchmarks/bench_teacher.py --out /tmp/bench_teacher
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("CRMNET_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
DEEPATT = SHARED / "models" / "vaishnav2022" / "deepatt_complex" / "DeepAtt_model.h5"
METHODS = ("saliency", "ism", "deeplift_shap")


class Clock:
    """Wall and CPU seconds of each stage (CPU: this process, all threads)."""

    def __init__(self) -> None:
        self.seconds: dict[str, dict[str, float]] = {}

    def stage(self, name: str):
        clock = self

        class _Stage:
            def __enter__(self):
                self.t, self.c = time.perf_counter(), time.process_time()

            def __exit__(self, *exc):
                clock.seconds[name] = {"wall": time.perf_counter() - self.t, "cpu": time.process_time() - self.c}
                print(f"[{name}: {clock.seconds[name]['wall']:.0f} s wall, {clock.seconds[name]['cpu']:.0f} s CPU]",
                      flush=True)

        return _Stage()


def teacher_checkpoint(args, out: Path) -> Path:
    """The teacher's checkpoint: ``--teacher``, or DeepATT imported into ``out``."""
    if args.teacher:
        return Path(args.teacher)
    from crmnet.cli import main

    ckpt = out / "teacher.pt"
    if main(["import", str(DEEPATT), "--out", str(ckpt), "--overwrite"]) != 0:
        raise SystemExit(f"could not import {DEEPATT}")
    return ckpt


def make_data(teacher, ckpt: Path, args, out: Path):
    """Noisy training file, low-noise test set and the teacher's ISM of the first ``ism_n`` test sequences."""
    from crmnet.data.calibrated import CalibratedConfig
    from crmnet.data.simulate import write_simulation
    from crmnet.workflows.teacher import simulate_teacher, teacher_ism

    train = simulate_teacher(teacher, args.n, seed=args.seed, checkpoint=ckpt)
    test = simulate_teacher(teacher, args.n_test, seed=args.seed + 1, config=CalibratedConfig(labels="test"),
                            checkpoint=ckpt)
    write_simulation(train, out / "train.txt")
    write_simulation(test, out / "test.txt")
    truth = teacher_ism(teacher, test, args.ism_n)
    truth.save(out / "test.txt.ism.npz")
    return train, test, truth


def train_student(args, out: Path):
    """``crmnet-tiny`` with the quickstart's settings on the noisy training file."""
    from crmnet.data.store import prepare
    from crmnet.training.run import fit
    from crmnet.workflows.quickstart import QuickstartConfig

    prepare([out / "train.txt"], out / "store", val_fraction=0.05, seed=args.seed)
    config = QuickstartConfig().train.replace(store=str(out / "store"), max_epochs=args.epochs, seed=args.seed)
    return fit(config, out / "run")


def fit_table(student, test) -> dict:
    from crmnet.evaluation.metrics import compute_metrics
    from crmnet.evaluation.predict import predict

    pred = predict(student, test.sequences, batch_size=1024)
    rows = {"student vs teacher (noise-free)": compute_metrics(test.noise_free, pred),
            "student vs test labels": compute_metrics(test.expression, pred),
            "ceiling: teacher (noise-free) vs test labels": compute_metrics(test.expression, test.noise_free)}
    print(f"\n## Student fit ({len(pred):,} independent test sequences, low-noise labels)\n"
          "| comparison | Pearson r | Spearman r | MSE |\n|---|---|---|---|")
    for name, m in rows.items():
        print(f"| {name} | {m['pearson_r']:.4f} | {m['spearman_r']:.4f} | {m['mse']:.4f} |")
    return rows


def random_map(attr, seed: int):
    """Gaussian hypothetical scores on ``attr``'s sequences: chance level of every metric."""
    from crmnet.interpret.attribution import Attributions

    hyp = np.random.default_rng(seed).standard_normal(attr.hypothetical.shape).astype(np.float32)
    return Attributions(attr.onehot, hyp, attr.lengths, attr.mask, "random", dict(attr.meta))


def shuffled(attr, seed: int):
    """``attr`` with each sequence's four-base score columns permuted across its variable region: keeps
    the teacher's base preferences (e.g. G over A anywhere), loses where they matter."""
    from crmnet.data.construct import variable_region
    from crmnet.interpret.attribution import Attributions

    rng = np.random.default_rng(seed)
    hyp = attr.hypothetical.copy()
    region = variable_region(attr.lengths, hyp.shape[2])
    for i in range(len(attr)):
        cols = np.flatnonzero(region[i])
        hyp[i][:, cols] = attr.hypothetical[i][:, rng.permutation(cols)]
    return Attributions(attr.onehot, hyp, attr.lengths, attr.mask, "shuffled", dict(attr.meta))


def interpretation(student, teacher, test, truth, args, clock: Clock) -> dict:
    from crmnet.interpret.attribution import AttributionConfig, attribute
    from crmnet.interpret.teacher_score import METRICS, score_against_teacher

    seqs = test.sequences[: args.ism_n]
    maps = {}
    for method in args.methods:
        with clock.stage(f"student {method}"):
            maps[f"student {method}"] = attribute(student, seqs, AttributionConfig(method=method))
    with clock.stage("teacher saliency"):
        maps["teacher saliency (saliency of a perfect student)"] = attribute(
            teacher, seqs, AttributionConfig(method="saliency"))
    maps["random map (chance)"] = random_map(truth, args.seed)
    maps["teacher ISM, positions shuffled (base preference only)"] = shuffled(truth, args.seed)
    maps["teacher ISM (identity)"] = truth
    results = {name: score_against_teacher(m, truth, k=args.k).summary() for name, m in maps.items()}
    print(f"\n## Attributions vs the teacher's ISM ({args.ism_n} test sequences, 80-nt variable region, "
          f"k = {args.k}; per-sequence mean)\n"
          "| map | r displayed | r observed | ρ observed | r magnitude | ρ magnitude | r substitutions | top-k overlap "
          "| top-k AUROC | top-k sign agreement |\n|---|---|---|---|---|---|---|---|---|---|")
    for name, s in results.items():
        cells = " | ".join(f"{s[m]['mean']:.3f}" for m in METRICS)
        print(f"| {name} | {cells} |")
    print(f"(top-k overlap by chance: {results[name]['chance_topk_overlap']:.3f})")
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output directory (replaced)")
    p.add_argument("--teacher", help="teacher checkpoint (default: DeepATT imported from the shared folder)")
    p.add_argument("--n", type=int, default=80_000, help="training + validation sequences (default 80,000)")
    p.add_argument("--n-test", type=int, default=5_000, help="test sequences (default 5,000)")
    p.add_argument("--ism-n", type=int, default=200, help="test sequences interpreted (default 200)")
    p.add_argument("--epochs", type=int, default=4, help="student's maximum epochs (default 4)")
    p.add_argument("--k", type=int, default=10, help="teacher's top positions per sequence (default 10)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import torch

    from crmnet.models.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    clock = Clock()
    t0, c0 = time.perf_counter(), time.process_time()
    ckpt = teacher_checkpoint(args, args.out)
    teacher = load_checkpoint(ckpt)
    n_params = sum(p.numel() for p in teacher.parameters())
    print(f"teacher {ckpt} ({n_params:,} parameters)", flush=True)
    with clock.stage("simulate + teacher ISM"):
        _, test, truth = make_data(teacher, ckpt, args, args.out)
    with clock.stage("train student"):
        result = train_student(args, args.out)
    print(f"student: {result.epochs} epochs, {result.steps} steps", flush=True)
    fit = fit_table(result.model, test)
    scores = interpretation(result.model, teacher, test, truth, args, clock)
    total = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
    print(f"\nTotal: {total['wall']:.0f} s wall, {total['cpu']:.0f} s CPU; torch threads 1, {os.cpu_count()} CPUs.")
    (args.out / "results.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "teacher_parameters": n_params, "fit": fit,
         "attributions": scores, "seconds": {**clock.seconds, "total": total}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
