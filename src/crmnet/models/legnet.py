"""LegNet (Penzar et al. 2023, autosome-ru/LegNet ``legnet/model.py``): one module, two presets.

* ``legnet`` — the trainable peer: LegNet's network with the plain squeeze-excitation of its DREAM
  variant, on the 40-nt plasmid prefix + the last 110 nt of the sequence (A,C,G,T channels).
* ``legnet-released`` — the architecture of the authors' released Vaishnav-data models
  (``models/complex/model_300.pth``, ``models/defined/model_150.pth``), exactly: ``SeqNN(seqsize=150,
  use_single_channel=True, block_sizes=[256, 128, 128, 64, 64, 64, 64], ks=7, resize_factor=4,
  se_reduction=4, final_ch=18)``, whose squeeze-excitation adds a low-rank bilinear (CP) term, and the
  input exactly as their ``test.py`` builds it. :func:`crmnet.zoo.legnet.import_file` loads their weights.

The released encoding (``test.py``): a sequence's first 17 characters (the left adapter's position,
whatever they hold) are dropped, the rest is appended to the 150 nt of plasmid before the insert and the
last 150 nt are kept, so a shorter sequence sees more plasmid and a longer one is cut on the left;
channels A, G, C, T; N = 0.25 in each; then a constant reverse flag channel and the "singleton" channel.
Predictions average the forward strand (flag 0) and the reverse complement of the 150-nt input (flag 1).
The singleton channel is 1 for training labels that are integers (low-count measurements). ``test.py``
sets it from the input file's second (measured expression) column: 1 where that value is an integer.
crmnet predicts for sequences without a measurement, so it is 0 — what ``test.py`` uses for every
non-integer measured value, i.e. for the rows of the Vaishnav test sets it was run on.

Parameters (``count_parameters``): legnet 1,725,122 + 11,136 BN statistics; legnet-released 1,852,846
+ 11,136 (the authors' state_dict also holds the 18 bin values and 25 BN counters: 11,179 buffer elements).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.data.encoding import revcomp_onehot
from crmnet.models.blocks import ModelConfig, SameConv1d, SqueezeExcite

# PLASMID[INSERT_START - 150 : INSERT_START] of legnet/train.py: the 150 nt of plasmid before the N80
# insert. Its last 17 nt are the left adapter (TGCATTTTTTTCACATC) that Vaishnav sequences start with.
LEGNET_PLASMID = (
    "AGTCCACTATTAAAGAACGTGGACTCCAACGTCAAAGGGCGAAAAACCGTCTATCAGGGCGATGGCCCACTACGTGAACCATCACCCTAATCAAGT"
    "GCTAGCAGGAATGATGCAAAAGGTTCCCGATTCGAACTGCATTTTTTTCACATC"
)
LEFT_ADAPTER_LENGTH = 17
# The trainable preset's fixed context: for a 110-nt sequence that starts with the adapter, these 40 nt
# + the sequence are exactly the released 150-nt input.
LEGNET_PREFIX = LEGNET_PLASMID[-57:-LEFT_ADAPTER_LENGTH]

# The released models' SeqNN arguments (scripts/paper/run_{complex,defined}_base_model_*.sh, defaults of
# legnet/model.py), in the authors' names.
RELEASED_HPARAMS: dict[str, Any] = {
    "seqsize": 150,
    "use_single_channel": True,
    "block_sizes": [256, 128, 128, 64, 64, 64, 64],
    "ks": 7,
    "resize_factor": 4,
    "se_reduction": 4.0,
    "final_ch": 18,
    "activation": "nn.SiLU",
    "filter_per_group": 2,
    "bn_momentum": 0.1,
}


@dataclass
class LegNetConfig(ModelConfig):
    """LegNet on Vaishnav data (150-nt input; see the module docstring for the two encodings).

    block_sizes: stem width then each block's output width; kernel_size of stem/grouped/resize convs;
    expand: width multiplier inside a block; filters_per_group of the grouped conv; se_reduction of the
    squeeze-excitation (bottleneck = block input width / se_reduction); se_bilinear_rank: 0 for the plain
    SE, else the CP rank, as a fraction of the full rank's parameters, of the released models' bilinear
    SE term (0.5); bins: expression bins (0..bins-1); bin_sd: sd of the Normal(y + 0.5, bin_sd) target
    distribution; singleton_channel: add the "integer label" input channel; rc_augment: train on a random
    strand per sample; bn_momentum: PyTorch BatchNorm momentum.
    """

    length: int = 150
    pad: str = "start"
    truncate: str = "start"
    channels: str = "ACGT"
    unknown_fill: float = 0.25
    prefix: str = LEGNET_PREFIX
    block_sizes: tuple[int, ...] = (256, 128, 128, 64, 64, 64, 64)
    kernel_size: int = 7
    expand: int = 4
    filters_per_group: int = 2
    se_reduction: int = 4
    se_bilinear_rank: float = 0.0
    bins: int = 18
    bin_sd: float = 0.5
    singleton_channel: bool = True
    rc_augment: bool = True
    bn_momentum: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.se_bilinear_rank <= 1.0:
            raise ValueError(f"LegNetConfig: se_bilinear_rank must be in [0, 1], not {self.se_bilinear_rank}")


def released_preset(hparams: dict[str, Any] = RELEASED_HPARAMS) -> dict[str, Any]:
    """LegNetConfig overrides for a ``SeqNN(**hparams)`` of legnet/model.py with test.py's encoding."""
    if hparams["activation"] != "nn.SiLU":
        raise ValueError(f"LegNet activation {hparams['activation']!r} is not supported (nn.SiLU only)")
    return {
        "length": hparams["seqsize"],
        "pad": "start",
        "truncate": "start",
        "channels": "AGCT",
        "unknown_fill": 0.25,
        "prefix": "",
        "trim_start": LEFT_ADAPTER_LENGTH,
        "flank": LEGNET_PLASMID[-hparams["seqsize"]:],
        "block_sizes": tuple(hparams["block_sizes"]),
        "kernel_size": hparams["ks"],
        "expand": hparams["resize_factor"],
        "filters_per_group": hparams["filter_per_group"],
        "se_reduction": int(hparams["se_reduction"]),
        "se_bilinear_rank": 0.5,
        "bins": hparams["final_ch"],
        "singleton_channel": hparams["use_single_channel"],
        "bn_momentum": hparams["bn_momentum"],
    }


def singleton_flags(measured) -> torch.Tensor:
    """(n,) measured expression → (n,) float32 flags: 1 where the value is an integer.

    LegNet's ``--singleton_definition integer``: ``float(bin).is_integer()`` of the input file's second column.
    """
    values = torch.as_tensor(measured, dtype=torch.float64)
    return (values == torch.round(values)).to(torch.float32)


def conv_bn_silu(cin: int, cout: int, kernel: int, momentum: float, groups: int = 1) -> nn.Sequential:
    """Conv ('same', no bias) → BN → SiLU; x: (B, cin, L) → (B, cout, L)."""
    return nn.Sequential(
        SameConv1d(cin, cout, kernel, bias=False, groups=groups),
        nn.BatchNorm1d(cout, momentum=momentum),
        nn.SiLU(),
    )


def cp_rank(shape: tuple[int, ...], fraction: float) -> int:
    """The CP rank whose factors hold ``fraction`` of a full tensor's parameters.

    tensorly's rule for a fractional rank: round(fraction · prod(shape) / sum(shape)), at least 1.
    """
    return max(round(fraction * math.prod(shape) / sum(shape)), 1)


class CPBilinear(nn.Module):
    """Low-rank bilinear map: x (B, n) → y (B, out), y_c = Σ_ab x_a x_b W[a, b, c] + bias_c.

    W (n, n, out) is held as a rank-R CP decomposition, W[a, b, c] = Σ_r weights_r f0[a, r] f1[b, r]
    f2[c, r] (tensorly-torch's ``TRL`` over the outer product x xᵀ, as LegNet's ``Bilinear``). The
    forward pass is tensorly's float32 operations in tensorly's order, so that the released models'
    outputs are reproduced bit for bit rather than to float32 noise (the cheaper factored form
    ((x f0) ⊙ (x f1) ⊙ weights) f2ᵀ rounds differently, by 6e-8, which the network amplifies to 1e-5):
    W is built as its mode-0 unfolding (f0 ⊙ weights) · khatri_rao(f1, f2)ᵀ, and y = vec(x xᵀ) ·
    W.reshape(n², out) + bias. R = :func:`cp_rank` of (n, n, out) at ``rank_fraction``.
    Initialisation as LegNet's: the CP tensor ``normal_(std=0.00075)`` of
    tensorly-torch (weights 1, factors N(0, (0.00075 / √R)^(1/3))); bias zero (tensorly-torch leaves it
    uninitialised).
    """

    def __init__(self, n: int, out: int, rank_fraction: float):
        super().__init__()
        rank = cp_rank((n, n, out), rank_fraction)
        sd = (0.00075 / math.sqrt(rank)) ** (1 / 3)
        self.weights = nn.Parameter(torch.ones(rank))
        self.factor_0 = nn.Parameter(torch.randn(n, rank) * sd)
        self.factor_1 = nn.Parameter(torch.randn(n, rank) * sd)
        self.factor_2 = nn.Parameter(torch.randn(out, rank) * sd)
        self.bias = nn.Parameter(torch.zeros(out))

    def weight(self) -> torch.Tensor:
        """The full CP tensor W as a (n², out) matrix, rows (a, b) in C order."""
        n, rank = self.factor_0.shape
        khatri_rao = (self.factor_1[:, None, :] * self.factor_2[None, :, :]).reshape(-1, rank)  # (n·out, R)
        return ((self.factor_0 * self.weights) @ khatri_rao.T).reshape(n * n, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, n) → (B, out): the bilinear form of x with itself, plus the bias."""
        outer = x.unsqueeze(-1) @ x.unsqueeze(-2)  # (B, n, n)
        return outer.reshape(len(x), -1) @ self.weight() + self.bias


class BilinearSqueezeExcite(nn.Module):
    """LegNet's released squeeze-excitation; x (B, C, L) → x · gate (B, C, 1).

    gate = sigmoid(fc3(SiLU([h, bilinear(h)]))) with h = fc2(SiLU(fc1(mean_L x))): fc1 C → H, fc2 H → H
    (no activation after it), the CP bilinear term H → H/2 concatenated to h, fc3 (H + H/2) → C.
    """

    def __init__(self, channels: int, hidden: int, rank_fraction: float):
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.bilinear = CPBilinear(hidden, hidden // 2, rank_fraction)
        self.fc3 = nn.Linear(hidden + hidden // 2, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C, L) → (B, C, L), each channel scaled by its gate in (0, 1)."""
        h = self.fc2(F.silu(self.fc1(x.mean(dim=-1))))
        gate = torch.sigmoid(self.fc3(F.silu(torch.cat([h, self.bilinear(h)], dim=-1))))
        return x * gate.unsqueeze(-1)


class LegNetBlock(nn.Module):
    """EfficientNetV2-like block; x: (B, C_in, L) → (B, C_out, L).

    expand 1×1 (C_in → C_out·e) → grouped conv → SE → 1×1 back to C_in; concat with x (2·C_in) → conv
    to C_out. Every conv is followed by BN + SiLU.
    """

    def __init__(self, cfg: LegNetConfig, cin: int, cout: int):
        super().__init__()
        wide = cout * cfg.expand
        m = cfg.bn_momentum
        hidden = cin // cfg.se_reduction
        if cfg.se_bilinear_rank:
            se: nn.Module = BilinearSqueezeExcite(wide, hidden, cfg.se_bilinear_rank)
        else:
            se = SqueezeExcite(wide, hidden, activation=nn.SiLU)
        self.inverted = nn.Sequential(
            conv_bn_silu(cin, wide, 1, m),
            conv_bn_silu(wide, wide, cfg.kernel_size, m, groups=wide // cfg.filters_per_group),
            se,
            conv_bn_silu(wide, cin, 1, m),
        )
        self.resize = conv_bn_silu(2 * cin, cout, cfg.kernel_size, m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C_in, L) → (B, C_out, L): the input beside its inverted-residual branch, resized."""
        return self.resize(torch.cat([x, self.inverted(x)], dim=1))


class SoftBinModel(nn.Module):
    """LegNet's input and output: x (B, 4, length) one-hot in the config's encoding → (B,) expected bin.

    Shared by every model trained the autosome.org way (LegNet, the DREAM 2022 Prix Fixe networks). A subclass builds ``features`` ((B, 5 or 6, L) → (B, C, L')) and ``mapper`` ((B, C, L') → (B, bins, L'))
    and calls :meth:`_register_bins`. The reverse-complement flag and singleton channels are appended
    here (:meth:`inputs`), so the input stays the 4-channel one-hot. Training mode: the forward strand.
    Eval mode: the mean of the forward-strand prediction and the reverse-complement one (flag 1),
    LegNet's test-time averaging; the singleton channel is 0 at prediction time.

    Reverse-complement augmentation lives in :meth:`compute_loss` (``rc_augment``): each training
    sample is shown on a random strand, with the flag set, which in expectation is LegNet's dataset of
    both strands at the cost of one pass. The config supplies ``bins``, ``bin_sd``, ``singleton_channel``
    and ``rc_augment``.
    """

    def _register_bins(self, bins: int) -> None:
        self.register_buffer("bin_values", torch.arange(bins, dtype=torch.float32), persistent=False)
        edges = torch.arange(1, bins, dtype=torch.float32)  # bins (-inf, 1], (1, 2], ..., (bins-1, inf)
        self.register_buffer("bin_edges", edges, persistent=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 5 or 6, L) network input → (B, C, L') features for the mapper (the subclass' network)."""
        raise NotImplementedError

    def inputs(
        self, x: torch.Tensor, reverse: torch.Tensor | float = 0.0, singleton: torch.Tensor | float = 0.0
    ) -> torch.Tensor:
        """x: (B, 4, L) one-hot; reverse, singleton: (B,) flags or scalars → (B, 5 or 6, L) network input."""
        b, _, length = x.shape

        def channel(v):  # (B,) or scalar → (B, 1, L)
            return torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(-1, 1, 1).expand(b, 1, length)

        parts = [x, channel(reverse)]
        if self.config.singleton_channel:
            parts.append(channel(singleton))
        return torch.cat(parts, dim=1)

    def logits(
        self, x: torch.Tensor, reverse: torch.Tensor | float = 0.0, singleton: torch.Tensor | float = 0.0
    ) -> torch.Tensor:
        """x: (B, 4, L) one-hot; reverse, singleton: (B,) flags or scalars → (B, bins) logits."""
        h = self.features(self.inputs(x, reverse, singleton))
        # the authors' pooling and expectation ops (not mean / a dot product): the same float32 rounding
        return F.adaptive_avg_pool1d(self.mapper(h), 1).squeeze(-1)

    def expected_bin(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, bins) → (B,) Σ p_k · k."""
        return (logits.softmax(dim=-1) * self.bin_values).sum(dim=-1)

    def strand_average(self, x: torch.Tensor, singleton: torch.Tensor | float = 0.0) -> torch.Tensor:
        """x: (B, 4, L) one-hot; singleton: (B,) flags or a scalar → (B,) test.py's prediction.

        The mean of the forward-strand expectation and the reverse complement's (flag 1), both with the
        given singleton channel (test.py: :func:`singleton_flags` of the input file's measured column).
        """
        forward = self.expected_bin(self.logits(x, singleton=singleton))
        reverse = self.expected_bin(self.logits(revcomp_onehot(x, self.encoding), reverse=1.0, singleton=singleton))
        return 0.5 * (forward + reverse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C, L) → (B,) expected bin; in eval mode averaged with the reverse complement's."""
        if self.training:
            return self.expected_bin(self.logits(x))
        return self.strand_average(x)

    def target_distribution(self, y: torch.Tensor) -> torch.Tensor:
        """(B,) expression → (B, bins): Normal(y + 0.5, bin_sd) mass in each bin."""
        normal = torch.distributions.Normal(y[:, None] + 0.5, self.config.bin_sd)
        cdf = normal.cdf(self.bin_edges[None, :])
        ones = torch.ones_like(cdf[:, :1])
        return torch.cat([cdf, ones], dim=1) - torch.cat([torch.zeros_like(ones), cdf], dim=1)

    def compute_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, 4, L), y: (B,) → (KL(target ‖ predicted) averaged over the batch, predictions (B,)).

        In training mode with ``rc_augment`` each sample is reverse-complemented with probability 1/2
        (torch's global RNG) and flagged; the singleton flag is 1 where the label is an integer.
        """
        reverse = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        if self.training and self.config.rc_augment:
            reverse = (torch.rand(len(x), device=x.device) < 0.5).to(x.dtype)
            x = torch.where(reverse[:, None, None] > 0, revcomp_onehot(x, self.encoding), x)
        singleton = (y == torch.round(y)).to(x.dtype)
        logits = self.logits(x, reverse=reverse, singleton=singleton)
        loss = F.kl_div(logits.log_softmax(dim=-1), self.target_distribution(y), reduction="batchmean")
        return loss, self.expected_bin(logits)


class LegNet(SoftBinModel):
    """LegNet (see :class:`SoftBinModel` for its input and output); PyTorch default initialisation, as the original."""

    def __init__(self, config: LegNetConfig | None = None):
        super().__init__()
        cfg = config if config is not None else LegNetConfig()
        self.config, self.encoding = cfg, cfg.encoding
        sizes = cfg.block_sizes
        extra = 2 if cfg.singleton_channel else 1
        self.stem = conv_bn_silu(cfg.encoding.n_channels + extra, sizes[0], cfg.kernel_size, cfg.bn_momentum)
        self.blocks = nn.Sequential(*(LegNetBlock(cfg, a, b) for a, b in itertools.pairwise(sizes)))
        self.mapper = nn.Sequential(nn.Conv1d(sizes[-1], cfg.bins, 1), nn.SiLU())
        self._register_bins(cfg.bins)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 5 or 6, L) network input → (B, block_sizes[-1], L): the stem and the blocks."""
        return self.blocks(self.stem(x))
