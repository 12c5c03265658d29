"""Interpretation benchmark and ground-truth validation (issue 6).

1. Simulates a training set and a 3,733-sequence test set (crmnet.data.simulate), trains a small model
   (``crmnet-tiny`` by default) with a plain Adam loop and saves it as a checkpoint.
2. Speed: saliency (median of ``--repeats``) and ISM (one run) on the 3,733 sequences, sequences per second.
3. Ground truth: ``crmnet interpret`` (saliency and ISM) on the simulated test set — attribution on planted
   sites versus elsewhere — and ``crmnet motifs`` (k-mers, mHG, TF-MoDISco) — precision and recall of the
   discovered motifs against the planted JASPAR motifs.
4. The shared native test set (``--native``, default ../shared/data/vaishnav2022/test/Native_complex.csv):
   ``crmnet interpret`` and ``crmnet motifs`` end to end.

Prints tables; every output stays in ``--out``. Example:
    .venv/bin/python benchmarks/bench_interpret.py --out /tmp/bench_interpret
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def train(model, codes: np.ndarray, y: np.ndarray, epochs: int, batch: int, lr: float, seed: int) -> None:
    """Plain Adam on the Huber loss; codes (n, L) already in the model's layout."""
    from crmnet.data.encoding import onehot

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x_all, y_all = torch.as_tensor(codes), torch.as_tensor(y, dtype=torch.float32)
    # Huber's delta at the target sd: quadratic for typical errors, so raw-scale targets (0-17) train as
    # fast as standardised ones instead of crawling along the linear (L1) part.
    delta = float(y_all.std())
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(codes), generator=g)
        total = 0.0
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            loss = torch.nn.functional.huber_loss(model(onehot(x_all[idx], model.encoding)), y_all[idx], delta=delta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        print(f"  epoch {epoch + 1}: train Huber {total / len(order):.3f}", flush=True)
    model.eval()


def predict(model, codes: np.ndarray) -> np.ndarray:
    from crmnet.data.encoding import onehot

    with torch.no_grad():
        return np.concatenate([model(onehot(torch.as_tensor(codes[s : s + 512]), model.encoding)).numpy()
                               for s in range(0, len(codes), 512)])


def cli(args: list[str]) -> float:
    from crmnet.cli import main

    t = time.perf_counter()
    rc = main(args)
    if rc != 0:
        raise SystemExit(f"crmnet {' '.join(args)} failed with status {rc}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--model", default="crmnet-tiny")
    ap.add_argument("--n-train", type=int, default=30000)
    ap.add_argument("--n-test", type=int, default=3733)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ism-n", type=int, default=384, help="sequences for the ISM timing and ground truth")
    ap.add_argument("--native", type=Path, default=ROOT.parent / "shared/data/vaishnav2022/test/Native_complex.csv")
    ap.add_argument("--modisco-runs", type=int, default=10)
    a = ap.parse_args()

    from crmnet.data.encoding import encode
    from crmnet.data.simulate import simulate, write_simulation
    from crmnet.interpret.attribution import AttributionConfig, attribute
    from crmnet.models.checkpoint import save_checkpoint
    from crmnet.models.registry import build_model

    torch.manual_seed(0)
    a.out.mkdir(parents=True, exist_ok=True)
    test_file = a.out / "sim_test.txt"
    print(f"simulating {a.n_train:,} training and {a.n_test:,} test sequences", flush=True)
    train_data = simulate(a.n_train, seed=0)
    test_data = simulate(a.n_test, seed=1)
    write_simulation(test_data, test_file, overwrite=True)
    model = build_model(a.model)
    print(f"training {a.model} ({sum(p.numel() for p in model.parameters()):,} parameters), {a.epochs} epochs", flush=True)
    t = time.perf_counter()
    train(model, encode(train_data.sequences, model.encoding)[0], train_data.expression, a.epochs, 128, a.lr, 0)
    train_s = time.perf_counter() - t
    pred = predict(model, encode(test_data.sequences, model.encoding)[0])
    r = float(np.corrcoef(pred, test_data.expression)[0, 1])
    r_nf = float(np.corrcoef(pred, test_data.noise_free)[0, 1])
    print(f"  trained in {train_s:.0f} s; simulated test r = {r:.3f} (measured), {r_nf:.3f} (noise-free)", flush=True)
    ckpt = a.out / f"{a.model}.pt"
    save_checkpoint(ckpt, model, provenance={"data": f"simulate({a.n_train}, seed=0)", "epochs": a.epochs},
                    metrics={"sim_test_pearson_r": r}, overwrite=True)

    print(f"\n## Speed (this CPU, torch threads = {torch.get_num_threads()})", flush=True)
    seqs = test_data.sequences
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        attribute(model, seqs, AttributionConfig(method="saliency"))
        times.append(time.perf_counter() - t)
    sal = statistics.median(times)
    t = time.perf_counter()
    attribute(model, seqs[: a.ism_n], AttributionConfig(method="ism"))
    ism_s = time.perf_counter() - t
    print("| method | sequences | seconds | sequences/s |\n|---|---|---|---|")
    print(f"| saliency (median of {a.repeats}) | {len(seqs):,} | {sal:.2f} | {len(seqs) / sal:,.0f} |")
    print(f"| ISM, 80-nt variable region (1 run) | {a.ism_n:,} | {ism_s:.1f} | {a.ism_n / ism_s:,.1f} |", flush=True)
    print(f"(ISM of all {len(seqs):,} at this rate: {len(seqs) * ism_s / a.ism_n / 60:.1f} min)", flush=True)

    results = {"model": a.model, "train_seconds": train_s, "sim_test_r": r, "saliency_seconds": sal,
               "ism_seconds": ism_s, "ism_n": a.ism_n}
    print("\n## Ground truth on the simulated test set", flush=True)
    for method in ("saliency", "ism"):
        out = a.out / f"sim_interpret_{method}"
        extra = ["--limit", str(a.ism_n)] if method == "ism" else []
        secs = cli(["interpret", "--checkpoint", str(ckpt), "--sequences", str(test_file), "--out", str(out),
                    "--method", method, "--overwrite", *extra])
        gt = json.loads((out / "summary.json").read_text())["ground_truth"]
        results[f"sim_{method}"] = gt
        print(f"{method} [{secs:.0f} s]\n| maps | sites | mean abs on / off | ratio | signed mean on / off |"
              "\n|---|---|---|---|---|")
        for maps, groups in gt.items():
            for group, v in groups.items():
                print(f"| {maps} | {group} | {v['abs_on_sites']:.4f} / {v['abs_elsewhere']:.4f} | {v['ratio']:.2f} | "
                      f"{v['mean_on_sites']:.4f} / {v['mean_elsewhere']:.4f} |", flush=True)
    out = a.out / "sim_motifs"
    secs = cli(["motifs", "--sequences", str(test_file), "--out", str(out), "--attributions",
                str(a.out / "sim_interpret_saliency" / "attributions.npz"), "--modisco-runs", str(a.modisco_runs),
                "--overwrite"])
    methods = json.loads((out / "summary.json").read_text())["methods"]
    results["sim_discovery"] = {m: e["recovery"] for m, e in methods.items()}
    print(f"discovery [{secs:.0f} s]\n| method | motifs | precision | recall | recovered |\n|---|---|---|---|---|")
    for m, e in methods.items():
        rec = e["recovery"]
        print(f"| {m} | {rec['n_discovered']} | {rec['precision']:.2f} | {rec['recall']:.2f} | "
              f"{', '.join(rec['recovered'])} |", flush=True)

    if a.native.exists():
        print(f"\n## Native test set ({a.native})", flush=True)
        out = a.out / "native_interpret"
        secs = cli(["interpret", "--checkpoint", str(ckpt), "--sequences", str(a.native), "--out", str(out),
                    "--overwrite"])
        summary = json.loads((out / "summary.json").read_text())
        print(f"interpret [{secs:.0f} s]\n| motif | hits | 5F mean at matches / all | 5F q | 5G mean with / all | 5G q |"
              "\n|---|---|---|---|---|---|")
        for f, g in zip(summary["fig5F"], summary["fig5G"]):
            print(f"| {f['motif']} | {f['n_hits']} | {f['mean_matched']:.4f} / {f['mean_all']:.4f} | {f['q_value']:.2g} "
                  f"| {g['mean_with']:.2f} / {g['mean_all']:.2f} | {g['q_value']:.2g} |")
        results["native_fig5"] = {"5F": summary["fig5F"], "5G": summary["fig5G"]}
        out = a.out / "native_motifs"
        secs = cli(["motifs", "--sequences", str(a.native), "--out", str(out), "--attributions",
                    str(a.out / "native_interpret" / "attributions.npz"), "--modisco-runs", str(a.modisco_runs),
                    "--overwrite"])
        methods = json.loads((out / "summary.json").read_text())["methods"]
        print(f"discovery [{secs:.0f} s]\n| method | motif | consensus | best match | E | q |\n|---|---|---|---|---|---|")
        for m, e in methods.items():
            for row in e["motifs"]:
                if row["q_value"] <= 0.05:
                    print(f"| {m} | {row['motif']} | {row['consensus']} | {row['best_match']} | {row['e_value']:.2g} "
                          f"| {row['q_value']:.2g} |")
        results["native_discovery"] = {m: e["motifs"] for m, e in methods.items()}
    (a.out / "bench_results.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"\nall outputs in {a.out}")


if __name__ == "__main__":
    main()
