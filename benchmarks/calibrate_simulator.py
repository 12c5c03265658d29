"""Fit the calibrated simulator on a declared half of the real data and check it on real sets it never saw.

    python benchmarks/calibrate_simulator.py [--data-dir ../shared/data/vaishnav2022] [--n 3331]
    python benchmarks/calibrate_simulator.py --fit   # refit src/crmnet/data/calibrated_landscape.npz
    python benchmarks/calibrate_simulator.py --checkpoint deepatt.pt   # + a real model on the simulation

The landscape (4-mer ridge field, composition covariance, expression quantiles) is fitted on the
**fitting half** of HQ_testdata_complex.txt only (crmnet.data.calibration.fit_half: a fixed hash of each
variable region). The table compares, on variable regions only, the planted-motif preset, the calibrated
preset (training-style and test-style labels) and four real sets: the fitting half; the unseen half; the
defined-medium random set (Random_defined.csv) without the regions of the fitting half; and the native
complex-medium promoters (Native_complex.csv). "r, simulator landscape vs measured" is the correlation of
the simulator's noise-free expression of each real sequence with its measurement: its gap between the
fitting half and the unseen sets is the fit's optimism. ``--checkpoint`` adds a real model's r against
the simulated test-style labels and against the simulator's noise-free values. ``--json FILE`` also
writes every statistic.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from crmnet.data import calibration as cal
from crmnet.data.calibrated import (
    LANDSCAPE_FILE,
    LANDSCAPE_K,
    CalibratedConfig,
    Landscape,
    simulate_calibrated,
)
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


def read_native_complex(data: Path) -> tuple[list[str], np.ndarray]:
    with open(data / "test" / "Native_complex.csv", encoding="ascii", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["sequence"] for r in rows], np.array([float(r["Measured Expression"]) for r in rows])


def _regions(reader, data: Path) -> tuple[np.ndarray, np.ndarray]:
    sequences, values = reader(data)
    return cal.variable_regions(sequences), values


def real_sets(data: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four real columns: (variable-region codes, measured values) each."""
    codes, values = _regions(read_hq_complex, data)
    half = cal.fit_half(codes)
    d_codes, d_values = _regions(read_random_defined, data)
    fitted = {codes[i][codes[i] < 4].tobytes() for i in np.flatnonzero(half)}
    unseen_d = np.array([row[row < 4].tobytes() not in fitted for row in d_codes])
    n_codes, n_values = _regions(read_native_complex, data)
    return {
        "real complex, fitting half": (codes[half], values[half]),
        "real complex, unseen half": (codes[~half], values[~half]),
        "real defined random, unseen": (d_codes[unseen_d], d_values[unseen_d]),
        "real native complex": (n_codes, n_values),
    }


def fit(data: Path, out: Path) -> None:
    """Ridge k-mer field and expression percentiles of the fitting half of the complex HQ set → the landscape file."""
    sequences, values = read_hq_complex(data)
    codes = cal.variable_regions(sequences)
    half = cal.fit_half(codes)
    codes, values = codes[half], values[half]
    weights, intercept, alpha = cal.fit_ridge(cal.kmer_counts(codes, LANDSCAPE_K), values)
    np.savez_compressed(
        out, kmer_weights=weights.astype(np.float32), intercept=np.float64(intercept), alpha=np.float64(alpha),
        k=np.int64(LANDSCAPE_K), composition_cov=composition_covariance(codes), cv_r=np.float64(cal.cv_pearson(cal.kmer_counts(codes, LANDSCAPE_K), values)),
        quantiles=np.quantile(values, np.linspace(0, 1, 101)).astype(np.float32),
        n=np.int64(len(values)), source=np.str_(f"Vaishnav et al. 2022 {FIT_SOURCE}, fitting half "
                                                 "(crmnet.data.calibration.fit_half; github.com/1edv/evolution)"),
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
    ("r, simulator landscape vs measured", lambda s: f"{s['r_landscape']:.3f}" if "r_landscape" in s else "–"),
]


def table(columns: dict[str, dict]) -> str:
    lines = ["| statistic | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for label, cell in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(s) for s in columns.values()) + " |")
    return "\n".join(lines)


def model_on_simulation(checkpoint: Path, n: int, seed: int) -> str:
    """A real model's Pearson r against simulated test-style labels and noise-free values."""
    from crmnet.design.oracle import ModelPredictor
    from crmnet.models.checkpoint import load_checkpoint

    sim = simulate_calibrated(n, seed=seed, config=CalibratedConfig(labels="test"))
    pred = ModelPredictor(load_checkpoint(checkpoint), 1024, "cpu")(sim.codes, np.full(n, sim.codes.shape[1]))
    r_label = np.corrcoef(pred, sim.expression)[0, 1]
    r_truth = np.corrcoef(pred, sim.noise_free)[0, 1]
    return (f"{checkpoint.name} on {n:,} calibrated simulated sequences (seed {seed}): r {r_label:.3f} with the "
            f"test-style labels, {r_truth:.3f} with the noise-free values")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=3331, help="simulated sequences per preset (default 3331)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fit", action="store_true", help=f"refit src/crmnet/data/{LANDSCAPE_FILE} first")
    parser.add_argument("--json", type=Path, help="also write every statistic here")
    parser.add_argument("--checkpoint", type=Path, help="a real model: its r on the simulated test-style labels")
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
    landscape = Landscape(CalibratedConfig(labels="test"))
    for name, (codes, values) in real_sets(args.data_dir).items():
        stats = cal.summarize(codes, values, motifs)
        full = (codes < 4).sum(axis=1) == 80  # the landscape reads exactly 80 known bases
        noise_free = landscape.expression(landscape.activity(codes[full][:, :80])[0])
        stats["r_landscape"] = float(np.corrcoef(noise_free, values[full])[0, 1])
        stats["n_landscape"] = int(full.sum())
        columns[f"{name}, n={len(values):,}"] = stats
    print(table(columns))
    if args.checkpoint:
        print(model_on_simulation(args.checkpoint, args.n, args.seed))
    print(f"\n({time.perf_counter() - t:.0f} s; simulated n={args.n:,}, seed {args.seed}; "
          f"motifs {', '.join(motifs[0])})")
    if args.json:
        args.json.write_text(json.dumps(columns, indent=1))


if __name__ == "__main__":
    main()
