"""Saturation-mutagenesis throughput, and the design analyses checked against the simulator's ground truth.

**Speed** (always): for each model, single-mutant predictions per second of
:func:`crmnet.design.mutagenesis.saturate_codes` (mutants made on the device, one-hot there, batched across
sequences) next to the plain forward rate of the same model on as many ready-made sequences — the ratio
shows what generating mutants costs. Weights are random (speed does not depend on them).

**Ground truth** (``--quickstart DIR``, a ``crmnet quickstart`` output): on held-out simulated sequences
with planted sites, r(model Δ, true Δ) over the single mutants inside planted sites (and over all
mutants); SSWM under the model, scored by the true noise-free expression at each step; a GA under the
model towards a target.

    python benchmarks/bench_design.py --models crmnet-tiny,deepatt,crmnet --n 64
    python benchmarks/bench_design.py --models crmnet-tiny --quickstart /tmp/qs
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from crmnet.data.simulate import simulate
from crmnet.design.evolve import EvolveConfig, evolve
from crmnet.design.mutagenesis import resolve_windows, saturate_codes
from crmnet.design.oracle import ModelPredictor, Objective, SimulatorPredictor, encode_sequences
from crmnet.models.registry import build_model


def speed(name: str, n: int, batch_size: int, device: str) -> dict:
    torch.manual_seed(0)
    model = build_model(name).eval()
    predictor = ModelPredictor(model, batch_size, device)
    codes, lengths = encode_sequences(simulate(n, seed=1).sequences)
    windows = resolve_windows(codes, lengths, None)
    saturate_codes(predictor, codes[:2], lengths[:2], windows[:2])  # warm-up
    t = time.perf_counter()
    sat = saturate_codes(predictor, codes, lengths, windows)
    dt = time.perf_counter() - t
    mutants = int(np.isfinite(sat.delta).sum() - (sat.reference < 4).sum())
    flat = np.repeat(codes, mutants // n, axis=0)
    t = time.perf_counter()
    predictor(flat, np.repeat(lengths, mutants // n))
    plain = len(flat) / (time.perf_counter() - t)
    return {"model": name, "sequences": n, "mutants": mutants, "seconds": dt, "mutants_per_s": mutants / dt,
            "forward_per_s": plain}


def ground_truth(qs: Path, n: int, batch_size: int, device: str, target: float) -> dict:
    from crmnet.data.construct import LEFT_FLANK
    from crmnet.models.checkpoint import load_checkpoint

    model = load_checkpoint(qs / "run" / "best.ckpt")
    truth = json.loads((qs / "data" / "test.txt.truth.json").read_text())
    seqs = [line.split("\t")[0] for line in (qs / "data" / "test.txt").read_text().splitlines()]
    planted = truth["planted_sites"]
    width = {k: m["width"] for k, m in enumerate(truth["motifs"])}
    rows = sorted(set(planted["seq"]))[:n]
    codes, lengths = encode_sequences([seqs[i] for i in rows])
    windows = resolve_windows(codes, lengths, None)
    model_sat = saturate_codes(ModelPredictor(model, batch_size, device), codes, lengths, windows)
    true_sat = saturate_codes(SimulatorPredictor(truth), codes, lengths, windows)
    in_site = np.zeros(model_sat.delta.shape[:2], bool)
    index = {s: k for k, s in enumerate(rows)}
    for s, m, start in zip(planted["seq"], planted["motif"], planted["start"]):
        if s in index:
            j = start - len(LEFT_FLANK)
            in_site[index[s], j : j + width[m]] = True
    mutant = np.isfinite(model_sat.delta) & (model_sat.reference[:, :, None] != np.arange(4))
    site = mutant & in_site[:, :, None]
    r_site = float(np.corrcoef(model_sat.delta[site], true_sat.delta[site])[0, 1])
    r_all = float(np.corrcoef(model_sat.delta[mutant], true_sat.delta[mutant])[0, 1])
    # SSWM under the model, each step scored by the truth
    starts = [seqs[i] for i in rows[:20]]
    model_obj = Objective({"model": ModelPredictor(model, batch_size, device)})
    gens = list(evolve(model_obj, starts, EvolveConfig(mode="sswm", generations=10)))
    truth_pred = SimulatorPredictor(truth)
    prev = {int(k): v for k, v in zip(gens[0].lineage, truth_pred(gens[0].codes, np.full(len(starts), 110)))}
    up = steps = 0
    for g in gens[1:]:
        true_now = truth_pred(g.codes, np.full(len(g.codes), 110))
        for k, v in zip(g.lineage, true_now):
            up += int(v > prev[int(k)])
            steps += 1
            prev[int(k)] = v
    start_true = truth_pred(*encode_sequences(starts))
    gain = float(np.mean([prev[k] for k in range(len(starts))] - start_true))
    ga = list(evolve(model_obj, starts[:1], EvolveConfig(mode="ga", population=64, generations=100,
                                                         target=target, tolerance=0.1, mutation_rate=0.01)))
    best = ga[-1].codes[np.argmin(np.abs(ga[-1].objective - target))][None]
    return {"sequences": len(rows), "start_model_value": float(ga[0].objective[0]), "site_mutants": int(site.sum()), "r_site": r_site,
            "all_mutants": int(mutant.sum()), "r_all": r_all, "sswm_steps": steps, "sswm_true_up": up,
            "sswm_mean_true_gain": gain, "ga_generations": ga[-1].generation,
            "ga_model_value": float(ga[-1].objective[np.argmin(np.abs(ga[-1].objective - target))]),
            "ga_true_value": float(truth_pred(best, np.array([110]))[0]), "ga_target": target}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="crmnet-tiny,deepatt,crmnet")
    ap.add_argument("--n", type=int, default=64, help="sequences per model (crmnet: n/16)")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quickstart", type=Path, help="a crmnet quickstart output, for the ground-truth checks")
    ap.add_argument("--ga-target", type=float, default=5.0, help="target of the GA check (default 5)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| model | sequences | mutants | mutants/s | plain forward seq/s | device |\n|---|---|---|---|---|---|")
    for name in args.models.split(","):
        n = max(2, args.n // 16) if name == "crmnet" else args.n
        s = speed(name, n, args.batch_size, args.device)
        print(f"| {name} | {n} | {s['mutants']:,} | {s['mutants_per_s']:,.0f} | {s['forward_per_s']:,.0f} | "
              f"{args.device} ({args.threads} threads) |", flush=True)
    if args.quickstart:
        print(json.dumps(ground_truth(args.quickstart, 200, args.batch_size, args.device, args.ga_target), indent=2))


if __name__ == "__main__":
    main()
