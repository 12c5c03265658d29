"""Fit the calibrated simulator to the real random test sets and print the calibration table.

    python benchmarks/calibrate_simulator.py [--data-dir ../shared/data/vaishnav2022] [--n 3331]
    python benchmarks/calibrate_simulator.py --fit   # refit src/crmnet/data/calibrated_landscape.npz

The table compares, on variable regions only (crmnet.data.calibration), the planted-motif preset, the
calibrated preset (training-style and test-style labels) and the real high-quality random sets
(complex: HQ_testdata_complex.txt; defined: Random_defined.csv). Simulated sets have the size of the real
complex set by default, so cross-validated model fits see as much data as on the real set.
``--json FILE`` also writes every statistic.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from crmnet.data import calibration as cal
from crmnet.data.calibrated import LANDSCAPE_FILE, LANDSCAPE_K, CalibratedConfig, simulate_calibrated
from crmnet.data.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "vaishnav2022"
FIT_SOURCE = "test/HQ_testdata_complex.txt"


def read_hq_complex(data: Path) -> tuple[list[str], np.ndarray]:
    with open(data / FIT_SOURCE, encoding="ascii") as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh if line.strip()]
    return [r[0] for r in rows], np.array([float(r[1]) for r in rows])


def read_random_defined(data: Path) -> tuple[list[str], np.ndarray]:
    with open(data / "test" / "Random_defined.csv", encoding="ascii", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["seq110"] for r in rows], np.array([float(r["Measured Expression"]) for r in rows])


def composition_covariance(codes: np.ndarray) -> np.ndarray:
    """Between-sequence covariance (4, 4) of base fractions: observed minus what sampling alone gives.

    Real random regions vary in composition more than independent draws of their length would (GC sd
    0.081 vs 0.056 for 80 iid bases): a per-sequence composition, as from synthesis.
    """
    known = (codes < 4).sum(axis=1)
    fractions = np.stack([(codes == b).sum(axis=1) / known for b in range(4)], axis=1)
    p = fractions.mean(axis=0)
    sampling = (np.diag(p) - np.outer(p, p)) * np.mean(1.0 / known)
    eigval, eigvec = np.linalg.eigh(np.cov(fractions, rowvar=False) - sampling)
    return (eigvec * np.clip(eigval, 0.0, None)) @ eigvec.T


def fit(data: Path, out: Path) -> None:
    """Ridge k-mer field and expression percentiles of the real complex HQ set → the landscape file."""
    sequences, values = read_hq_complex(data)
    codes = cal.variable_regions(sequences)
    weights, intercept, alpha = cal.fit_ridge(cal.kmer_counts(codes, LANDSCAPE_K), values)
    np.savez_compressed(
        out, kmer_weights=weights.astype(np.float32), intercept=np.float64(intercept), alpha=np.float64(alpha),
        k=np.int64(LANDSCAPE_K), composition_cov=composition_covariance(codes), cv_r=np.float64(cal.cv_pearson(cal.kmer_counts(codes, LANDSCAPE_K), values)),
        quantiles=np.quantile(values, np.linspace(0, 1, 101)).astype(np.float32),
        n=np.int64(len(values)), source=np.str_(f"Vaishnav et al. 2022 {FIT_SOURCE} (github.com/1edv/evolution)"),
    )
    print(f"wrote {out}: ridge alpha {alpha:g} on {len(values):,} sequences")


ROWS = [
    ("composition A / C / G / T", lambda s: " / ".join(f"{s['composition'][b]:.3f}" for b in "ACGT")),
    ("Spearman ρ(GC, expression)", lambda s: f"{s['rho_gc']:+.2f}"),
    ("Spearman ρ(poly-dA:dT, expression)", lambda s: f"{s['rho_polyat']:+.2f}"),
    ("r, GC + poly-dA:dT linear model (5-fold CV)", lambda s: f"{s['r_gc_polyat']:.2f}"),
    ("r, 6-mer ridge (5-fold CV)", lambda s: f"{s['r_kmer_ridge']:.2f}"),
    ("JASPAR sites per sequence (6 motifs)", lambda s: " / ".join(f"{v:.3f}" for v in s["motif_sites_per_seq"].values())),
    ("R², linear model on motif site counts", lambda s: f"{s['motif_r2']:.3f}"),
    ("expression q05 / q50 / q95", lambda s: " / ".join(f"{s['quantiles'][q]:.1f}" for q in ("q05", "q50", "q95"))),
    ("fraction integer-valued", lambda s: f"{s['frac_integer']:.3f}"),
    ("fraction exactly at 0 or 17", lambda s: f"{s['frac_at_bounds']:.4f}"),
]


def table(columns: dict[str, dict]) -> str:
    lines = ["| statistic | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for label, cell in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(s) for s in columns.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=3331, help="simulated sequences per preset (default 3331)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fit", action="store_true", help=f"refit src/crmnet/data/{LANDSCAPE_FILE} first")
    parser.add_argument("--json", type=Path, help="also write every statistic here")
    args = parser.parse_args()
    if args.fit:
        fit(args.data_dir, ROOT / "src" / "crmnet" / "data" / LANDSCAPE_FILE)
    motifs = cal.planted_motifs()
    columns = {}
    t = time.perf_counter()
    planted = simulate(args.n, seed=args.seed)
    columns["planted preset"] = cal.summarize(cal.variable_regions(planted.sequences), planted.expression, motifs)
    for labels in ("train", "test"):
        sim = simulate_calibrated(args.n, seed=args.seed, config=CalibratedConfig(labels=labels))
        columns[f"calibrated, {labels} labels"] = cal.summarize(cal.variable_regions(sim.sequences), sim.expression,
                                                               motifs)
    for name, reader in (("real complex (HQ)", read_hq_complex), ("real defined (HQ)", read_random_defined)):
        sequences, values = reader(args.data_dir)
        columns[f"{name}, n={len(values):,}"] = cal.summarize(cal.variable_regions(sequences), values, motifs)
    print(table(columns))
    print(f"\n({time.perf_counter() - t:.0f} s; simulated n={args.n:,}, seed {args.seed}; "
          f"motifs {', '.join(motifs[0])})")
    if args.json:
        args.json.write_text(json.dumps(columns, indent=1))


if __name__ == "__main__":
    main()
