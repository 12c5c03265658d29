"""Peer models, re-implemented in PyTorch from their papers and public code.

Each is a plain ``nn.Module`` with ``.config`` (its own :class:`~crmnet.models.blocks.ModelConfig`,
holding its input encoding) and ``.encoding``; ``forward(x: (B, C, L)) -> (B,)``. The Keras-born models
(Vaishnav's two, DeepSEA, DanQ, DeepATT) start from Keras default initialisation; their training loss
(MSE, as their authors used) is chosen by :mod:`crmnet.training.losses`. LegNet, a soft classifier with
its own KL loss (``compute_loss(x, y) -> (loss, prediction)``), is in :mod:`crmnet.models.legnet`
(re-exported here).

Parameter counts (defaults, PyTorch; 110-nt input, LegNet 150): vaishnav-transformer 1,295,569 (+1,280
BN statistics) · vaishnav-cnn 7,665,921 · deepsea 6,590,369 · danq 5,230,971 · deepatt 84,401 · legnet
1,725,122 (+11,136 BN statistics) · legnet-released 1,852,846 (+11,136); PyTorch LSTMs carry two bias
vectors where Keras has one (printed by ``crmnet models``). Details the descriptions leave open, and what was chosen, are in each docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.data.encoding import revcomp_onehot
from crmnet.models.blocks import ModelConfig, MultiHeadSelfAttention, SameConv1d, keras_init
from crmnet.models.legnet import LEGNET_PREFIX, LegNet, LegNetConfig  # noqa: F401 - LegNet is a peer too


@dataclass
class PeerConfig(ModelConfig):
    """Vaishnav's input convention (keep the last 110 nt, pad left with N = all zeros, channels ACGT).

    The Keras-born peers train with MSE by default, as their authors did (``default_loss``).
    """

    default_loss = "mse"  # a class attribute, not a config field
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
    """motif_filters/motif_width: the strand-shared motif scan.

    coop_filters/coop_width: the 2-D "cooperativity" conv over the two strands and the conv after it; heads ×
    head_dim attention on coop_filters features with ff_dim feed-forward; transformer_layers blocks;
    lstm_units per direction; dense_units of the head; dropout after attention, feed-forward and the LSTM.
    """

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
        """Map x (B, T, E) → (B, T, E)."""
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
        """Map x (B, 4, 110) one-hot → (B,) predictions."""
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
    """filters/width of the per-strand first conv.

    pointwise_filters of the following 1×1 convs; dense_units with dense_dropout after each.
    """

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
        """Map x (B, 4, 110) one-hot → (B,) predictions."""
        h = torch.cat([self.fwd(x), self.rev(revcomp_onehot(x, self.encoding))], dim=1)
        return self.head(flatten_channels_last(self.merge(h))).squeeze(-1)


# --- DeepSEA / DanQ / DeepATT regression adaptations ------------------------------------------------


@dataclass
class DeepSEAConfig(PeerConfig):
    """Hyper-parameters of :class:`DeepSEA`.

    ``filters``: output channels of each conv layer ('same' padding, width ``width``), ``pool``: the
    max-pool after the first two, ``dropout``: one rate per conv layer, ``dense_units``: the hidden Dense
    layers (ReLU).
    """

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
        """Map x (B, 4, 110) one-hot → (B,) predictions."""
        return self.head(flatten_channels_last(self.features(x))).squeeze(-1)


@dataclass
class DanQConfig(PeerConfig):
    """Hyper-parameters of :class:`DanQ`.

    ``filters`` × ``width``: the valid conv, ``pool``: its max-pool, ``lstm_units``: the BiLSTM per
    direction, ``conv_dropout``/``lstm_dropout``: after the pool and after the LSTM, ``dense_units``: the
    hidden Dense layer (ReLU).
    """

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
        """Map x (B, 4, 110) one-hot → (B,) predictions."""
        h = self.conv_drop(self.pool(F.relu(self.conv(x))))
        h, _ = self.lstm(h.transpose(1, 2))
        return self.head(self.lstm_drop(h).flatten(1)).squeeze(-1)


@dataclass
class DeepATTConfig(PeerConfig):
    """Hyper-parameters of :class:`DeepATT`.

    ``filters`` × ``width``: the valid conv, ``pool``: its max-pool, ``lstm_units``: the BiLSTM per
    direction, ``heads``: self-attention heads over its 2 · lstm_units features, ``dropout``: after the pool
    and after the attention, ``dense_units``: the hidden Dense layers (ReLU).
    """

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
        """Map x (B, 4, 110) one-hot → (B,) predictions."""
        h = self.conv_drop(self.pool(F.relu(self.conv(x))))
        h, _ = self.lstm(h.transpose(1, 2))
        return self.head(self.attn_drop(self.attn(h)).flatten(1)).squeeze(-1)
