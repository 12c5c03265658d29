"""Peer models, re-implemented in PyTorch from their public descriptions (``shared/docs/baselines.md``).

Each is a plain ``nn.Module`` with ``.config`` (its own :class:`~crmnet.models.blocks.ModelConfig`,
holding its input encoding) and ``.encoding``; ``forward(x: (B, C, L)) -> (B,)``. The Keras-born models
(Vaishnav's two, DeepSEA, DanQ, DeepATT) start from Keras default initialisation; their training loss
(MSE, as their authors used) is chosen by :mod:`crmnet.training.losses`. LegNet is a soft classifier
with its own KL loss, ``compute_loss(x, y) -> (loss, prediction)``.

Parameter counts (defaults, PyTorch; 110-nt input, LegNet 150): vaishnav-transformer 1,295,569 (+1,280
BN statistics) · vaishnav-cnn 7,665,921 · deepsea 6,590,369 · danq 5,230,971 · deepatt 84,401 · legnet
1,725,122 (+11,136 BN statistics); PyTorch LSTMs carry two bias vectors where Keras has one (printed by
``crmnet models``). Details the descriptions leave open, and what was chosen, are in each docstring.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.data.encoding import revcomp_onehot
from crmnet.models.blocks import ModelConfig, MultiHeadSelfAttention, SameConv1d, SqueezeExcite, keras_init

# LegNet's 150-nt input: 57 nt of upstream plasmid replace the 17-nt left adapter of a 110-nt
# sequence. The plasmid is PLASMID in autosome-ru/LegNet legnet/train.py (preprocess_data takes
# PLASMID[INSERT_START - 150 : INSERT_START] before the N80 insert, appends seq[17:], keeps the last
# 150 nt). Its last 17 nt are the adapter itself, so the construct is these 40 nt + the whole 110-nt
# sequence.
LEGNET_PREFIX = "AGTGCTAGCAGGAATGATGCAAAAGGTTCCCGATTCGAAC"


@dataclass
class PeerConfig(ModelConfig):
    """Vaishnav's input convention (keep the last 110 nt, pad left with N = all zeros, channels ACGT)."""

    length: int = 110
    pad: str = "start"
    truncate: str = "start"
    channels: str = "ACGT"


def dense_stack(n_in: int, units: tuple[int, ...], dropout: tuple[float, ...] | None = None) -> nn.Sequential:
    """Flattened features (B, n_in) → (B, 1): Dense + ReLU (+ dropout) per entry of ``units``, then Dense(1)."""
    layers: list[nn.Module] = []
    for i, u in enumerate(units):
        layers += [nn.Linear(n_in, u), nn.ReLU()]
        if dropout is not None:
            layers.append(nn.Dropout(dropout[i]))
        n_in = u
    layers.append(nn.Linear(n_in, 1))
    return nn.Sequential(*layers)


def flatten_channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, L) → (B, L · C) in Keras' order (index = position · C + channel)."""
    return x.transpose(1, 2).flatten(1)


# --- Vaishnav et al. 2022 transformer ----------------------------------------------------------------


@dataclass
class VaishnavTransformerConfig(PeerConfig):
    """motif_filters/motif_width: the strand-shared motif scan; coop_filters/coop_width: the 2-D
    "cooperativity" conv over the two strands and the conv after it; heads × head_dim attention on
    coop_filters features with ff_dim feed-forward; transformer_layers blocks; lstm_units per direction;
    dense_units of the head; dropout after attention, feed-forward and the LSTM."""

    motif_filters: int = 256
    motif_width: int = 30
    coop_filters: int = 64
    coop_width: int = 30
    transformer_layers: int = 2
    heads: int = 8
    head_dim: int = 8
    ff_dim: int = 8
    lstm_units: int = 8
    dense_units: tuple[int, ...] = (64, 64)
    dropout: float = 0.05


class VaishnavTransformerBlock(nn.Module):
    """Post-norm block with ReLU on q/k/v, as in Vaishnav's Keras code; x: (B, T, E) → (B, T, E)."""

    def __init__(self, cfg: VaishnavTransformerConfig):
        super().__init__()
        e = cfg.coop_filters
        self.attn = MultiHeadSelfAttention(e, cfg.heads, cfg.head_dim, qkv_activation=nn.ReLU)
        self.drop1 = nn.Dropout(cfg.dropout)
        self.ln1 = nn.LayerNorm(e, eps=1e-6)
        self.ff = nn.Sequential(nn.Linear(e, cfg.ff_dim), nn.ReLU(), nn.Linear(cfg.ff_dim, e))
        self.drop2 = nn.Dropout(cfg.dropout)
        self.ln2 = nn.LayerNorm(e, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.drop1(self.attn(x)))
        return self.ln2(x + self.drop2(self.ff(x)))


class VaishnavTransformer(nn.Module):
    """Vaishnav et al. 2022 "tpu model"; x: (B, 4, 110) ACGT one-hot (N = zeros) → (B,).

    Choices where the description is silent: the reverse-strand motif map is *not* flipped back before
    the two maps are stacked (as the description reads, and as their CNN does); Keras 'same' padding for
    even widths (14 before, 15 after for width 30); q/k/v/out projections and the feed-forward layers
    have biases; LayerNorm eps 1e-6 (Keras default); the head flattens channels-last as Keras does.
    Targets: the authors standardised them (complex mean 9.359, sd 3.704); that is the trainer's
    choice here, the model predicts whatever scale it is trained on.
    """

    def __init__(self, config: VaishnavTransformerConfig | None = None):
        super().__init__()
        cfg = config if config is not None else VaishnavTransformerConfig()
        self.config, self.encoding = cfg, cfg.encoding
        c = cfg.encoding.n_channels
        self.motif = SameConv1d(c, cfg.motif_filters, cfg.motif_width, bias=False)
        self.bn_fwd = nn.BatchNorm1d(cfg.motif_filters, eps=1e-3, momentum=0.01)
        self.bn_rev = nn.BatchNorm1d(cfg.motif_filters, eps=1e-3, momentum=0.01)
        self.coop = nn.Conv2d(cfg.motif_filters, cfg.coop_filters, (2, cfg.coop_width), bias=False)
        self.bn_coop = nn.BatchNorm1d(cfg.coop_filters, eps=1e-3, momentum=0.01)
        self.conv = SameConv1d(cfg.coop_filters, cfg.coop_filters, cfg.coop_width, bias=False)
        self.bn_conv = nn.BatchNorm1d(cfg.coop_filters, eps=1e-3, momentum=0.01)
        self.transformer = nn.Sequential(
            *(VaishnavTransformerBlock(cfg) for _ in range(cfg.transformer_layers))
        )
        self.lstm = nn.LSTM(cfg.coop_filters, cfg.lstm_units, batch_first=True, bidirectional=True)
        self.lstm_drop = nn.Dropout(cfg.dropout)
        self.head = dense_stack(cfg.length * 2 * cfg.lstm_units, cfg.dense_units)
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fwd = F.relu(self.bn_fwd(self.motif(x)))
        rev = F.relu(self.bn_rev(self.motif(revcomp_onehot(x, self.encoding))))
        img = torch.stack([fwd, rev], dim=2)  # (B, F, 2, L): the strands as the image's two rows
        w = self.config.coop_width - 1
        img = F.pad(img, (w // 2, w - w // 2))
        h = F.relu(self.bn_coop(self.coop(img).squeeze(2)))
        h = F.relu(self.bn_conv(self.conv(h)))
        h = self.transformer(h.transpose(1, 2))
        h, _ = self.lstm(h)
        return self.head(self.lstm_drop(h).flatten(1)).squeeze(-1)


# --- Vaishnav et al. 2022 CNN ------------------------------------------------------------------------


@dataclass
class VaishnavCNNConfig(PeerConfig):
    """filters/width of the per-strand first conv; pointwise_filters of the following 1×1 convs;
    dense_units with dense_dropout after each."""

    filters: int = 256
    width: int = 30
    pointwise_filters: int = 256
    dense_units: tuple[int, ...] = (256, 256)
    dense_dropout: float = 0.2


class VaishnavCNN(nn.Module):
    """Vaishnav et al. 2022 "gpu model" as a strand-aware CNN; x: (B, 4, 110) → (B,).

    Each strand (the sequence, and its reverse complement computed here) has its own conv (width 30,
    ReLU) and pointwise conv (their 30×1 kernel along a height-1 axis is a 1×1 conv); the strands'
    channels are concatenated without flipping the reverse strand back, then two pointwise convs and the
    dense head. Keras 'same' padding is assumed for the first conv. Their loss added 1e-4 · Σ mean|W|
    (L1 on kernels); here that is left to the optimiser's weight decay.
    """

    def __init__(self, config: VaishnavCNNConfig | None = None):
        super().__init__()
        cfg = config if config is not None else VaishnavCNNConfig()
        self.config, self.encoding = cfg, cfg.encoding
        c, f, p = cfg.encoding.n_channels, cfg.filters, cfg.pointwise_filters
        self.fwd = nn.Sequential(SameConv1d(c, f, cfg.width), nn.ReLU(), nn.Conv1d(f, f, 1), nn.ReLU())
        self.rev = nn.Sequential(SameConv1d(c, f, cfg.width), nn.ReLU(), nn.Conv1d(f, f, 1), nn.ReLU())
        self.merge = nn.Sequential(nn.Conv1d(2 * f, p, 1), nn.ReLU(), nn.Conv1d(p, p, 1), nn.ReLU())
        self.head = dense_stack(cfg.length * p, cfg.dense_units, (cfg.dense_dropout,) * len(cfg.dense_units))
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.fwd(x), self.rev(revcomp_onehot(x, self.encoding))], dim=1)
        return self.head(flatten_channels_last(self.merge(h))).squeeze(-1)


# --- DeepSEA / DanQ / DeepATT regression adaptations ------------------------------------------------


@dataclass
class DeepSEAConfig(PeerConfig):
    filters: tuple[int, ...] = (320, 480, 960)
    width: int = 8
    pool: int = 2
    dropout: tuple[float, ...] = (0.2, 0.2, 0.5)
    dense_units: tuple[int, ...] = (64, 64)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.dropout) != len(self.filters):
            raise ValueError("DeepSEAConfig: one dropout rate per conv layer is needed")


class DeepSEA(nn.Module):
    """DeepSEA adapted to regression; x: (B, 4, 110) → (B,).

    Conv (ReLU) → max-pool → dropout twice, conv → dropout, flatten, Dense 64 → Dense 64 → Dense 1.
    DeepSEA's valid width-8 convolutions with pool 4 do not fit 110 nt (the third conv would see 4
    positions), so the convolutions use 'same' padding and pool 2 (110 → 55 → 27): 6.59 M parameters,
    close to the ≈7 M reported. The two hidden Dense layers use ReLU.
    """

    def __init__(self, config: DeepSEAConfig | None = None):
        super().__init__()
        cfg = config if config is not None else DeepSEAConfig()
        self.config, self.encoding = cfg, cfg.encoding
        layers: list[nn.Module] = []
        cin, length = cfg.encoding.n_channels, cfg.length
        for i, (f, p) in enumerate(zip(cfg.filters, cfg.dropout)):
            layers += [SameConv1d(cin, f, cfg.width), nn.ReLU()]
            if i < len(cfg.filters) - 1:
                layers.append(nn.MaxPool1d(cfg.pool))
                length //= cfg.pool
            layers.append(nn.Dropout(p))
            cin = f
        self.features = nn.Sequential(*layers)
        self.head = dense_stack(length * cin, cfg.dense_units)
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(flatten_channels_last(self.features(x))).squeeze(-1)


@dataclass
class DanQConfig(PeerConfig):
    filters: int = 320
    width: int = 26
    pool: int = 13
    lstm_units: int = 320
    conv_dropout: float = 0.2
    lstm_dropout: float = 0.5
    dense_units: int = 925


class DanQ(nn.Module):
    """DanQ adapted to regression; x: (B, 4, 110) → (B,).

    Conv 320 (width 26, valid, ReLU) → max-pool 13 (110 → 85 → 6 steps) → dropout 0.2 → Bi-LSTM 320
    per direction → dropout 0.5 → flatten → Dense 925 ReLU → Dense 1.
    """

    def __init__(self, config: DanQConfig | None = None):
        super().__init__()
        cfg = config if config is not None else DanQConfig()
        self.config, self.encoding = cfg, cfg.encoding
        self.conv = nn.Conv1d(cfg.encoding.n_channels, cfg.filters, cfg.width)
        self.pool = nn.MaxPool1d(cfg.pool)
        self.conv_drop = nn.Dropout(cfg.conv_dropout)
        self.lstm = nn.LSTM(cfg.filters, cfg.lstm_units, batch_first=True, bidirectional=True)
        self.lstm_drop = nn.Dropout(cfg.lstm_dropout)
        steps = (cfg.length - cfg.width + 1) // cfg.pool
        if steps < 1:
            raise ValueError(
                f"DanQConfig: length {cfg.length} is too short for width {cfg.width} and pool {cfg.pool}"
            )
        self.head = dense_stack(steps * 2 * cfg.lstm_units, (cfg.dense_units,))
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_drop(self.pool(F.relu(self.conv(x))))
        h, _ = self.lstm(h.transpose(1, 2))
        return self.head(self.lstm_drop(h).flatten(1)).squeeze(-1)


@dataclass
class DeepATTConfig(PeerConfig):
    filters: int = 256
    width: int = 30
    pool: int = 3
    lstm_units: int = 16
    heads: int = 16
    dropout: float = 0.2
    dense_units: tuple[int, ...] = (16, 16)


class DeepATT(nn.Module):
    """DeepATT adapted to regression; x: (B, 4, 110) → (B,).

    Conv 256 (width 30, valid, ReLU) → max-pool 3 (110 → 81 → 27) → dropout → Bi-LSTM 16 per
    direction → self-attention with 16 heads over the 32-d LSTM output (head size 2, so the projections
    stay 32 wide: this reproduces the ≈84 k parameters) → dropout → flatten → Dense 16 ReLU → Dense 16
    ReLU → Dense 1. DeepATT's original category queries are replaced by self-attention, as in the
    regression adaptation's description.
    """

    def __init__(self, config: DeepATTConfig | None = None):
        super().__init__()
        cfg = config if config is not None else DeepATTConfig()
        self.config, self.encoding = cfg, cfg.encoding
        width = 2 * cfg.lstm_units
        if width % cfg.heads:
            raise ValueError(f"DeepATTConfig: heads {cfg.heads} must divide the LSTM width {width}")
        self.conv = nn.Conv1d(cfg.encoding.n_channels, cfg.filters, cfg.width)
        self.pool = nn.MaxPool1d(cfg.pool)
        self.conv_drop = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(cfg.filters, cfg.lstm_units, batch_first=True, bidirectional=True)
        self.attn = MultiHeadSelfAttention(width, cfg.heads, width // cfg.heads)
        self.attn_drop = nn.Dropout(cfg.dropout)
        steps = (cfg.length - cfg.width + 1) // cfg.pool
        if steps < 1:
            raise ValueError(
                f"DeepATTConfig: length {cfg.length} is too short for width {cfg.width} and pool {cfg.pool}"
            )
        self.head = dense_stack(steps * width, cfg.dense_units)
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_drop(self.pool(F.relu(self.conv(x))))
        h, _ = self.lstm(h.transpose(1, 2))
        return self.head(self.attn_drop(self.attn(h)).flatten(1)).squeeze(-1)


# --- LegNet (Penzar et al. 2023) ---------------------------------------------------------------------


@dataclass
class LegNetConfig(ModelConfig):
    """LegNet on Vaishnav data: 150 nt = the 40-nt plasmid ``prefix`` + the last 110 nt of the sequence.

    block_sizes: stem width then each block's output width; kernel_size of stem/grouped/resize convs;
    expand: width multiplier inside a block; filters_per_group of the grouped conv; se_reduction of the
    squeeze-excitation (bottleneck = block input width / se_reduction); bins: expression bins (0..bins-1);
    bin_sd: sd of the Normal(y + 0.5, bin_sd) target distribution; singleton_channel: add the
    "integer label" input channel; rc_augment: train on a random strand per sample (see LegNet);
    bn_momentum: PyTorch BatchNorm momentum.
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
    bins: int = 18
    bin_sd: float = 0.5
    singleton_channel: bool = True
    rc_augment: bool = True
    bn_momentum: float = 0.1


def conv_bn_silu(cin: int, cout: int, kernel: int, momentum: float, groups: int = 1) -> nn.Sequential:
    """Conv ('same', no bias) → BN → SiLU; x: (B, cin, L) → (B, cout, L)."""
    return nn.Sequential(
        SameConv1d(cin, cout, kernel, bias=False, groups=groups),
        nn.BatchNorm1d(cout, momentum=momentum),
        nn.SiLU(),
    )


class LegNetBlock(nn.Module):
    """EfficientNetV2-like block; x: (B, C_in, L) → (B, C_out, L).

    expand 1×1 (C_in → C_out·e) → grouped conv → SE → 1×1 back to C_in; concat with x (2·C_in) → conv
    to C_out. Every conv is followed by BN + SiLU.
    """

    def __init__(self, cfg: LegNetConfig, cin: int, cout: int):
        super().__init__()
        wide = cout * cfg.expand
        m = cfg.bn_momentum
        self.inverted = nn.Sequential(
            conv_bn_silu(cin, wide, 1, m),
            conv_bn_silu(wide, wide, cfg.kernel_size, m, groups=wide // cfg.filters_per_group),
            SqueezeExcite(wide, cin // cfg.se_reduction, activation=nn.SiLU),
            conv_bn_silu(wide, cin, 1, m),
        )
        self.resize = conv_bn_silu(2 * cin, cout, cfg.kernel_size, m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resize(torch.cat([x, self.inverted(x)], dim=1))


class LegNet(nn.Module):
    """LegNet (Penzar et al. 2023, autosome-ru/LegNet ``legnet/model.py``) on 150-nt inputs.

    x: (B, 4, 150) one-hot ACGT (N = 0.25 each, the 40-nt plasmid prefix included) → (B,) expected
    bin. The reverse-complement flag and singleton channels are appended here, so the input stays the
    4-channel one-hot. Training mode: the forward strand. Eval mode: the mean of the forward-strand
    prediction and the reverse-complement one (flag 1), LegNet's test-time averaging; the singleton
    channel is 0 at prediction time, as in LegNet's test code.

    Choices: the SE layer is the plain one of the DREAM variant (LegNet's original adds a low-rank
    bilinear term through tensorly-torch); 1,725,122 parameters against the ≈1.9 M reported.
    Reverse-complement augmentation lives in :meth:`compute_loss` (``rc_augment``): each training
    sample is shown on a random strand, with the flag set, which in expectation is LegNet's dataset of
    both strands at the cost of one pass. PyTorch default initialisation, as the original.
    """

    def __init__(self, config: LegNetConfig | None = None):
        super().__init__()
        cfg = config if config is not None else LegNetConfig()
        self.config, self.encoding = cfg, cfg.encoding
        sizes = cfg.block_sizes
        extra = 2 if cfg.singleton_channel else 1
        self.stem = conv_bn_silu(cfg.encoding.n_channels + extra, sizes[0], cfg.kernel_size, cfg.bn_momentum)
        self.blocks = nn.Sequential(*(LegNetBlock(cfg, a, b) for a, b in itertools.pairwise(sizes)))
        self.mapper = nn.Sequential(nn.Conv1d(sizes[-1], cfg.bins, 1), nn.SiLU())
        self.register_buffer("bin_values", torch.arange(cfg.bins, dtype=torch.float32), persistent=False)
        edges = torch.arange(1, cfg.bins, dtype=torch.float32)  # bins (-inf, 1], (1, 2], ..., (bins-1, inf)
        self.register_buffer("bin_edges", edges, persistent=False)

    def logits(
        self, x: torch.Tensor, reverse: torch.Tensor | float = 0.0, singleton: torch.Tensor | float = 0.0
    ) -> torch.Tensor:
        """x: (B, 4, L) one-hot; reverse, singleton: (B,) flags or scalars → (B, bins) logits."""
        b, _, length = x.shape

        def channel(v):  # (B,) or scalar → (B, 1, L)
            return torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(-1, 1, 1).expand(b, 1, length)

        parts = [x, channel(reverse)]
        if self.config.singleton_channel:
            parts.append(channel(singleton))
        h = self.blocks(self.stem(torch.cat(parts, dim=1)))
        return self.mapper(h).mean(dim=-1)

    def expected_bin(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, bins) → (B,) Σ p_k · k."""
        return logits.softmax(dim=-1) @ self.bin_values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pred = self.expected_bin(self.logits(x))
        if self.training:
            return pred
        return 0.5 * (pred + self.expected_bin(self.logits(revcomp_onehot(x, self.encoding), reverse=1.0)))

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
