"""Conformal intervals on the public test sets: coverage in distribution (held-out halves) and under shift.

A checkpoint (e.g. the real DeepATT: ``crmnet import ../shared/models/vaishnav2022/deepatt_complex/DeepAtt_model.h5
--out deepatt.pt``) predicts the four Vaishnav et al. test sets once. Then:

* **held out**: each set is split into random halves ``--splits`` times; calibrated on one half, the
  coverage on the other is compared with the nominal level (mean and standard deviation over splits, and
  the binomial standard error of one split);
* **shift**: calibrated on all of one set, the coverage and mean width on each other set.

* **ensemble** (``--peers``): the five published models' predictions on the complex-medium test sets
  (Vaishnav transformer and CNN, DeepSEA, DanQ, DeepATT: ``vaishnav2022/peer_predictions``) as the members
  of an ensemble, their mean as its prediction and their standard deviation as its spread; on held-out
  halves, the absolute and the normalised score side by side, and which one ``method="auto"`` picks.

Printed as Markdown tables (docs/uncertainty.md holds the output)::

    python benchmarks/bench_uncertainty.py --checkpoint deepatt.pt --data-dir ../shared/data --peers
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from crmnet.data.catalogue import TEST_SETS
from crmnet.evaluation.calibrate import predict_spread
from crmnet.evaluation.conformal import fit_calibration, interval_table
from crmnet.evaluation.testsets import load_test_set
from crmnet.models.checkpoint import load_checkpoint
from crmnet.tables import render

LEVELS = (0.8, 0.9)


def held_out(y, pred, spread, splits: int, seed: int) -> dict:
    """Coverage on held-out halves per level: mean and sd over random splits, one split's binomial se."""
    rng = np.random.default_rng(seed)
    hits = {level: [] for level in LEVELS}
    widths = {level: [] for level in LEVELS}
    for _ in range(splits):
        order = rng.permutation(len(y))
        fit, held = order[: len(y) // 2], order[len(y) // 2 :]
        cal = fit_calibration(y[fit], pred[fit], None, "absolute")
        table = interval_table(y[held], pred[held], spread[held], cal, LEVELS)
        for level in LEVELS:
            hits[level].append(table[str(level)]["coverage"])
            widths[level].append(table[str(level)]["mean_width"])
    n = len(y) - len(y) // 2
    return {level: (float(np.mean(h)), float(np.std(h)), math.sqrt(level * (1 - level) / n),
                    float(np.mean(widths[level]))) for level, h in hits.items()}


def peer_ensemble(data_dir: str, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """Measured (n,) and the published models' predictions (n, 5) of one complex-medium test set."""
    import csv
    from pathlib import Path

    members, measured, seqs = [], None, None
    for tag in ("tpu", "gpu", "DeepSEA", "DanQ", "DeepAtt"):
        path = Path(data_dir) / "vaishnav2022" / "peer_predictions" / f"{origin}_complex_{tag}_model.csv"
        with path.open() as fh:
            rows = list(csv.DictReader(fh))
        if seqs is None:
            seqs, measured = [r["sequence"] for r in rows], np.array([float(r["Measured Expression"]) for r in rows])
        assert [r["sequence"] for r in rows] == seqs, f"{path}: rows in another order"
        members.append([float(r["Predicted Expression"]) for r in rows])
    return measured, np.array(members).T


def ensemble_rows(data_dir: str, splits: int, seed: int) -> list[list]:
    """Absolute vs normalised scores of the published-model ensemble on held-out halves."""
    rows = []
    for origin in ("Native", "Random"):
        y, members = peer_ensemble(data_dir, origin)
        pred, spread = members.mean(1), members.std(1)
        rng = np.random.default_rng(seed)
        stats = {m: {level: [] for level in LEVELS} for m in ("absolute", "normalized")}
        picked = []
        for _ in range(splits):
            order = rng.permutation(len(y))
            fit, held = order[: len(y) // 2], order[len(y) // 2 :]
            picked.append(fit_calibration(y[fit], pred[fit], spread[fit], "auto", seed).method)
            for method in stats:
                cal = fit_calibration(y[fit], pred[fit], spread[fit], method)
                table = interval_table(y[held], pred[held], spread[held], cal, LEVELS)
                for level in LEVELS:
                    stats[method][level].append((table[str(level)]["coverage"], table[str(level)]["mean_width"]))
        for method, per in stats.items():
            cells = [f"{np.mean([c for c, _ in v]):.3f} / {np.mean([w for _, w in v]):.3f}" for v in per.values()]
            rows.append([f"complex-{origin.lower()}", f"{len(y):,}", method, *cells,
                         f"{picked.count(method)}/{splits}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peers", action="store_true", help="also the published models as an ensemble")
    args = ap.parse_args()
    if args.peers:
        print(f"Ensemble of the 5 published models (mean ± their sd), held-out halves ({args.splits} splits): "
              "coverage / mean width\n")
        print(render(["test set", "n", "score", *(f"at {level}" for level in LEVELS), "auto picks it"],
                     ensemble_rows(args.data_dir, args.splits, args.seed), style="markdown"))
    model = load_checkpoint(args.checkpoint)
    data = {}
    for name in TEST_SETS:
        test = load_test_set(name, args.data_dir)
        pred, spread = predict_spread(model, test.sequences)
        data[name] = (test.measured, pred, spread)

    rows = []
    for name, (y, pred, spread) in data.items():
        res = held_out(y, pred, spread, args.splits, args.seed)
        rows.append([name, f"{len(y):,}", *(f"{m:.3f} ± {s:.3f} (se {se:.3f}); width {w:.3f}"
                                            for m, s, se, w in res.values())])
    print(f"Held-out halves ({args.splits} random splits, absolute residuals; mean ± sd of coverage over splits, "
          "se: binomial standard error of one split)\n")
    print(render(["test set", "n", *(f"coverage at {level}" for level in LEVELS)], rows, style="markdown"))

    header = ["calibrated on", "scored on", *(f"{k} at {level}" for level in LEVELS for k in ("coverage", "width"))]
    rows = []
    for cal_name, (y, pred, spread) in data.items():
        cal = fit_calibration(y, pred, None, "absolute")
        for name, (ys, ps, ss) in data.items():
            if name == cal_name:
                continue
            table = interval_table(ys, ps, ss, cal, LEVELS)
            rows.append([cal_name, name, *(f"{table[str(level)][k]:.3f}" for level in LEVELS
                                           for k in ("coverage", "mean_width"))])
    print("\nUnder shift (calibrated on all of one set, scored on another)\n")
    print(render(header, rows, style="markdown"))


if __name__ == "__main__":
    main()
