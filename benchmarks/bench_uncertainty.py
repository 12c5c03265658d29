"""Conformal intervals on the public test sets: coverage in distribution (held-out halves) and under shift.

A checkpoint (e.g. the real DeepATT: ``crmnet import ../shared/models/vaishnav2022/deepatt_complex/DeepAtt_model.h5
--out deepatt.pt``) predicts the four Vaishnav et al. test sets once. Then:

* **held out**: each set is split into random halves ``--splits`` times; calibrated on one half, the
  coverage on the other is compared with the nominal level (mean and standard deviation over splits, and
  the binomial standard error of one split);
* **shift**: calibrated on all of one set, the coverage and mean width on each other set.

Printed as Markdown tables (docs/uncertainty.md holds the output)::

    python benchmarks/bench_uncertainty.py --checkpoint deepatt.pt --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from crmnet.data.catalogue import TEST_SETS
from crmnet.evaluation.calibrate import predict_spread
from crmnet.evaluation.conformal import fit_calibration, interval_table
from crmnet.evaluation.evaluate import load_test_set
from crmnet.models.checkpoint import load_checkpoint
from crmnet.tables import render

LEVELS = (0.8, 0.9)


def held_out(y, pred, spread, splits: int, seed: int) -> dict:
    """Coverage on held-out halves per level: mean and sd over random splits, one split's binomial se."""
    rng = np.random.default_rng(seed)
    hits = {level: [] for level in LEVELS}
    for _ in range(splits):
        order = rng.permutation(len(y))
        fit, held = order[: len(y) // 2], order[len(y) // 2 :]
        cal = fit_calibration(y[fit], pred[fit], None, "absolute")
        table = interval_table(y[held], pred[held], spread[held], cal, LEVELS)
        for level in LEVELS:
            hits[level].append(table[str(level)]["coverage"])
    n = len(y) - len(y) // 2
    return {level: (float(np.mean(h)), float(np.std(h)), math.sqrt(level * (1 - level) / n)) for level, h in hits.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model = load_checkpoint(args.checkpoint)
    data = {}
    for name in TEST_SETS:
        test = load_test_set(name, args.data_dir)
        pred, spread = predict_spread(model, test.sequences)
        data[name] = (test.measured, pred, spread)

    rows = []
    for name, (y, pred, spread) in data.items():
        res = held_out(y, pred, spread, args.splits, args.seed)
        rows.append([name, f"{len(y):,}", *(f"{m:.3f} ± {s:.3f} (se {se:.3f})" for m, s, se in res.values())])
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
