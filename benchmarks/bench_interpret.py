"""Interpretation benchmark and ground-truth validation.

1. Trains the quickstart's model (``crmnet-tiny`` on 100,000 simulated sequences, :mod:`crmnet.workflows.
   quickstart`) and states its Pearson r on an independent simulated test set (against the measured and the
   noise-free values, beside the noise ceiling), so the interpretation numbers below come from a model
   trained about as well as the simulation allows.
2. Speed: saliency (median of ``--repeats``) and ISM (one run), sequences per second.
3. Ground truth on the simulated test set: ``crmnet interpret`` (saliency, and ISM on ``--ism-n``
   sequences): |attribution| on planted sites versus off every site (ratio and per-position AUROC; all,
   activator and repressor sites); ``crmnet motifs --lenient`` (k-mers, mHG, TF-MoDISco): precision and
   recall of the discovered motifs under the strict rule (and the lenient one, labelled), per class.
4. Optionally (``--native FILE``) the real native test set: ``crmnet interpret`` and ``crmnet motifs``.

Prints Markdown tables; every output stays in ``--out``. Example (about 10 CPU minutes on 2 cores):
    .venv/bin/python benchmarks/bench_interpret.py --out /tmp/bench_interpret
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def cli(args: list[str]) -> float:
    """Run ``crmnet ARGS``; returns the seconds it took (a failure stops the benchmark)."""
    from crmnet.cli import main

    t = time.perf_counter()
    rc = main(args)
    if rc != 0:
        raise SystemExit(f"crmnet {' '.join(args)} failed with status {rc}")
    return time.perf_counter() - t


def train_model(out: Path, n_train: int, n_test: int) -> tuple[Path, Path, dict]:
    """The quickstart's model and data; returns (checkpoint, test file with its truth, r values)."""
    from crmnet.workflows.quickstart import QuickstartConfig, run_quickstart

    t = time.perf_counter()
    train = QuickstartConfig().train.replace(progress=False)
    summary = run_quickstart(QuickstartConfig(n=n_train, n_test=n_test, train=train), out, overwrite=True)
    m = summary.metrics["simulated_test"]
    fit = {"train_seconds": time.perf_counter() - t, "test_r": m["pearson_r"], "ceiling_r": summary.ceiling_r}
    print(f"quickstart model trained in {fit['train_seconds']:.0f} s: simulated test r = {fit['test_r']:.3f} "
          f"(noise ceiling {fit['ceiling_r']:.3f})", flush=True)
    return out / "run" / "best.ckpt", out / "data" / "test.txt", fit


def speed(ckpt: Path, sequences: list[str], repeats: int, ism_n: int) -> dict:
    """Saliency (median of ``repeats``) and ISM timings on this CPU."""
    from crmnet.interpret.attribution import AttributionConfig, attribute
    from crmnet.models.checkpoint import load_checkpoint

    model = load_checkpoint(ckpt)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        attribute(model, sequences, AttributionConfig(method="saliency"))
        times.append(time.perf_counter() - t)
    sal = statistics.median(times)
    t = time.perf_counter()
    attribute(model, sequences[:ism_n], AttributionConfig(method="ism"))
    ism_s = time.perf_counter() - t
    print(f"\n## Speed (this CPU, torch threads = {torch.get_num_threads()})\n"
          "| method | sequences | seconds | sequences/s |\n|---|---|---|---|\n"
          f"| saliency (median of {repeats}) | {len(sequences):,} | {sal:.2f} | {len(sequences) / sal:,.0f} |\n"
          f"| ISM, 80-nt variable region (1 run) | {ism_n:,} | {ism_s:.1f} | {ism_n / ism_s:,.1f} |", flush=True)
    return {"saliency_seconds": sal, "ism_seconds": ism_s, "ism_n": ism_n}


def ground_truth_maps(ckpt: Path, test_file: Path, out: Path, ism_n: int) -> dict:
    """``crmnet interpret`` (saliency, ISM) on the simulated test set; planted-site scores."""
    results = {}
    print("\n## Attribution maps against the planted sites (|attribution| on sites vs off every site)\n"
          "| method | maps | sites | mean abs on / off | ratio | AUROC | signed mean on / off |\n"
          "|---|---|---|---|---|---|---|", flush=True)
    for method in ("saliency", "ism"):
        extra = ["--limit", str(ism_n)] if method == "ism" else []
        cli(["interpret", "--checkpoint", str(ckpt), "--sequences", str(test_file), "--out",
             str(out / f"sim_interpret_{method}"), "--method", method, "--overwrite", *extra])
        gt = json.loads((out / f"sim_interpret_{method}" / "summary.json").read_text())["ground_truth"]
        results[method] = gt
        for maps, groups in gt.items():
            for group, v in groups.items():
                print(f"| {method} | {maps} | {group} | {v['abs_on_sites']:.4f} / {v['abs_elsewhere']:.4f} | "
                      f"{v['ratio'] or float('nan'):.2f} | {v['auroc']:.3f} | {v['mean_on_sites']:.4f} / "
                      f"{v['mean_elsewhere']:.4f} |", flush=True)
    return results


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def discovery(test_file: Path, attributions: Path, out: Path, modisco_runs: int) -> dict:
    """``crmnet motifs --lenient`` on the simulated test set; recovery under both rules, per class."""
    secs = cli(["motifs", "--sequences", str(test_file), "--out", str(out), "--attributions", str(attributions),
                "--modisco-runs", str(modisco_runs), "--lenient", "--overwrite"])
    methods = json.loads((out / "summary.json").read_text())["methods"]
    print(f"\n## De novo recovery of the planted motifs [{secs:.0f} s]\n"
          "| method | rule | motifs | precision (planted once / per motif) | recall | recovered | activators: recall / precision "
          "| repressors: recall / precision |\n|---|---|---|---|---|---|---|---|")
    results = {}
    for m, e in methods.items():
        results[m] = {"strict": e["recovery"], "lenient": e["recovery_lenient"],
                      "best_matches": [(r["motif"], r["best_match"], r["q_value"]) for r in e["motifs"]]}
        for rule in ("strict", "lenient"):
            rec = results[m][rule]
            cls = rec.get("classes", {})
            per = [f"{_fmt(cls[c]['recall'])} / {_fmt(cls[c]['precision'])}" if c in cls else "–"
                   for c in ("activator", "repressor")]
            print(f"| {m} | {rule} | {rec['n_discovered']} | {_fmt(rec['precision'])} / {_fmt(rec['motif_precision'])} | {_fmt(rec['recall'])} | "
                  f"{', '.join(rec['recovered']) or 'none'} | {per[0]} | {per[1]} |", flush=True)
    return results


def native(ckpt: Path, path: Path, out: Path, modisco_runs: int) -> dict:
    """``crmnet interpret`` and ``crmnet motifs`` on a real test set."""
    cli(["interpret", "--checkpoint", str(ckpt), "--sequences", str(path), "--out", str(out / "native_interpret"),
         "--overwrite"])
    summary = json.loads((out / "native_interpret" / "summary.json").read_text())
    cli(["motifs", "--sequences", str(path), "--out", str(out / "native_motifs"), "--attributions",
         str(out / "native_interpret" / "attributions.npz"), "--modisco-runs", str(modisco_runs), "--overwrite"])
    methods = json.loads((out / "native_motifs" / "summary.json").read_text())["methods"]
    print((out / "native_interpret" / "summary.md").read_text())
    return {"fig5F": summary["fig5F"], "fig5G": summary.get("fig5G"), "discovery": {m: e["motifs"] for m, e in methods.items()}}


def main() -> None:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--n-train", type=int, default=100_000, help="simulated training + validation sequences")
    ap.add_argument("--n-test", type=int, default=3733, help="simulated test sequences (the native set's size)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ism-n", type=int, default=384, help="sequences for the ISM timing and ground truth")
    ap.add_argument("--modisco-runs", type=int, default=10)
    ap.add_argument("--native", type=Path, help="also run on a real test set, e.g. test/Native_complex.csv")
    a = ap.parse_args()

    from crmnet.data.readers import read_records

    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ckpt, test_file, fit = train_model(a.out / "model", a.n_train, a.n_test)
    results: dict = {"model": fit}
    results["speed"] = speed(ckpt, read_records(test_file).sequences, a.repeats, a.ism_n)
    results["maps"] = ground_truth_maps(ckpt, test_file, a.out, a.ism_n)
    results["discovery"] = discovery(test_file, a.out / "sim_interpret_saliency" / "attributions.npz",
                                     a.out / "sim_motifs", a.modisco_runs)
    if a.native is not None:
        results["native"] = native(ckpt, a.native, a.out, a.modisco_runs)
    results["total_seconds"] = time.perf_counter() - t0
    (a.out / "bench_results.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"\n{results['total_seconds']:.0f} s in all; outputs in {a.out}")


if __name__ == "__main__":
    main()
