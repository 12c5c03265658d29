"""Calibrated simulator: random promoters whose statistics match the real Vaishnav et al. random sets.

The planted-motif preset (:mod:`crmnet.data.simulate`) is a clean interpretation benchmark but unlike real
data (issue 17: uniform bases, GC effect of the wrong sign, motifs carrying most of the variance, one noise
level). This preset is fitted to the public high-quality random test sets instead; ``benchmarks/
calibrate_simulator.py`` fits it and prints the calibration table (simulated vs real).

**Sequences.** 110 nt: the real flanks around an 80-nt variable region. Each sequence gets its own base
probabilities, the real mean composition (``composition``, A C G T) plus a deviation with the real
between-sequence covariance (real regions vary in GC more than independent draws would: GC sd 0.081 vs
0.056), and its bases are drawn independently from them.

**Expression landscape** (noise-free activity ``a``, a deterministic function of the sequence):

1. *Fitted k-mer field*: ``Σ_windows w4[4-mer] + b``, the ridge regression of measured expression on the
   4-mer counts of the declared fitting half (1,690 of 3,331; :func:`crmnet.data.calibration.fit_half`)
   of the real high-quality complex-medium random variable regions (``HQ_testdata_complex.txt``, penalty
   by leave-one-out), shipped in ``calibrated_landscape.npz``; the other half, the defined-medium regions
   outside the fitting half and the native promoters are never seen by the fit (``docs/science.md``). It
   carries the real GC and poly-dA:dT effects and the short-k-mer trends: on the real set, 4-mer ridge
   (cross-validated r 0.78) beats 6-mer ridge (0.72), so low-order composition is the learnable part of
   the real landscape. Scaled by ``kmer_scale``, plus an extra GC term ``gc_effect · (GC − 0.5)``.
2. *Unlearnable small effects*: a random 8-mer effect field, ``residual_sd · Σ_windows u8[8-mer] /
   sqrt(windows)`` with ``u8 ~ N(0, 1)`` fixed by ``landscape_seed`` (the same landscape for every data
   seed): many tiny effects a 6-mer model on a few thousand sequences cannot learn, standing in for the
   ≈ 45 % of real variance that k-mer ridge models miss although deep models predict it (r 0.98).
3. *Motifs*: the occupancy of the planted preset's six JASPAR motifs (same two-state binding model,
   :class:`crmnet.data.simulate._Scorer`) times modest ``motif_effects``; nothing is planted, so sites
   occur only by chance, as rarely as in real random promoters (0–0.04 per sequence).

``kmer_scale``, ``gc_effect`` and ``residual_sd`` were set on a small grid so that ρ(GC, expression) and
the cross-validated r of the GC + poly-dA:dT and 6-mer ridge models on 3,331 simulated sequences come
close to the real complex set's (the calibration table; rerun the benchmark after changing them).

``a`` is standardised with a fixed reference (``mean``, ``sd`` of ``a`` over 20,000 sequences drawn with
``landscape_seed``) and mapped through the real expression quantiles (percentiles of the same real set,
also in the landscape file): ``noise_free = Q_real(Φ(z))``. The noise-free values therefore follow the
real distribution, strictly inside (0, 17): nothing piles up at the bounds.

**Labels** (``labels``), the two real noise regimes:

* ``"train"`` (default), like the training files: each sequence is seen in ``1 + Poisson(reads_mean − 1)``
  sorted cells; each cell lands in expression bin ``round(17 · expit(logit(noise_free / 17) + ε))``,
  ``ε ~ N(0, cell_sd)``; the label is the mean bin. Sequences with one read get integer labels, as many
  real low-count training values are. The public data cannot calibrate this regime (only high-quality
  test sets are public): the defaults give r(noise-free, label) ≈ 0.90, ≈ 44 % integer-valued labels and
  0.4 % at exactly 17, an assumption stated as such.
* ``"test"``, like the high-quality test sets: ``17 · expit(logit(noise_free / 17) + ε)``, ``ε ~ N(0,
  test_noise_sd)``: r(noise-free, label) ≈ 0.99, about what the best models reach on the real sets.

**Outputs** are those of :func:`crmnet.data.simulate.write_simulation`: ``FILE`` in the training format
and ``FILE.truth.json`` (format ``crmnet-calibrated-truth``: config, landscape provenance, noise-free values,
reads per sequence for training labels, summaries). Deterministic given ``(n, seed, config)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy import special

from crmnet.config import Config
from crmnet.data.calibration import kmer_index
from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK, VARIABLE_LENGTH
from crmnet.data.encoding import ALPHABET, Encoding, encode
from crmnet.data.simulate import SimulatedData, SimulatorConfig, _prepare_motifs, _rounded, _Scorer, _summary

TRUTH_FORMAT = "crmnet-calibrated-truth"
TRUTH_VERSION = 1
LANDSCAPE_FILE = "calibrated_landscape.npz"
LANDSCAPE_K = 4
RESIDUAL_K = 8
REFERENCE_N = 20000
BIN_RANGE = (0, 17)


@dataclass
class CalibratedConfig(Config):
    """The calibrated model (see the module docstring); defaults are the fitted values."""

    composition: tuple[float, float, float, float] = (0.2131, 0.2017, 0.2988, 0.2864)
    composition_spread: float = 1.0
    kmer_scale: float = 0.9
    gc_effect: float = 4.0
    residual_sd: float = 2.1
    motifs: tuple[str, ...] = ("NHP10", "REB1", "ABF1", "AZF1", "RAP1", "UME6")
    motif_effects: tuple[float, ...] = (-0.8, 1.6, 1.6, 0.8, 2.4, -2.4)
    landscape_seed: int = 17
    labels: str = "train"
    reads_mean: float = 3.0
    cell_sd: float = 0.9
    test_noise_sd: float = 0.15

    def __post_init__(self) -> None:
        self.composition = tuple(float(v) for v in self.composition)
        self.motifs = tuple(self.motifs)
        self.motif_effects = tuple(float(v) for v in self.motif_effects)
        if len(self.composition) != 4 or min(self.composition) <= 0 or not math.isclose(sum(self.composition), 1.0,
                                                                                        abs_tol=1e-3):
            raise ValueError(f"CalibratedConfig.composition must be 4 positive fractions summing to 1: "
                             f"{self.composition}")
        if len(self.motif_effects) != len(self.motifs):
            raise ValueError(f"CalibratedConfig.motif_effects has {len(self.motif_effects)} values for "
                             f"{len(self.motifs)} motifs")
        if self.labels not in ("train", "test"):
            raise ValueError(f"CalibratedConfig.labels must be 'train' or 'test', not {self.labels!r}")
        if self.reads_mean < 1:
            raise ValueError(f"CalibratedConfig.reads_mean must be at least 1: {self.reads_mean}")
        for name in ("kmer_scale", "residual_sd", "cell_sd", "test_noise_sd"):
            if getattr(self, name) < 0:
                raise ValueError(f"CalibratedConfig.{name} must be non-negative: {getattr(self, name)}")

    def motif_config(self) -> SimulatorConfig:
        """The planted preset's binding model for these motifs, with nothing planted."""
        zeros = (0.0,) * len(self.motifs)
        return SimulatorConfig(motifs=self.motifs, effects=self.motif_effects, plant_prob=zeros,
                               reverse_gain=(1.0,) * len(self.motifs), interactions=())


@lru_cache(maxsize=1)
def load_landscape() -> dict:
    """The fitted landscape shipped with crmnet: 6-mer weights (4096,), intercept, quantiles (101,), provenance."""
    with resources.files("crmnet.data").joinpath(LANDSCAPE_FILE).open("rb") as fh, np.load(fh) as npz:
        return {key: npz[key] for key in npz.files}


def random_variable_regions(rng: np.random.Generator, n: int, composition, spread: float = 1.0,
                            chunk_size: int = 65536) -> np.ndarray:
    """Variable regions with the real composition and its real between-sequence variation.

    Each sequence gets its own base probabilities, ``composition`` plus a Gaussian deviation with the
    fitted between-sequence covariance (``composition_cov`` of the landscape file) times ``spread²``,
    floored at 1 % and renormalised; its 80 bases are then drawn independently from them.

    Parameters
    ----------
    rng : generator; n : number of sequences; composition : (4,) mean fractions A, C, G, T.
    spread : scale of the between-sequence deviation (0: every sequence uses ``composition``).

    Returns
    -------
    (n, 80) uint8 codes.
    """
    mean = np.asarray(composition, dtype=np.float64)
    cov = load_landscape()["composition_cov"].astype(np.float64) * spread**2
    out = np.empty((n, VARIABLE_LENGTH), dtype=np.uint8)
    for lo in range(0, n, chunk_size):
        m = min(chunk_size, n - lo)
        probs = np.clip(mean + rng.multivariate_normal(np.zeros(4), cov, size=m, method="eigh"), 0.01, None)
        cdf = np.cumsum(probs, axis=1)
        cdf /= cdf[:, -1:]
        u = rng.random((m, VARIABLE_LENGTH))
        out[lo : lo + m] = (u[:, :, None] > cdf[:, None, :3]).sum(axis=2)
    return out


def with_flanks(variable: np.ndarray) -> np.ndarray:
    """Codes (n, 80) of variable regions → (n, 110) construct codes with the real flanks."""
    n = len(variable)
    left, right = (encode([flank], Encoding(length=len(flank)))[0][0] for flank in (LEFT_FLANK, RIGHT_FLANK))
    return np.concatenate([np.broadcast_to(left, (n, len(left))), variable,
                           np.broadcast_to(right, (n, len(right)))], axis=1)


class Landscape:
    """The noise-free activity of :mod:`crmnet.data.calibrated` for one config (see the module docstring)."""

    def __init__(self, config: CalibratedConfig, fitted: dict | None = None):
        import torch

        self.config = config
        fitted = load_landscape() if fitted is None else fitted
        self.k = int(fitted["k"])
        self.wk = fitted["kmer_weights"].astype(np.float64) * config.kmer_scale
        self.bk = float(fitted["intercept"]) * config.kmer_scale
        self.quantiles = fitted["quantiles"].astype(np.float64)
        windows = VARIABLE_LENGTH - RESIDUAL_K + 1
        u8 = np.random.default_rng(config.landscape_seed).standard_normal(4**RESIDUAL_K)
        self.w8 = u8 * (config.residual_sd / math.sqrt(windows))
        self.motif_config = config.motif_config()
        self.motifs = _prepare_motifs(self.motif_config)
        self.scorer = _Scorer(self.motifs, self.motif_config, torch)
        self.effects = np.asarray(config.motif_effects)
        reference = random_variable_regions(np.random.default_rng(config.landscape_seed), REFERENCE_N,
                                            config.composition, config.composition_spread)
        a = self.activity(reference)[0]
        self.mean, self.sd = float(a.mean()), float(a.std())

    def activity(self, variable: np.ndarray, chunk_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """variable: (n, 80) uint8 → activity (n,) float64 and motif occupancy (n, M)."""
        import torch

        n = len(variable)
        out = np.empty(n, dtype=np.float64)
        occupancy = np.empty((n, len(self.motifs)), dtype=np.float64)
        with torch.inference_mode():
            for lo in range(0, n, chunk_size):
                chunk = variable[lo : lo + chunk_size]
                a = self.wk[kmer_index(chunk, self.k)[0]].sum(axis=1) + self.bk
                a += self.w8[kmer_index(chunk, RESIDUAL_K)[0]].sum(axis=1)
                a += self.config.gc_effect * (((chunk == 1) | (chunk == 2)).mean(axis=1) - 0.5)
                occ = self.scorer.occupancy(self.scorer.logits(chunk))
                occupancy[lo : lo + len(chunk)] = occ
                out[lo : lo + len(chunk)] = a + occ @ self.effects
        return out, occupancy

    def expression(self, activity: np.ndarray) -> np.ndarray:
        """Activity (n,) → noise-free expression (n,) through the real quantile function."""
        p = special.ndtr((activity - self.mean) / self.sd)
        return np.interp(p, np.linspace(0.0, 1.0, len(self.quantiles)), self.quantiles)


def measure(noise_free: np.ndarray, rng: np.random.Generator, config: CalibratedConfig) -> tuple[np.ndarray, np.ndarray]:
    """Labels for noise-free expression (n,) in the ``config.labels`` regime (see the module docstring).

    Returns
    -------
    labels (n,) float64 and reads (n,) int64 (the number of sorted cells; all 0 for test labels).
    """
    n = len(noise_free)
    top = float(BIN_RANGE[1])
    # Noise acts on the logit of the position within the bin range, so a value approaches 0 or 17 only as
    # often as its distance from them allows: nothing piles up at the bounds, nothing leaves them.
    position = special.logit(np.clip(noise_free, 1e-3, top - 1e-3) / top)
    if config.labels == "test":
        labels = top * special.expit(position + rng.normal(0.0, config.test_noise_sd, size=n))
        return labels, np.zeros(n, dtype=np.int64)
    reads = 1 + rng.poisson(config.reads_mean - 1.0, size=n)
    owner = np.repeat(np.arange(n), reads)
    cells = np.round(top * special.expit(position[owner] + rng.normal(0.0, config.cell_sd, size=len(owner))))
    return np.bincount(owner, weights=cells, minlength=n) / reads, reads


def simulate_calibrated(n: int, seed: int = 0, config: CalibratedConfig | None = None) -> SimulatedData:
    """Simulate ``n`` sequences with the calibrated model; deterministic given (n, seed, config).

    Returns
    -------
    SimulatedData: codes (n, 110) uint8, expression (labels) and noise_free (n,) float32, truth dict.
    """
    config = config or CalibratedConfig()
    if n < 1:
        raise ValueError(f"number of sequences must be positive, not {n}")
    landscape = Landscape(config)
    rng = np.random.default_rng(seed)
    variable = random_variable_regions(rng, n, config.composition, config.composition_spread)
    activity, occupancy = landscape.activity(variable)
    noise_free = landscape.expression(activity)
    labels, reads = measure(noise_free, rng, config)
    truth = _truth(config, seed, landscape, noise_free, labels, reads, occupancy)
    return SimulatedData(with_flanks(variable), labels.astype(np.float32), noise_free.astype(np.float32), truth)


def landscape_provenance() -> dict:
    """What the shipped landscape was fitted to (JSON-ready)."""
    fitted = load_landscape()
    return {"file": LANDSCAPE_FILE, "source": str(fitted["source"]), "n": int(fitted["n"]),
            "ridge_alpha": float(fitted["alpha"]), "kmer": int(fitted["k"]), "cv_r_on_source": float(fitted["cv_r"]),
            "residual_kmer": RESIDUAL_K}


def _truth(config, seed, landscape, noise_free, labels, reads, occupancy) -> dict:
    r = float(np.corrcoef(noise_free, labels)[0, 1]) if labels.std() > 0 else 1.0
    return {
        "format": TRUTH_FORMAT,
        "format_version": TRUTH_VERSION,
        "n": len(noise_free),
        "seed": seed,
        "config": config.to_dict(),
        "landscape": {**landscape_provenance(), "activity_mean": landscape.mean, "activity_sd": landscape.sd},
        "construct": {"left_flank": LEFT_FLANK, "right_flank": RIGHT_FLANK, "variable_length": VARIABLE_LENGTH,
                      "variable_start": len(LEFT_FLANK), "alphabet": ALPHABET[:4]},
        "motifs": [{"name": m.name, "matrix_id": m.matrix_id, "effect": config.motif_effects[k],
                    "threshold_bits": round(m.threshold, 4),
                    "mean_occupancy": round(float(occupancy[:, k].mean()), 5)}
                   for k, m in enumerate(landscape.motifs)],
        "noise_free": _rounded(noise_free, 4),
        "reads": reads.tolist() if config.labels == "train" else None,
        "summary": {"measured": _summary(labels), "noise_free": _summary(noise_free),
                    "pearson_noise_free_measured": round(r, 5),
                    "frac_integer": round(float(np.mean(labels == np.round(labels))), 5),
                    "frac_at_bounds": round(float(np.mean((labels <= BIN_RANGE[0]) | (labels >= BIN_RANGE[1]))), 5)},
    }
