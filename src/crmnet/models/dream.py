"""The DREAM 2022 community models of Rafi et al. (2025): DREAM-CNN, DREAM-RNN and DREAM-Attn.

The organisers' Prix Fixe framework (de-Boer-Lab/random-promoter-dream-challenge-2022, ``prixfixe/``) splits
each top solution into a first-layers block, a core block and a final-layers block and recombines them; the
three DREAM-optimised networks are (``DREAMNets_BuildModel_Train_and_Predict.ipynb``):

* **DREAM-CNN** — BHI's first block (two convolutions, kernels 9 and 15, 160 channels each, ReLU, dropout
  0.2, concatenated: 320) → autosome.org's core (LegNet's EfficientNetV2-style blocks 128-128-64-64-64-64
  with a plain squeeze-excitation) → autosome.org's final block.
* **DREAM-RNN** — BHI's first block → BHI's core (a bidirectional LSTM, 320 units each way, then the same
  two-kernel convolution pair on its 640 outputs, dropout 0.2 and 0.5) → autosome.org's final block.
* **DREAM-Attn** — autosome.org's first block (conv 7 → 256, BatchNorm, SiLU) → Unlock_DNA's core (a learned
  position embedding, then 4 conformer layers: half-step SwiGLU feed-forward, depthwise conv 15 + pointwise
  conv + ReLU on the layer-normalised input, layer norm, 4-head self-attention, half-step SwiGLU; the
  notebook's ``num_heads=8`` is ignored by the layer, which builds 4 heads) → autosome.org's final block.

The final block is a 1×1 convolution to 18 bins, averaged over positions; the prediction is the softmax
expectation over bins 0..17. Input and training are autosome.org's (:class:`~crmnet.models.legnet.SoftBinModel`):
the 150 nt of plasmid-prefixed sequence (test.py's encoding, channels A,G,C,T, N = 0.25), a reverse-complement
flag channel and a singleton channel (1 for integer training labels), soft-classification loss
KL(N(y + 0.5, 0.5) binned ‖ predicted), random-strand augmentation, both strands averaged at prediction.
The organisers' recipe (``prixfixe/autosome/trainer.py``): AdamW (weight decay 0.01), one-cycle schedule from
max_lr/25 up to max_lr = 0.005 (0.001 for the attention core) over the first 30 % of steps, then cosine down;
batch 1024, 80 epochs of 1,000 batches; see :func:`crmnet.training.dream.dream_recipe`.

Initialisation: autosome.org's blocks (first of DREAM-Attn, core of DREAM-CNN, every final block) draw conv
weights N(0, 2 / (kernel · out_channels)), linear weights N(0, 0.001²), zero biases, BN weight 1 and bias 0
(``prixfixe/autosome/utils.py``); BHI's and Unlock_DNA's blocks keep PyTorch's defaults, as there.

Parameters (``count_parameters``, trainable): dream-cnn 1,933,970, dream-rnn 4,130,578, dream-attn 4,539,410 —
exactly the organisers' notebook's torchinfo totals for the three networks.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.models.blocks import ModelConfig, SameConv1d
from crmnet.models.legnet import LEFT_ADAPTER_LENGTH, LEGNET_PLASMID, LegNetBlock, SoftBinModel, conv_bn_silu


@dataclass
class _DreamIO(ModelConfig):
    """The autosome.org input and output every DREAM network shares (see the module docstring).

    bins: expression bins (0..bins-1); bin_sd: sd of the Normal(y + 0.5, bin_sd) target; singleton_channel:
    add the "integer label" channel; rc_augment: train on a random strand per sample.
    """

    length: int = 150
    pad: str = "start"
    truncate: str = "start"
    channels: str = "AGCT"
    unknown_fill: float = 0.25
    prefix: str = ""
    trim_start: int = LEFT_ADAPTER_LENGTH
    flank: str = LEGNET_PLASMID
    bins: int = 18
    bin_sd: float = 0.5
    singleton_channel: bool = True
    rc_augment: bool = True


@dataclass
class _BHIFirst:
    """first_channels: total output of BHI's first block, split evenly over first_kernels; first_dropout."""

    first_channels: int = 320
    first_kernels: tuple[int, ...] = (9, 15)
    first_dropout: float = 0.2


@dataclass
class DreamCNNConfig(_DreamIO, _BHIFirst):
    """DREAM-CNN.

    core_sizes: the autosome core's block output widths (its input is first_channels); kernel_size,
    expand, filters_per_group, se_reduction, bn_momentum: as LegNet's blocks.
    """

    core_sizes: tuple[int, ...] = (128, 128, 64, 64, 64, 64)
    kernel_size: int = 7
    expand: int = 4
    filters_per_group: int = 2
    se_reduction: int = 4
    bn_momentum: float = 0.1

    @property
    def se_bilinear_rank(self) -> float:
        """The autosome core's squeeze-excitation is the plain one (LegNetBlock reads this)."""
        return 0.0


@dataclass
class DreamRNNConfig(_DreamIO, _BHIFirst):
    """DREAM-RNN.

    lstm_units: each direction of the BiLSTM; core_channels: the output of the core's convolution pair
    (split over first_kernels); core_dropout: after those convolutions; out_dropout: last.
    """

    lstm_units: int = 320
    core_channels: int = 320
    core_dropout: float = 0.2
    out_dropout: float = 0.5


@dataclass
class DreamAttnConfig(_DreamIO):
    """DREAM-Attn.

    channels_attn: width of the first block and the conformer; first_kernel; bn_momentum of the first
    block; layers, heads, conv_kernel (depthwise), ff_mult (SwiGLU expansion), dropout.
    """

    channels_attn: int = 256
    first_kernel: int = 7
    bn_momentum: float = 0.1
    layers: int = 4
    heads: int = 4
    conv_kernel: int = 15
    ff_mult: int = 4
    dropout: float = 0.1


def autosome_init(module: nn.Module) -> None:
    """autosome.org's initialisation (``prixfixe/autosome/utils.py``), applied to every submodule."""
    for m in module.modules():
        if isinstance(m, nn.Conv1d):
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.out_channels)))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class MultiKernelConv(nn.Module):
    """BHI's convolution pair: one 'same' conv + ReLU + dropout per kernel, outputs concatenated.

    x (B, C_in, L) → (B, out_channels, L); out_channels is split evenly over the kernels.
    """

    def __init__(self, cin: int, out_channels: int, kernels: tuple[int, ...], dropout: float):
        super().__init__()
        if out_channels % len(kernels):
            raise ValueError(f"{out_channels} channels cannot be split over {len(kernels)} kernels")
        each = out_channels // len(kernels)
        self.convs = nn.ModuleList(SameConv1d(cin, each, k) for k in kernels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C_in, L) → (B, out_channels, L)."""
        return torch.cat([self.dropout(F.relu(conv(x))) for conv in self.convs], dim=1)


def _final(cin: int, bins: int) -> nn.Sequential:
    """autosome.org's final block before pooling: a 1×1 conv to the bins (no activation)."""
    mapper = nn.Sequential(nn.Conv1d(cin, bins, 1))
    autosome_init(mapper)
    return mapper


def _n_inputs(cfg: _DreamIO) -> int:
    return cfg.encoding.n_channels + (2 if cfg.singleton_channel else 1)


class DreamCNN(SoftBinModel):
    """DREAM-CNN (module docstring); x (B, 4, 150) → (B,) expected bin."""

    def __init__(self, config: DreamCNNConfig | None = None):
        super().__init__()
        cfg = config if config is not None else DreamCNNConfig()
        self.config, self.encoding = cfg, cfg.encoding
        self.first = MultiKernelConv(_n_inputs(cfg), cfg.first_channels, cfg.first_kernels, cfg.first_dropout)
        sizes = (cfg.first_channels, *cfg.core_sizes)
        self.core = nn.Sequential(*(LegNetBlock(cfg, a, b) for a, b in itertools.pairwise(sizes)))
        autosome_init(self.core)
        self.mapper = _final(sizes[-1], cfg.bins)
        self._register_bins(cfg.bins)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 6, L) → (B, core_sizes[-1], L)."""
        return self.core(self.first(x))


class DreamRNN(SoftBinModel):
    """DREAM-RNN (module docstring); x (B, 4, 150) → (B,) expected bin."""

    def __init__(self, config: DreamRNNConfig | None = None):
        super().__init__()
        cfg = config if config is not None else DreamRNNConfig()
        self.config, self.encoding = cfg, cfg.encoding
        self.first = MultiKernelConv(_n_inputs(cfg), cfg.first_channels, cfg.first_kernels, cfg.first_dropout)
        self.lstm = nn.LSTM(cfg.first_channels, cfg.lstm_units, batch_first=True, bidirectional=True)
        self.core = MultiKernelConv(2 * cfg.lstm_units, cfg.core_channels, cfg.first_kernels, cfg.core_dropout)
        self.out_dropout = nn.Dropout(cfg.out_dropout)
        self.mapper = _final(cfg.core_channels, cfg.bins)
        self._register_bins(cfg.bins)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 6, L) → (B, core_channels, L)."""
        h, _ = self.lstm(self.first(x).transpose(1, 2))
        return self.out_dropout(self.core(h.transpose(1, 2)))


class SwiGLUFeedForward(nn.Module):
    """Unlock_DNA's feed-forward on channels-first x (B, C, L) → (B, C, L).

    LayerNorm → Linear C → mult·C (no bias) → SwiGLU (first half · SiLU(second half)) → dropout →
    Linear mult·C/2 → C (no bias) → dropout.
    """

    def __init__(self, channels: int, mult: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.up = nn.Linear(channels, channels * mult, bias=False)
        self.down = nn.Linear(channels * mult // 2, channels, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C, L) → (B, C, L)."""
        out, gate = self.up(self.norm(x.transpose(1, 2))).chunk(2, dim=-1)
        return self.dropout(self.down(self.dropout(out * F.silu(gate)))).transpose(1, 2)


class ConformerLayer(nn.Module):
    """Unlock_DNA's conformer layer on x (B, C, L), in its order.

    x += ½ ff1(x); n = LN(x); x += n + conv(n) (depthwise k, pointwise with bias, ReLU, dropout);
    x = LN(x); x += attention(x); x += ½ ff2(x).
    """

    def __init__(self, cfg: DreamAttnConfig):
        super().__init__()
        c = cfg.channels_attn
        self.ff1 = SwiGLUFeedForward(c, cfg.ff_mult, cfg.dropout)
        self.norm1 = nn.LayerNorm(c, eps=1e-6)
        self.conv = nn.Sequential(SameConv1d(c, c, cfg.conv_kernel, bias=False, groups=c), nn.Conv1d(c, c, 1),
                                  nn.ReLU(), nn.Dropout(cfg.dropout))
        self.norm2 = nn.LayerNorm(c, eps=1e-6)
        self.attention = nn.MultiheadAttention(c, cfg.heads, batch_first=True)
        self.ff2 = SwiGLUFeedForward(c, cfg.ff_mult, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C, L) → (B, C, L)."""
        x = x + 0.5 * self.ff1(x)
        n = self.norm1(x.transpose(1, 2)).transpose(1, 2)
        x = x + n + self.conv(n)
        t = self.norm2(x.transpose(1, 2))
        t = t + self.attention(t, t, t, need_weights=False)[0]
        x = t.transpose(1, 2)
        return x + 0.5 * self.ff2(x)


class DreamAttn(SoftBinModel):
    """DREAM-Attn (module docstring); x (B, 4, 150) → (B,) expected bin."""

    def __init__(self, config: DreamAttnConfig | None = None):
        super().__init__()
        cfg = config if config is not None else DreamAttnConfig()
        self.config, self.encoding = cfg, cfg.encoding
        c = cfg.channels_attn
        self.first = conv_bn_silu(_n_inputs(cfg), c, cfg.first_kernel, cfg.bn_momentum)
        autosome_init(self.first)
        self.position = nn.Embedding(cfg.length, c)
        self.layers = nn.Sequential(*(ConformerLayer(cfg) for _ in range(cfg.layers)))
        self.mapper = _final(c, cfg.bins)
        self._register_bins(cfg.bins)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 6, L) → (B, channels_attn, L)."""
        h = self.first(x) + self.position.weight.T.unsqueeze(0)
        return self.layers(h)
