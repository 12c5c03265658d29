"""CRMnet (Ding et al. 2023) as a plain ``nn.Module`` that reproduces the authors' released Keras model.

With the default :class:`CRMnetConfig` (registry preset ``crmnet``) the module has exactly 34,165,681
trainable parameters and 4,608 batch-norm statistics (``running_mean``/``running_var`` buffers), and its
forward pass matches the authors' architecture built in Keras (tested): Keras 'same' padding for the
stride-2 and transposed convolutions, SE before batch norm, 12 attention heads of size 256, the
multiplicative position gains computed in float32, the parallel transformer pairs, channels-last
flattening before the MLP, BatchNorm eps 1e-3 / momentum 0.01 (Keras 0.99), LayerNorm eps 1e-6.

Input ``x: (B, C, L)`` one-hot in the config's channel order (preset: ``[N, A, C, G, T]``, L = 112);
output ``(B,)``.

State-dict naming (stable; the Keras importer maps onto it). ``i`` counts blocks from 0:

* ``encoder.{i}.conv1 / se1 / bn1 / conv2 / se2 / bn2`` — encoder block i+1 (the skip tensor is the
  output of ``bn2``, after dropout); ``encoder.{i}.down`` — its stride-2 convolution (absent in the last
  block). ``se*.fc1`` / ``se*.fc2`` are the squeeze and excite Dense layers.
* ``transformer.{j}.attn.q / k / v / out``, ``.ln1``, ``.ff1``, ``.ff2``, ``.ln2`` — transformer T(j+1)
  of the spec's wiring: ``x = T1(pe)``; ``x = T3(x) + T2(x)``; ... ; ``x = T8(x)``, i.e.
  ``transformer.0``, then pairs ``(1, 2)``, ``(3, 4)``, ``(5, 6)``, then ``transformer.7``. Keras layer
  ``transformer_block_k`` maps to ``transformer.k`` (Keras names the pairs' members T3, T2 in creation
  order, but the two members of a pair read the same input and are summed, so they are interchangeable).
  Verified: the authors' architecture in Keras (fixture ``small_h5``, 2 heads) mapped this way gives the
  same outputs within 2e-6.
* ``decoder.{i}.up`` (transposed conv), ``.conv1 / se1 / bn1 / conv2 / se2 / bn2``; decoder 0 works at
  the coarsest length and concatenates the skip of the second-to-last encoder block.
* ``head.{i}.conv / se`` — the three conv + SE layers without batch norm.
* ``mlp.{i}`` — the Dense layers (``mlp.0`` takes the channels-last flattening, index = pos · C + ch).

Switches: ``transformer=False`` and ``se=False`` are the paper's ablations; ``position="additive"`` is
the paper text's additive sinusoidal encoding (the released weights need ``"multiplicative"``); dropout
rates, widths and depths are config fields, so the CPU-friendly presets are the same module.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.models.blocks import (
    ModelConfig,
    MultiHeadSelfAttention,
    SameConv1d,
    SameConvTranspose1d,
    SqueezeExcite,
    keras_init,
)

POSITIONS = ("multiplicative", "additive")


@dataclass
class CRMnetConfig(ModelConfig):
    """CRMnet hyper-parameters; the defaults are the authors' released model.

    encoder_channels: filters of the encoder blocks; every block but the last halves the length, so
        ``length`` must be divisible by 2**(len - 1); the last one's width is the transformer width.
    kernel_size: width of every convolution (plain and transposed).
    se / se_ratio: squeeze-excitation on/off (ablation) and its bottleneck ratio (C → C / ratio).
    encoder_dropout: dropout on each encoder block's output (the skip tensor).
    transformer: the transformer bottleneck on/off (ablation; off also drops the position encoding).
    transformer_pairs: parallel pairs between the first and last transformer (3 → T1..T8).
    heads, head_dim: attention heads and the size of each (12 × 256, inner width 3072).
    ff_dim: hidden width of each transformer's feed-forward layer.
    transformer_dropout: dropout after attention and after the feed-forward layer.
    position: ``"multiplicative"`` (the code's fixed gains sin(k · (L − 1) / T)) or ``"additive"``
        (the paper text's sinusoidal encoding).
    decoder_channels: filters of the transposed and plain convolutions in each decoder block.
    head_channels: filters of the conv + SE layers after the decoder (the last one is flattened).
    mlp_units / mlp_dropout: hidden Dense widths and the dropout after each; a Dense(1) follows.
    leaky_slope: negative slope of the MLP's LeakyReLU.
    bn_eps, bn_momentum (PyTorch convention, Keras 0.99 = 0.01), ln_eps: norm constants.
    conv_init: ``"he_normal"`` (the authors' convolutions) or ``"glorot_uniform"`` (Keras default).
    """

    length: int = 112
    channels: str = "NACGT"
    encoder_channels: tuple[int, ...] = (128, 128, 256, 256)
    kernel_size: int = 11
    se: bool = True
    se_ratio: int = 2
    encoder_dropout: float = 0.1
    transformer: bool = True
    transformer_pairs: int = 3
    heads: int = 12
    head_dim: int = 256
    ff_dim: int = 128
    transformer_dropout: float = 0.1
    position: str = "multiplicative"
    decoder_channels: int = 128
    head_channels: tuple[int, ...] = (128, 64, 32)
    mlp_units: tuple[int, ...] = (256, 128, 64, 32)
    mlp_dropout: tuple[float, ...] = (0.2, 0.2, 0.1, 0.1)
    leaky_slope: float = 0.1
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01
    ln_eps: float = 1e-6
    conv_init: str = "he_normal"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.encoder_channels or not self.head_channels:
            raise ValueError("CRMnetConfig: encoder_channels and head_channels must not be empty")
        factor = 2 ** (len(self.encoder_channels) - 1)
        if self.length % factor:
            raise ValueError(
                f"CRMnetConfig: length {self.length} must be divisible by {factor} "
                f"({len(self.encoder_channels) - 1} stride-2 encoder blocks)"
            )
        if len(self.mlp_dropout) != len(self.mlp_units):
            raise ValueError(
                f"CRMnetConfig: mlp_dropout has {len(self.mlp_dropout)} rates for {len(self.mlp_units)} mlp_units"
            )
        if self.position not in POSITIONS:
            raise ValueError(f"CRMnetConfig: position must be one of {POSITIONS}, not {self.position!r}")
        if self.conv_init not in ("he_normal", "glorot_uniform"):
            raise ValueError(
                f"CRMnetConfig: conv_init must be 'he_normal' or 'glorot_uniform', not {self.conv_init!r}"
            )
        if self.transformer_pairs < 0 or self.se_ratio < 1:
            raise ValueError("CRMnetConfig: transformer_pairs must be >= 0 and se_ratio >= 1")

    @property
    def tokens(self) -> int:
        """Positions at the bottleneck (14 for the preset)."""
        return self.length // 2 ** (len(self.encoder_channels) - 1)


def conv_se_bn(
    cfg: CRMnetConfig, cin: int, cout: int, bn: bool = True
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """The unit CRMnet repeats: conv (ReLU) → SE → BN, as three modules (x: (B, C_in, L) → (B, C_out, L)).

    In the authors' model SE always comes before batch norm; the head has no batch norm (``bn=False``).
    They are returned separately so that each block names them flatly (``conv1``, ``se1``, ``bn1``).
    """
    conv = SameConv1d(cin, cout, cfg.kernel_size)
    se = SqueezeExcite(cout, cout // cfg.se_ratio) if cfg.se else nn.Identity()
    norm = nn.BatchNorm1d(cout, eps=cfg.bn_eps, momentum=cfg.bn_momentum) if bn else nn.Identity()
    return conv, se, norm


class HeadBlock(nn.Module):
    """conv (ReLU) → SE without batch norm; x: (B, C_in, L) → (B, C_out, L)."""

    def __init__(self, cfg: CRMnetConfig, cin: int, cout: int):
        super().__init__()
        self.conv, self.se, _ = conv_se_bn(cfg, cin, cout, bn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C_in, L) → (B, C_out, L)."""
        return self.se(F.relu(self.conv(x)))


class EncoderBlock(nn.Module):
    """x: (B, C_in, L) → (skip (B, F, L), next (B, F, L/2) — or the skip itself when not condensing)."""

    def __init__(self, cfg: CRMnetConfig, cin: int, filters: int, condensing: bool):
        super().__init__()
        self.conv1, self.se1, self.bn1 = conv_se_bn(cfg, cin, filters)
        self.conv2, self.se2, self.bn2 = conv_se_bn(cfg, filters, filters)
        self.dropout = nn.Dropout(cfg.encoder_dropout)
        self.down = SameConv1d(filters, filters, cfg.kernel_size, stride=2) if condensing else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map x (B, C_in, L) → (skip (B, F, L), next (B, F, L/2) or the skip itself)."""
        x = self.bn1(self.se1(F.relu(self.conv1(x))))
        skip = self.dropout(self.bn2(self.se2(F.relu(self.conv2(x)))))
        return skip, (F.relu(self.down(skip)) if self.down is not None else skip)


class DecoderBlock(nn.Module):
    """x: (B, C_in, L), skip: (B, S, 2L) → (B, D, 2L): up-sample, concat [up, skip], conv-SE-BN × 2."""

    def __init__(self, cfg: CRMnetConfig, cin: int, skip_channels: int):
        super().__init__()
        d = cfg.decoder_channels
        self.up = SameConvTranspose1d(cin, d, cfg.kernel_size, stride=2)
        self.conv1, self.se1, self.bn1 = conv_se_bn(cfg, d + skip_channels, d)
        self.conv2, self.se2, self.bn2 = conv_se_bn(cfg, d, d)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Map x (B, C_in, L), skip (B, S, 2L) → (B, D, 2L)."""
        x = torch.cat([self.up(x), skip], dim=1)
        x = self.bn1(self.se1(F.relu(self.conv1(x))))
        return self.bn2(self.se2(F.relu(self.conv2(x))))


class TransformerBlock(nn.Module):
    """Post-norm transformer block; x: (B, T, E) → (B, T, E).

    a = MHA(x); o1 = LN(x + dropout(a)); out = LN(o1 + dropout(ff2(relu(ff1(o1))))).
    """

    def __init__(self, cfg: CRMnetConfig, embed_dim: int):
        super().__init__()
        self.attn = MultiHeadSelfAttention(embed_dim, cfg.heads, cfg.head_dim)
        self.drop1 = nn.Dropout(cfg.transformer_dropout)
        self.ln1 = nn.LayerNorm(embed_dim, eps=cfg.ln_eps)
        self.ff1 = nn.Linear(embed_dim, cfg.ff_dim)
        self.ff2 = nn.Linear(cfg.ff_dim, embed_dim)
        self.drop2 = nn.Dropout(cfg.transformer_dropout)
        self.ln2 = nn.LayerNorm(embed_dim, eps=cfg.ln_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, T, E) → (B, T, E)."""
        x = self.ln1(x + self.drop1(self.attn(x)))
        return self.ln2(x + self.drop2(self.ff2(F.relu(self.ff1(x)))))


def position_gains(tokens: int, length: int) -> torch.Tensor:
    """(tokens,) float32 multiplicative gains sin(k · (length − 1) / tokens) of the authors' code.

    For the preset (14 tokens, length 112) this is sin(k · 111/14): token 0 is multiplied by 0.
    The product is formed in float32, as TensorFlow does (float64 differs by up to 3e-6).
    """
    step = torch.tensor((length - 1) / tokens, dtype=torch.float32)
    return torch.sin(torch.arange(tokens, dtype=torch.float32) * step)


def sinusoidal_encoding(tokens: int, dim: int) -> torch.Tensor:
    """(tokens, dim) additive encoding of Vaswani et al.: sin on even, cos on odd features."""
    pos = torch.arange(tokens, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(tokens, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


class CRMnet(nn.Module):
    """CRMnet: U-Net encoder/decoder with a transformer bottleneck and an MLP regression head.

    x: (B, C, L) one-hot (preset: (B, 5, 112), channels [N, A, C, G, T]) → (B,) expression.
    """

    def __init__(self, config: CRMnetConfig | None = None):
        super().__init__()
        cfg = config if config is not None else CRMnetConfig()
        self.config = cfg
        self.encoding = cfg.encoding
        widths = cfg.encoder_channels
        n = len(widths)
        self.encoder = nn.ModuleList(
            EncoderBlock(cfg, cin, f, condensing=i < n - 1)
            for i, (cin, f) in enumerate(zip((cfg.encoding.n_channels, *widths[:-1]), widths))
        )
        embed = widths[-1]
        if cfg.transformer:
            self.transformer = nn.ModuleList(
                TransformerBlock(cfg, embed) for _ in range(2 + 2 * cfg.transformer_pairs)
            )
            if cfg.position == "multiplicative":
                pe = position_gains(cfg.tokens, cfg.length)[:, None]  # (T, 1): scales whole tokens
            else:
                pe = sinusoidal_encoding(cfg.tokens, embed)  # (T, E)
            # Derived from the config, so not saved: the state_dict holds exactly the spec's tensors.
            self.register_buffer("position", pe, persistent=False)
        else:
            self.transformer = None
        self.decoder = nn.ModuleList()
        cin = embed
        for skip_width in reversed(widths[:-1]):
            self.decoder.append(DecoderBlock(cfg, cin, skip_width))
            cin = cfg.decoder_channels
        self.head = nn.ModuleList()
        for width in cfg.head_channels:
            self.head.append(HeadBlock(cfg, cin, width))
            cin = width
        units = (cfg.length * cin, *cfg.mlp_units, 1)
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(units))
        self.mlp_dropout = nn.ModuleList(nn.Dropout(p) for p in cfg.mlp_dropout)
        keras_init(self, conv=cfg.conv_init)

    def _bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, E, T) → (B, E, T) through position encoding and T1, the parallel pairs, T_last."""
        t = x.transpose(1, 2)
        t = t * self.position if self.config.position == "multiplicative" else t + self.position
        blocks = self.transformer
        t = blocks[0](t)
        for j in range(1, len(blocks) - 1, 2):
            t = blocks[j + 1](t) + blocks[j](t)
        t = blocks[-1](t)
        return t.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C, L) one-hot in the model's encoding → (B,) expression."""
        x = unet_features(self, x)
        x = x.transpose(1, 2).flatten(1)  # channels-last, as Keras' Flatten on (B, L, C)
        for dense, drop in zip(self.mlp[:-1], self.mlp_dropout):
            x = drop(F.leaky_relu(dense(x), self.config.leaky_slope))
        return self.mlp[-1](x).squeeze(-1)


def unet_features(net, x: torch.Tensor) -> torch.Tensor:
    """The U-Net path of a CRMnet-shaped module.

    Encoder (keeping skips), the transformer bottleneck when there is one, decoder (joined with the skips,
    deepest first) and the convolutional head.

    Parameters
    ----------
    net : module
        Has ``encoder``, ``transformer`` (or None), ``_bottleneck``, ``decoder`` and ``head`` — a
        :class:`CRMnet` or its inference rewrite (:mod:`crmnet.models.fastpath`).
    x : (B, C, L) tensor

    Returns
    -------
    (B, C', L') tensor
        The head's output, before flattening.
    """
    skips = []
    for block in net.encoder:
        skip, x = block(x)
        skips.append(skip)
    if net.transformer is not None:
        x = net._bottleneck(x)
    for block, skip in zip(net.decoder, reversed(skips[:-1])):
        x = block(x, skip)
    for block in net.head:
        x = block(x)
    return x
