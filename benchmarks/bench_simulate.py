"""Speed of the ground-truth simulator, and how its expression distribution compares with the real test sets.

    python benchmarks/bench_simulate.py [--sizes 10000 100000 1000000] [--repeats 3] [--shared ../shared]

Prints (1) the median wall time of ``simulate`` and of ``write_simulation`` per size (goal: 1 M sequences in
under 60 s on a 2-core CPU), and (2) mean, sd, quantiles, the Kolmogorov–Smirnov distance and the histogram
overlap (Σ min(p, q) over 0.5-wide bins, 1 = identical) between the simulated measured expression (200 k
sequences, seed 0) and the measured expression of each shared test set.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from crmnet.data.simulate import simulate, write_simulation

ROOT = Path(__file__).resolve().parents[1]
TEST_SETS = {
    "Random_complex": ("test/Random_complex.csv", "Measured Expression"),
    "Native_complex": ("test/Native_complex.csv", "Measured Expression"),
    "Random_defined": ("test/Random_defined.csv", "Measured Expression"),
    "Native_defined": ("test/Native_defined.csv", "Measured Expression"),
}


def _measured(path: Path, column: str) -> np.ndarray:
    with open(path, newline="") as fh:
        return np.array([float(row[column]) for row in csv.DictReader(fh)])


def timing(sizes: list[int], repeats: int) -> None:
    print(f"{'n':>10} {'simulate s':>11} {'write s':>8} {'total s':>8} {'seq/s':>10} {'file MB':>8} {'truth MB':>9}")
    simulate(1000, seed=0)  # JASPAR, torch and numpy warm-up
    for n in sizes:
        sim_t, write_t = [], []
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "sim.txt"
            for r in range(repeats):
                t0 = time.perf_counter()
                data = simulate(n, seed=r)
                t1 = time.perf_counter()
                write_simulation(data, out, overwrite=True)
                t2 = time.perf_counter()
                sim_t.append(t1 - t0)
                write_t.append(t2 - t1)
                del data
            sizes_mb = out.stat().st_size / 1e6, Path(str(out) + ".truth.json").stat().st_size / 1e6
        s, w = statistics.median(sim_t), statistics.median(write_t)
        print(f"{n:>10,} {s:>11.2f} {w:>8.2f} {s + w:>8.2f} {n / (s + w):>10,.0f} {sizes_mb[0]:>8.1f} {sizes_mb[1]:>9.1f}")


def distribution(shared: Path, n: int) -> None:
    from scipy.stats import ks_2samp

    sim = simulate(n, seed=0).expression.astype(np.float64)
    rows = [("simulated", sim)]
    for name, (rel, column) in TEST_SETS.items():
        path = shared / "data" / "vaishnav2022" / rel
        if path.exists():
            rows.append((name, _measured(path, column)))
    bins = np.arange(0, 17.5 + 0.5, 0.5)
    p_sim = np.histogram(sim, bins)[0] / len(sim)
    print(f"\n{'set':>15} {'n':>7} {'mean':>6} {'sd':>5} {'q05':>6} {'q25':>6} {'median':>6} {'q75':>6} {'q95':>6} "
          f"{'KS vs sim':>9} {'overlap':>7}")
    for name, y in rows:
        q = np.quantile(y, [0.05, 0.25, 0.5, 0.75, 0.95])
        ks = ks_2samp(sim, y).statistic if name != "simulated" else 0.0
        overlap = np.minimum(p_sim, np.histogram(y, bins)[0] / len(y)).sum()
        print(f"{name:>15} {len(y):>7,} {y.mean():>6.2f} {y.std():>5.2f} " + " ".join(f"{v:>6.2f}" for v in q)
              + f" {ks:>9.3f} {overlap:>7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--distribution-n", type=int, default=200_000)
    args = parser.parse_args()
    timing(args.sizes, args.repeats)
    distribution(args.shared, args.distribution_n)


if __name__ == "__main__":
    main()
