"""Ground-truth simulator: random yeast promoters whose expression follows a known, documented model.

The whole pipeline (prepare → train → evaluate → interpret) can run offline on its output, and an
interpretation method can be scored against the planted truth.

**Sequences.** Each sequence is 110 nt: the real left flank ``TGCATTTTTTTCACATC`` (17 nt), an 80-nt
variable region of uniform random bases, the real right flank ``GGTTACGGCTGTT`` (13 nt), exactly as in
Vaishnav et al.'s training files. Into the variable region, instances of each configured S. cerevisiae
JASPAR motif (:mod:`crmnet.data.jaspar`, taxon 4932) are planted with probability ``plant_prob[m]`` per sequence:
bases drawn from the motif's frequency matrix, uniform start, either strand with equal probability (a later
plant may overwrite an earlier one; the truth reports the score each planted site really has).

**Expression model.** Every sequence is then scored, planted or not, so chance matches count too:

1. Site score ``s`` = PWM log2-odds (background 0.25, :meth:`Motif.log_odds`) at every start and both
   strands of the variable region (windows stay inside it).
2. Site occupancy ``p = 1 / (1 + 2^-(s - t_m))``: a two-state binding model with energy in bits. The
   threshold ``t_m`` is the mean score of a site drawn from the motif minus ``site_margin`` bits, so a
   typical real site is mostly bound and a random 80-mer rarely is.
3. Motif occupancy ``O_m = Σ_sites g(centre) · (1 if forward else reverse_gain[m]) · p``: the position gain
   ``g`` rises linearly from ``position_gain_5p`` at the 5' end of the variable region to 1 at its 3' end
   (the TSS side); ``reverse_gain`` is the orientation effect.
4. Activity ``a = baseline + Σ_m effect[m]·O_m + Σ_(i,j) w_ij·O_i·O_j + gc_effect·(GC − 0.5)
   + polyat_effect·(number of A5 or T5 windows)``: activators (> 0) and repressors (< 0), pairwise
   interactions (default REB1 × ABF1 synergy), base composition and poly(dA:dT) tracts.
5. Saturating link and scale: ``noise_free = lo + (hi − lo) · sigmoid(a)`` with ``(lo, hi) =
   expression_range``, which keeps values inside the real 0–17 range and piles them up near the top as
   the measured data do.
6. Measurement noise: Gaussian with ``sd = sd(noise_free) · sqrt(1/r² − 1)`` for ``r = noise_free_r``
   (so ``corr(noise_free, measured) ≈ r``; or a fixed ``noise_sd``), then clipped to ``clip``.

The defaults were tuned so that the measured values resemble the real high-quality random test set
(``test/Random_complex.csv``); ``benchmarks/bench_simulate.py`` prints the comparison (quantiles and
Kolmogorov–Smirnov distance).

**Outputs.** :func:`write_simulation` writes ``FILE`` in the training-file format (``sequence<TAB>value``,
no header) and ``FILE.truth.json``: the config, the motifs (matrix ids, counts, thresholds), per-sequence
noise-free expression, the planted sites and the scored sites with occupancy ≥ ``report_min_occupancy``
(columnar arrays; ``start`` is 0-based in the 110-nt sequence, ``strand`` is +1 or −1, ``motif`` indexes
``motifs``) and summary statistics. Everything is a deterministic function of ``(n, seed, config)``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crmnet.config import Config
from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK, VARIABLE_LENGTH
from crmnet.data.encoding import ALPHABET, COMPLEMENT, Encoding, decode, encode
from crmnet.errors import OutputExistsError
from crmnet.fsutil import atomic_file

TRUTH_FORMAT = "crmnet-simulation-truth"
TRUTH_VERSION = 1
LN2 = math.log(2.0)


@dataclass
class SimulatorConfig(Config):
    """The expression model (see the module docstring); per-motif tuples run parallel to ``motifs``."""

    motifs: tuple[str, ...] = ("NHP10", "REB1", "ABF1", "AZF1", "RAP1", "UME6")
    release: str = "JASPAR2024"
    effects: tuple[float, ...] = (-2.0, 2.5, 2.0, 1.2, 3.0, -6.0)
    plant_prob: tuple[float, ...] = (0.25, 0.3, 0.3, 0.25, 0.3, 0.15)
    reverse_gain: tuple[float, ...] = (1.0, 0.7, 1.0, 1.0, 0.5, 1.0)
    interactions: tuple[tuple[str, str, float], ...] = (("REB1", "ABF1", 1.5),)
    site_margin: float = 2.0
    position_gain_5p: float = 0.4
    baseline: float = 0.0
    gc_effect: float = -6.0
    polyat_effect: float = 0.5
    expression_range: tuple[float, float] = (1.5, 15.5)
    noise_free_r: float = 0.95
    noise_sd: float | None = None
    clip: tuple[float, float] = (0.0, 17.0)
    report_min_occupancy: float = 0.5

    def __post_init__(self) -> None:
        self.motifs = tuple(self.motifs)
        self.interactions = tuple((str(a), str(b), float(w)) for a, b, w in self.interactions)
        for name in ("effects", "plant_prob", "reverse_gain"):
            value = tuple(float(v) for v in getattr(self, name))
            setattr(self, name, value)
            if len(value) != len(self.motifs):
                raise ValueError(f"SimulatorConfig.{name} has {len(value)} values for {len(self.motifs)} motifs")
        if not self.motifs:
            raise ValueError("SimulatorConfig.motifs is empty")
        if len({m.upper() for m in self.motifs}) != len(self.motifs):
            raise ValueError(f"SimulatorConfig.motifs has duplicates: {self.motifs}")
        if not all(0.0 <= p <= 1.0 for p in self.plant_prob):
            raise ValueError(f"SimulatorConfig.plant_prob must lie in [0, 1]: {self.plant_prob}")
        if any(g < 0 for g in self.reverse_gain) or self.position_gain_5p < 0:
            raise ValueError("SimulatorConfig gains must be non-negative")
        known = {m.upper() for m in self.motifs}
        for a, b, _ in self.interactions:
            if a.upper() not in known or b.upper() not in known:
                raise ValueError(f"SimulatorConfig.interactions: {a}×{b} names a motif not in motifs {self.motifs}")
        self.expression_range = tuple(float(v) for v in self.expression_range)
        self.clip = tuple(float(v) for v in self.clip)
        if not self.expression_range[0] < self.expression_range[1]:
            raise ValueError(f"SimulatorConfig.expression_range must be increasing: {self.expression_range}")
        if not self.clip[0] < self.clip[1]:
            raise ValueError(f"SimulatorConfig.clip must be increasing: {self.clip}")
        if self.noise_sd is None and not 0.0 < self.noise_free_r <= 1.0:
            raise ValueError(f"SimulatorConfig.noise_free_r must lie in (0, 1]: {self.noise_free_r}")
        if self.noise_sd is not None and self.noise_sd < 0:
            raise ValueError(f"SimulatorConfig.noise_sd must be non-negative: {self.noise_sd}")
        if not 0.0 < self.report_min_occupancy < 1.0:
            raise ValueError(f"SimulatorConfig.report_min_occupancy must lie in (0, 1): {self.report_min_occupancy}")


@dataclass
class SimulatedData:
    """codes: (n, 110) uint8 (A=0 C=1 G=2 T=3); expression, noise_free: (n,) float32; truth: JSON-ready dict."""

    codes: np.ndarray
    expression: np.ndarray
    noise_free: np.ndarray
    truth: dict = field(repr=False)

    @property
    def sequences(self) -> list[str]:
        """The sequences as strings (decoded ``codes``)."""
        return decode(self.codes)

    def __len__(self) -> int:
        return len(self.codes)


@dataclass(frozen=True)
class _MotifModel:
    """One motif prepared for scoring: log-odds on both strands and its binding threshold (bits)."""

    name: str
    matrix_id: str
    counts: np.ndarray  # (4, w)
    log_odds: np.ndarray  # (4, w) forward strand
    threshold: float
    max_score: float


def _prepare_motifs(config: SimulatorConfig) -> list[_MotifModel]:
    from crmnet.data.jaspar import load_yeast_motifs

    prepared = []
    for motif in load_yeast_motifs(config.motifs, release=config.release):
        lo = motif.log_odds(0.25)
        freqs = motif.counts / motif.counts.sum(axis=0)
        mean_site = float((freqs * lo).sum())  # expected score of a site drawn from the motif
        if motif.width > VARIABLE_LENGTH:
            raise ValueError(f"motif {motif.name} ({motif.width} nt) is wider than the variable region")
        prepared.append(
            _MotifModel(motif.name, motif.matrix_id, motif.counts, lo, mean_site - config.site_margin,
                        float(lo.max(axis=0).sum()))
        )
    return prepared


def _plant(rng: np.random.Generator, variable: np.ndarray, motifs: list[_MotifModel],
           config: SimulatorConfig) -> dict[str, np.ndarray]:
    """Plant motif instances into ``variable`` (n, 80) in place; returns the planted sites (columnar)."""
    n = len(variable)
    cols: dict[str, list[np.ndarray]] = {"seq": [], "motif": [], "start": [], "strand": []}
    for k, (motif, prob) in enumerate(zip(motifs, config.plant_prob)):
        rows = np.flatnonzero(rng.random(n) < prob)
        width = motif.counts.shape[1]
        cdf = np.cumsum(motif.counts / motif.counts.sum(axis=0), axis=0)  # (4, w)
        u = rng.random((len(rows), width))
        bases = (u[:, None, :] > cdf[None, :3, :]).sum(axis=1).astype(np.uint8)  # (k, w) forward strand
        starts = rng.integers(0, VARIABLE_LENGTH - width + 1, size=len(rows))
        reverse = rng.random(len(rows)) < 0.5
        bases[reverse] = COMPLEMENT[bases[reverse][:, ::-1]]
        variable[rows[:, None], starts[:, None] + np.arange(width)] = bases
        cols["seq"].append(rows)
        cols["motif"].append(np.full(len(rows), k))
        cols["start"].append(starts)
        cols["strand"].append(np.where(reverse, -1, 1))
    return {key: np.concatenate(v).astype(np.int64) for key, v in cols.items()}


class _Scorer:
    """Scores variable regions (c, 80) for every motif, start and strand with one convolution.

    Channel ``2k`` is motif ``k`` forward, ``2k + 1`` its reverse complement; there are
    ``P = 80 − min width + 1`` starts per channel, windows that would leave the variable region are masked.
    """

    def __init__(self, motifs: list[_MotifModel], config: SimulatorConfig, torch):
        self.torch = torch
        widths = [m.counts.shape[1] for m in motifs]
        self.wmax, self.wmin = max(widths), min(widths)
        self.positions = VARIABLE_LENGTH - self.wmin + 1
        channels = 2 * len(motifs)
        weights = np.zeros((channels, 4, 1, self.wmax), dtype=np.float32)
        self.thresholds = np.zeros(channels, dtype=np.float32)
        gains = np.zeros((self.positions, channels, len(motifs)), dtype=np.float32)
        self.valid_starts = []
        for k, m in enumerate(motifs):
            w = widths[k]
            weights[2 * k, :, 0, :w] = m.log_odds
            weights[2 * k + 1, :, 0, :w] = m.log_odds[::-1, ::-1]  # reverse complement: A↔T, C↔G, flipped
            self.thresholds[2 * k : 2 * k + 2] = m.threshold
            centre = np.arange(self.positions) + (w - 1) / 2
            g = config.position_gain_5p + (1 - config.position_gain_5p) * centre / (VARIABLE_LENGTH - 1)
            gains[:, 2 * k, k] = g
            gains[:, 2 * k + 1, k] = g * config.reverse_gain[k]
            self.valid_starts.append(VARIABLE_LENGTH - w + 1)
        # Occupancy is sigmoid(ln2 · (score − threshold)): fold ln2 and the threshold into the conv so the
        # output is the logit itself and the sigmoid can run in place. A channels-last 2-d convolution
        # is about twice as fast on CPU as conv1d for 4 input channels, and its output is (c, P, 2M).
        self.weight = torch.from_numpy(weights * LN2).contiguous(memory_format=torch.channels_last)
        self.bias = torch.from_numpy(-self.thresholds * LN2)
        # Σ over starts and strands of gain × occupancy is one matrix product: (c, P·2M) @ (P·2M, M).
        self.gains = torch.from_numpy(gains.reshape(-1, len(motifs)))

    def logits(self, variable: np.ndarray):
        """variable: (c, 80) uint8 → logits (c, P, 2M) float32 tensor (−inf where a window leaves the region)."""
        torch = self.torch
        n = len(variable)
        codes = torch.from_numpy(variable).long().unsqueeze(-1)
        # Zero padding on the right lets one conv serve every width; those windows are masked below.
        x = torch.zeros(n, VARIABLE_LENGTH + self.wmax - self.wmin, 4)
        x[:, :VARIABLE_LENGTH].scatter_(2, codes, 1.0)
        x = x.unsqueeze(1).permute(0, 3, 1, 2)  # (c, 4, 1, L) in channels-last memory
        z = torch.nn.functional.conv2d(x, self.weight, self.bias)  # (c, 2M, 1, P), channels-last
        z = z.permute(0, 2, 3, 1).reshape(n, self.positions, -1)  # a view: (c, P, 2M)
        for k, first_invalid in enumerate(self.valid_starts):
            if first_invalid < self.positions:
                z[:, first_invalid:, 2 * k : 2 * k + 2] = float("-inf")
        return z

    def scores(self, logits: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """Logits of sites in ``channel`` back to log2-odds scores (bits)."""
        return logits / LN2 + self.thresholds[channel]

    def occupancy(self, z):
        """Weighted motif occupancy (c, M) float64 from logits z (c, P, 2M), which it overwrites."""
        z.sigmoid_()
        return (z.reshape(len(z), -1) @ self.gains).double().numpy()


def _composition(variable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GC fraction (n,) and the number of 5-nt windows that are all A or all T (n,)."""
    gc = ((variable == 1) | (variable == 2)).mean(axis=1)
    tracts = np.zeros(len(variable), dtype=np.int64)
    for base in (0, 3):
        run = np.ones((len(variable), VARIABLE_LENGTH - 4), dtype=bool)
        for j in range(5):
            run &= variable[:, j : VARIABLE_LENGTH - 4 + j] == base
        tracts += run.sum(axis=1)
    return gc, tracts


def simulate(n: int, seed: int = 0, config: SimulatorConfig | None = None,
             chunk_size: int = 65536) -> SimulatedData:
    """Simulate ``n`` sequences with the model of the module docstring; deterministic given (n, seed, config).

    ``chunk_size`` only bounds memory while scoring: sequences and planted sites do not depend on it;
    scores do only by float32 rounding (the convolution sums in a shape- and CPU-dependent order).
    """
    import torch

    config = config or SimulatorConfig()
    if n < 1:
        raise ValueError(f"number of sequences must be positive, not {n}")
    motifs = _prepare_motifs(config)
    rng = np.random.default_rng(seed)
    variable = rng.integers(0, 4, size=(n, VARIABLE_LENGTH), dtype=np.uint8)
    planted = _plant(rng, variable, motifs, config)

    index = {m.name.upper(): k for k, m in enumerate(motifs)}
    pairs = [(index[a.upper()], index[b.upper()], w) for a, b, w in config.interactions]
    scorer = _Scorer(motifs, config, torch)
    report_logit = math.log(config.report_min_occupancy / (1 - config.report_min_occupancy))
    occupancy = np.zeros((n, len(motifs)), dtype=np.float64)
    planted_logit = np.zeros(len(planted["seq"]), dtype=np.float32)
    planted_order = np.argsort(planted["seq"], kind="stable")
    planted_bounds = np.searchsorted(planted["seq"][planted_order], np.arange(0, n + chunk_size, chunk_size))
    planted_channel = 2 * planted["motif"] + (planted["strand"] == -1)
    found: dict[str, list[np.ndarray]] = {"seq": [], "channel": [], "start": [], "logit": []}
    with torch.inference_mode():
        for c, lo in enumerate(range(0, n, chunk_size)):
            z = scorer.logits(variable[lo : lo + chunk_size])
            seq, start, channel = torch.nonzero(z >= report_logit, as_tuple=True)
            found["seq"].append(seq.numpy() + lo)
            found["channel"].append(channel.numpy())
            found["start"].append(start.numpy())
            found["logit"].append(z[seq, start, channel].numpy())
            take = planted_order[planted_bounds[c] : planted_bounds[c + 1]]
            at = (planted["seq"][take] - lo, planted["start"][take], planted_channel[take])
            planted_logit[take] = z[tuple(torch.from_numpy(a) for a in at)].numpy()
            occupancy[lo : lo + chunk_size] = scorer.occupancy(z)
    found_arrays = {key: np.concatenate(v) for key, v in found.items()}
    sites = {
        "seq": found_arrays["seq"].astype(np.int64),
        "motif": found_arrays["channel"] // 2,
        "start": found_arrays["start"],
        "strand": np.where(found_arrays["channel"] % 2 == 1, -1, 1),
        "score": scorer.scores(found_arrays["logit"], found_arrays["channel"]),
    }
    planted["score"] = scorer.scores(planted_logit, planted_channel)

    gc, tracts = _composition(variable)
    activity = config.baseline + occupancy @ np.asarray(config.effects)
    for i, j, w in pairs:
        activity += w * occupancy[:, i] * occupancy[:, j]
    activity += config.gc_effect * (gc - 0.5) + config.polyat_effect * tracts
    lo_expr, hi_expr = config.expression_range
    noise_free = lo_expr + (hi_expr - lo_expr) / (1.0 + np.exp(-activity))
    if config.noise_sd is not None:
        noise_sd = config.noise_sd
    else:
        noise_sd = float(noise_free.std()) * math.sqrt(1.0 / config.noise_free_r**2 - 1.0)
    measured = np.clip(noise_free + rng.normal(0.0, noise_sd, size=n) if noise_sd > 0 else noise_free, *config.clip)

    left, right = (encode([flank], Encoding(length=len(flank)))[0][0] for flank in (LEFT_FLANK, RIGHT_FLANK))
    codes = np.concatenate(
        [np.broadcast_to(left, (n, len(left))), variable, np.broadcast_to(right, (n, len(right)))], axis=1
    )
    truth = _truth(config, seed, motifs, noise_free, measured, noise_sd, occupancy, planted, sites)
    return SimulatedData(codes, measured.astype(np.float32), noise_free.astype(np.float32), truth)


def _rounded(a: np.ndarray, digits: int) -> list[float]:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


def _summary(values: np.ndarray) -> dict:
    q = np.quantile(values, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    return {"mean": round(float(values.mean()), 4), "sd": round(float(values.std()), 4),
            "quantiles": dict(zip(["min", "q05", "q25", "median", "q75", "q95", "max"], _rounded(q, 4)))}


def _columns(sites: dict[str, np.ndarray]) -> dict[str, list]:
    """Site table → JSON columns; starts become 0-based positions in the 110-nt sequence."""
    return {"seq": sites["seq"].tolist(), "motif": sites["motif"].tolist(),
            "start": (sites["start"] + len(LEFT_FLANK)).tolist(), "strand": sites["strand"].tolist(),
            "score": _rounded(sites["score"], 3)}


def _truth(config, seed, motifs, noise_free, measured, noise_sd, occupancy, planted, sites) -> dict:
    n = len(noise_free)
    r = float(np.corrcoef(noise_free, measured)[0, 1]) if noise_free.std() > 0 and measured.std() > 0 else 1.0
    return {
        "format": TRUTH_FORMAT,
        "format_version": TRUTH_VERSION,
        "n": n,
        "seed": seed,
        "config": config.to_dict(),
        "construct": {"left_flank": LEFT_FLANK, "right_flank": RIGHT_FLANK, "variable_length": VARIABLE_LENGTH,
                      "variable_start": len(LEFT_FLANK), "alphabet": ALPHABET[:4]},
        "motifs": [
            {"name": m.name, "matrix_id": m.matrix_id, "release": config.release, "taxon": "4932",
             "counts": m.counts.tolist(), "width": int(m.counts.shape[1]), "effect": config.effects[k],
             "plant_prob": config.plant_prob[k], "reverse_gain": config.reverse_gain[k],
             "threshold_bits": round(m.threshold, 4), "max_score_bits": round(m.max_score, 4),
             "mean_occupancy": round(float(occupancy[:, k].mean()), 5)}
            for k, m in enumerate(motifs)
        ],
        "interactions": [{"a": a, "b": b, "weight": w} for a, b, w in config.interactions],
        "noise_sd": noise_sd,
        "noise_free": _rounded(noise_free, 4),
        "planted_sites": _columns(planted),
        "scored_sites": _columns(sites),
        "summary": {"measured": _summary(measured), "noise_free": _summary(noise_free),
                    "pearson_noise_free_measured": round(r, 5),
                    "planted_per_motif": np.bincount(planted["motif"], minlength=len(motifs)).tolist(),
                    "scored_per_motif": np.bincount(sites["motif"], minlength=len(motifs)).tolist()},
    }


def truth_path(out: str | os.PathLike) -> Path:
    """Where :func:`write_simulation` puts the ground truth of ``out``: ``out`` + ``.truth.json``."""
    out = Path(out)
    return out.with_name(out.name + ".truth.json")


def format_training_lines(codes: np.ndarray, values: np.ndarray) -> bytes:
    """``sequence<TAB>value`` lines (values with 6 decimals) for codes (n, L) uint8 and values (n,), vectorised."""
    n, width = codes.shape
    letters = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)[codes]
    text = [f"{v:.6f}" for v in np.asarray(values, dtype=np.float64).tolist()]
    value_len = np.fromiter(map(len, text), dtype=np.int64, count=n)
    value_bytes = np.frombuffer("".join(text).encode("ascii"), dtype=np.uint8)
    line_end = np.cumsum(width + 1 + value_len + 1)
    line_start = line_end - (width + 1 + value_len + 1)
    buf = np.empty(int(line_end[-1]) if n else 0, dtype=np.uint8)
    buf[line_start[:, None] + np.arange(width)] = letters
    buf[line_start + width] = ord("\t")
    value_first = np.cumsum(value_len) - value_len  # where each value starts inside value_bytes
    buf[np.repeat(line_start + width + 1 - value_first, value_len) + np.arange(len(value_bytes))] = value_bytes
    buf[line_end - 1] = ord("\n")
    return buf.tobytes()


def write_simulation(data: SimulatedData, out: str | os.PathLike, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``out`` (``sequence<TAB>expression`` lines, no header) and ``out.truth.json``, both atomically.

    Parameters
    ----------
    data : SimulatedData
        What :func:`simulate` returned: sequences, noisy labels and the noise-free truth.
    out : path-like
        The training-format file to write; ``out.truth.json`` is written beside it.
    overwrite : bool
        Replace existing files (else either existing file is refused).

    Returns
    -------
    tuple of (Path, Path)
        The data file and the truth file.
    """
    out = Path(out)
    truth_file = truth_path(out)
    if not overwrite:
        for path in (out, truth_file):
            if path.exists():
                raise OutputExistsError(path)
    lines = format_training_lines(data.codes, data.expression)
    truth_text = json.dumps(data.truth, separators=(",", ":"))
    with atomic_file(truth_file, overwrite=overwrite) as truth_fh, atomic_file(out, overwrite, "wb") as fh:
        fh.write(lines)
        truth_fh.write(truth_text)
    return out, truth_file


def noise_free_expression(sequences, config: SimulatorConfig | dict | None = None,
                          chunk_size: int = 65536) -> np.ndarray:
    """The simulator's noise-free expression (steps 1-5 of the module docstring) of any constructs.

    Parameters
    ----------
    sequences : list of str, or (n, 110) uint8 codes (A=0 C=1 G=2 T=3)
        110-nt constructs (17-nt left flank, 80-nt variable region, 13-nt right flank); only the
        variable region is scored, as in :func:`simulate`. ``N`` is not allowed in the variable region.
    config : SimulatorConfig, its dict, a truth dict (from ``FILE.truth.json``) or None (defaults)
    chunk_size : int
        Sequences scored at once (bounds memory only).

    Returns
    -------
    (n,) float64
        Equal to :attr:`SimulatedData.noise_free` for the sequences :func:`simulate` drew.
    """
    import torch

    if isinstance(config, dict):
        config = SimulatorConfig.from_dict(config.get("config", config))
    config = config or SimulatorConfig()
    if isinstance(sequences, np.ndarray) and sequences.dtype == np.uint8:
        codes = sequences
    else:
        codes, _ = encode(list(sequences), Encoding(length=len(LEFT_FLANK) + VARIABLE_LENGTH + len(RIGHT_FLANK)))
    if codes.ndim != 2 or codes.shape[1] != len(LEFT_FLANK) + VARIABLE_LENGTH + len(RIGHT_FLANK):
        raise ValueError(f"noise_free_expression needs (n, 110) codes of the construct, got {codes.shape}")
    variable = np.ascontiguousarray(codes[:, len(LEFT_FLANK) : len(LEFT_FLANK) + VARIABLE_LENGTH])
    if (variable > 3).any():
        raise ValueError("noise_free_expression: the variable region holds N (or padding); it has no expression")
    motifs = _prepare_motifs(config)
    index = {m.name.upper(): k for k, m in enumerate(motifs)}
    scorer = _Scorer(motifs, config, torch)
    occupancy = np.zeros((len(variable), len(motifs)), dtype=np.float64)
    with torch.inference_mode():
        for lo in range(0, len(variable), chunk_size):
            occupancy[lo : lo + chunk_size] = scorer.occupancy(scorer.logits(variable[lo : lo + chunk_size]))
    gc, tracts = _composition(variable)
    activity = config.baseline + occupancy @ np.asarray(config.effects)
    for a, b, w in config.interactions:
        activity += w * occupancy[:, index[a.upper()]] * occupancy[:, index[b.upper()]]
    activity += config.gc_effect * (gc - 0.5) + config.polyat_effect * tracts
    lo_expr, hi_expr = config.expression_range
    return lo_expr + (hi_expr - lo_expr) / (1.0 + np.exp(-activity))
