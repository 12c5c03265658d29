"""Vaishnav et al. 2022's released Keras networks, with the Keras semantics their weights need.

Two models, each a plain ``nn.Module`` whose forward pass is the authors' Keras graph, operation for
operation, so their released weights (:mod:`crmnet.zoo.vaishnav`) give their published predictions:

* :class:`DeepATTKeras` (registry ``deepatt-keras``): the DeepATT regression model of their benchmark
  (``manuscript_code/model/benchmarking_models/DeepAtt_model.h5``, trained on the complex medium).
* :class:`VaishnavTransformerKeras` (registry ``vaishnav-transformer-keras``): their "fitness function"
  transformer (``app/models/{Glu,SC_Ura}/fitness_function.h5``).

They differ from the idiomatic peers of :mod:`crmnet.models.baselines` (``deepatt``,
``vaishnav-transformer``, kept for training from scratch) in what a trained Keras model depends on:

* :class:`KerasLSTM` — the Keras-2 / TF-1.x LSTM: gates in kernel order i, f, c, o, one bias vector,
  ``recurrent_activation = hard_sigmoid`` = clip(0.2 x + 0.5, 0, 1) (``torch.nn.LSTM`` has the logistic
  sigmoid and two biases). :class:`KerasBiLSTM` runs the backward direction on the reversed sequence and
  re-reverses its outputs, as ``Bidirectional(merge_mode='concat')``.
* :class:`KerasMultiHeadAttention` — ``keras-multi-head``'s attention (also the transformer's own copy):
  q, k, v and output projections E → E with ReLU applied to all four, heads are contiguous E / H channel
  slices, scores scaled by 1/sqrt(E / H), and optionally the hand-written softmax
  ``exp(e - max) / (sum + eps)`` (the transformer's eps is 1e-7).
* The transformer's LayerNorm with eps 1e-14 (``K.epsilon() ** 2``, biased variance), its reverse-
  complement motif convolution (one kernel W and its reverse complement W[::-1, ::-1] in one 'same'
  convolution, two tracks with their own batch norm) and the 2-D "cooperativity" convolution over the
  two stacked tracks.
* Input: the last 110 nt, left-padded with N, channels A, C, G, T and **N = [1, 1, 1, 1]** (their
  ``seq2feature`` indexes a numpy row with ``None``, which selects every channel).
* Output: the network predicts standardised expression; ``output_scale``/``output_shift`` hold the
  authors' StandardScaler (complex medium 9.358784 + 3.704071 · y, the default; defined medium
  9.172897 + 3.675876 · y), so ``forward`` returns expression units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.models.baselines import PeerConfig, dense_stack
from crmnet.models.blocks import SameConv1d, keras_same_padding

# StandardScaler of each medium's training targets (app/models/{Glu,SC_Ura}/scaler.save, sklearn 0.20.3).
COMPLEX_SCALER = (9.358784289629138, 3.7040708385110177)
DEFINED_SCALER = (9.172897, 3.675876)

# Their seq2feature: N selects every channel.
N_ALL_CHANNELS = 1.0
_BN_EPS, _BN_MOMENTUM = 1e-3, 0.01  # Keras BatchNormalization defaults (momentum 0.99 of the old value)


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras-2 ``hard_sigmoid``: clip(0.2 x + 0.5, 0, 1) (``F.hardsigmoid`` has slope 1/6, not 0.2)."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


class KerasLSTM(nn.Module):
    """One direction of a Keras-2 LSTM with ``return_sequences=True``; x: (B, T, D) → (B, T, H).

    Parameters keep Keras' layout so released weights load without reordering: ``kernel`` (D, 4H),
    ``recurrent_kernel`` (H, 4H) and ``bias`` (4H,), gates in the order i, f, c, o. ``reverse`` reads the
    sequence from its end (``go_backwards``) and returns the outputs in input order.
    """

    def __init__(self, input_size: int, units: int, reverse: bool = False):
        super().__init__()
        self.units, self.reverse = units, reverse
        self.kernel = nn.Parameter(torch.empty(input_size, 4 * units))
        self.recurrent_kernel = nn.Parameter(torch.empty(units, 4 * units))
        self.bias = nn.Parameter(torch.empty(4 * units))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras defaults: Glorot-uniform kernel, orthogonal recurrent kernel, forget-gate bias 1."""
        nn.init.xavier_uniform_(self.kernel)  # symmetric in fan-in/fan-out, so the layout does not matter
        nn.init.orthogonal_(self.recurrent_kernel)
        with torch.no_grad():
            self.bias.zero_()
            self.bias[self.units : 2 * self.units] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, T, D) → (B, T, H), the hidden state at every step."""
        batch, steps, _ = x.shape
        projected = x @ self.kernel + self.bias  # the input part of every step at once: (B, T, 4H)
        h = x.new_zeros(batch, self.units)
        c = x.new_zeros(batch, self.units)
        outputs: list[torch.Tensor] = []
        order = range(steps - 1, -1, -1) if self.reverse else range(steps)
        for t in order:
            i, f, g, o = (projected[:, t] + h @ self.recurrent_kernel).chunk(4, dim=1)
            c = hard_sigmoid(f) * c + hard_sigmoid(i) * torch.tanh(g)
            h = hard_sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        if self.reverse:
            outputs.reverse()
        return torch.stack(outputs, dim=1)


class KerasBiLSTM(nn.Module):
    """``Bidirectional(LSTM(units, return_sequences=True))``: x (B, T, D) → (B, T, 2 · units), [fwd, bwd]."""

    def __init__(self, input_size: int, units: int):
        super().__init__()
        self.forward_lstm = KerasLSTM(input_size, units)
        self.backward_lstm = KerasLSTM(input_size, units, reverse=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, T, D) → (B, T, 2 · units): forward then backward outputs."""
        return torch.cat([self.forward_lstm(x), self.backward_lstm(x)], dim=-1)


class KerasMultiHeadAttention(nn.Module):
    """``keras-multi-head`` self-attention: x (B, T, E) → (B, T, E).

    q, k, v = ReLU(x W + b) (E → E each), split into ``heads`` contiguous slices of E / heads channels;
    attention scaled by 1/sqrt(E / heads); softmax over keys, computed as ``exp(e - max) / (sum + eps)``
    when ``softmax_eps`` > 0 (the transformer's own layer) and as ``torch.softmax`` otherwise; output
    ReLU(y W_o + b_o).
    """

    def __init__(self, dim: int, heads: int, softmax_eps: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads, self.softmax_eps = heads, softmax_eps
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, T, E) → (B, T, E)."""
        batch, steps, dim = x.shape
        size = dim // self.heads

        def split(proj: nn.Linear) -> torch.Tensor:  # (B, T, E) → (B, H, T, E / H)
            return F.relu(proj(x)).view(batch, steps, self.heads, size).transpose(1, 2)

        q, k, v = split(self.q), split(self.k), split(self.v)
        scores = q @ k.transpose(-1, -2) / math.sqrt(size)
        if self.softmax_eps > 0:
            e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
            weights = e / (e.sum(dim=-1, keepdim=True) + self.softmax_eps)
        else:
            weights = torch.softmax(scores, dim=-1)
        y = (weights @ v).transpose(1, 2).reshape(batch, steps, dim)
        return F.relu(self.o(y))


@dataclass
class VaishnavKerasConfig(PeerConfig):
    """Their released models' input and output: N = [1, 1, 1, 1] (``unknown_fill``) and the target scaler.

    output_shift, output_scale: the StandardScaler of the training targets; ``forward`` returns
    ``output_shift + output_scale · y`` (expression units). Defaults: the complex medium's.
    """

    unknown_fill: float = N_ALL_CHANNELS
    output_shift: float = COMPLEX_SCALER[0]
    output_scale: float = COMPLEX_SCALER[1]

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.output_scale) and math.isfinite(self.output_shift)) or self.output_scale == 0:
            raise ValueError(
                f"{type(self).__name__}: output_scale must be finite and non-zero and output_shift finite, "
                f"not {self.output_scale!r} and {self.output_shift!r}"
            )

    def to_expression(self, y: torch.Tensor) -> torch.Tensor:
        """The network output y (any shape) in expression units."""
        return y * self.output_scale + self.output_shift


def _bn(channels: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


# --- DeepATT -----------------------------------------------------------------------------------------


@dataclass
class DeepATTKerasConfig(VaishnavKerasConfig):
    """The released DeepATT (Keras layout).

    The released DeepATT: Conv1D ``filters`` × ``width`` (valid, ReLU) → max-pool ``pool`` → BiLSTM
    ``lstm_units`` per direction → keras-multi-head attention with ``heads`` heads over the 2 · lstm_units
    features → Dense ``dense_units`` (ReLU) → Dense 1; ``dropout`` after the pool and the attention.
    """

    filters: int = 256
    width: int = 30
    pool: int = 3
    lstm_units: int = 16
    heads: int = 16
    softmax_eps: float = 0.0
    dropout: float = 0.2
    dense_units: tuple[int, ...] = (16, 16)

    @property
    def steps(self) -> int:
        """Positions left after the valid convolution and the pooling (110 → 81 → 27)."""
        return (self.length - self.width + 1) // self.pool


class DeepATTKeras(nn.Module):
    """Vaishnav et al.'s DeepATT with Keras semantics; x: (B, 4, 110) ACGT one-hot → (B,) expression.

    84,273 parameters at the defaults (the released model's count).
    """

    def __init__(self, config: DeepATTKerasConfig | None = None):
        super().__init__()
        cfg = config if config is not None else DeepATTKerasConfig()
        self.config, self.encoding = cfg, cfg.encoding
        if cfg.steps < 1:
            raise ValueError(
                f"DeepATTKerasConfig: length {cfg.length} is too short for width {cfg.width} and pool {cfg.pool}"
            )
        width = 2 * cfg.lstm_units
        self.conv = nn.Conv1d(cfg.encoding.n_channels, cfg.filters, cfg.width)
        self.pool = nn.MaxPool1d(cfg.pool)
        self.conv_drop = nn.Dropout(cfg.dropout)
        self.lstm = KerasBiLSTM(cfg.filters, cfg.lstm_units)
        self.attn = KerasMultiHeadAttention(width, cfg.heads, cfg.softmax_eps)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.head = dense_stack(cfg.steps * width, cfg.dense_units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, 4, 110) ACGT one-hot → (B,) expression."""
        h = self.conv_drop(self.pool(F.relu(self.conv(x))))
        h = self.attn_drop(self.attn(self.lstm(h.transpose(1, 2))))
        return self.config.to_expression(self.head(h.flatten(1)).squeeze(-1))


# --- the transformer ---------------------------------------------------------------------------------


@dataclass
class VaishnavTransformerKerasConfig(VaishnavKerasConfig):
    """The released transformer (Glu/SC_Ura ``model_params.pkl``).

    A reverse-complement motif scan of ``motif_filters`` × ``motif_width``, the cooperativity Conv2D and a
    Conv1D of ``coop_filters`` × ``coop_width``, ``transformer_layers`` blocks of ``heads``-head attention and
    a ``ff_dim`` feed-forward, a BiLSTM of ``lstm_units``, Dense ``dense_units``; ``dropout`` where the
    authors had it; ``layernorm_eps`` and ``softmax_eps`` as their custom layers.
    """

    motif_filters: int = 256
    motif_width: int = 30
    coop_filters: int = 64
    coop_width: int = 30
    transformer_layers: int = 2
    heads: int = 8
    ff_dim: int = 8
    lstm_units: int = 8
    dense_units: tuple[int, ...] = (64, 64)
    dropout: float = 0.05
    layernorm_eps: float = 1e-14
    softmax_eps: float = 1e-7


class VaishnavTransformerKerasBlock(nn.Module):
    """Post-norm block: x = LN(x + attn(x)); x = LN(x + FF(x)), FF = Dense(ff_dim, ReLU) → Dense(E)."""

    def __init__(self, cfg: VaishnavTransformerKerasConfig):
        super().__init__()
        e = cfg.coop_filters
        self.attn = KerasMultiHeadAttention(e, cfg.heads, cfg.softmax_eps)
        self.drop1 = nn.Dropout(cfg.dropout)
        self.ln1 = nn.LayerNorm(e, eps=cfg.layernorm_eps)
        self.ff = nn.Sequential(nn.Linear(e, cfg.ff_dim), nn.ReLU(), nn.Linear(cfg.ff_dim, e))
        self.drop2 = nn.Dropout(cfg.dropout)
        self.ln2 = nn.LayerNorm(e, eps=cfg.layernorm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, T, E) → (B, T, E)."""
        x = self.ln1(x + self.drop1(self.attn(x)))
        return self.ln2(x + self.drop2(self.ff(x)))


class VaishnavTransformerKeras(nn.Module):
    """Vaishnav et al.'s transformer with Keras semantics; x: (B, 4, 110) ACGT one-hot → (B,) expression.

    1,295,505 parameters + 1,280 batch-norm statistics at the defaults (the released count).
    """

    def __init__(self, config: VaishnavTransformerKerasConfig | None = None):
        super().__init__()
        cfg = config if config is not None else VaishnavTransformerKerasConfig()
        self.config, self.encoding = cfg, cfg.encoding
        if cfg.encoding.channels != "ACGT":  # the reverse complement flips the channel axis
            raise ValueError("VaishnavTransformerKerasConfig: the reverse-complement scan needs channels 'ACGT'")
        self.motif = nn.Conv1d(4, cfg.motif_filters, cfg.motif_width, bias=False)
        self.bn_fwd, self.bn_rev = _bn(cfg.motif_filters), _bn(cfg.motif_filters)
        self.coop = nn.Conv2d(cfg.motif_filters, cfg.coop_filters, (2, cfg.coop_width), bias=False)
        self.bn_coop = _bn(cfg.coop_filters)
        self.conv = SameConv1d(cfg.coop_filters, cfg.coop_filters, cfg.coop_width, bias=False)
        self.bn_conv = _bn(cfg.coop_filters)
        self.blocks = nn.Sequential(*(VaishnavTransformerKerasBlock(cfg) for _ in range(cfg.transformer_layers)))
        self.lstm = KerasBiLSTM(cfg.coop_filters, cfg.lstm_units)
        self.lstm_drop = nn.Dropout(cfg.dropout)
        self.head = dense_stack(cfg.length * 2 * cfg.lstm_units, cfg.dense_units, (cfg.dropout,) * len(cfg.dense_units))

    def strands(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """rc_Conv1D: x (B, 4, L) → forward and reverse-complement motif maps, each (B, F, L).

        One 'same' convolution with the kernel W and its reverse complement W[::-1, ::-1] (width and
        channels reversed), as the authors wrote it: the reverse track is not re-aligned.
        """
        w = self.motif.weight
        x = F.pad(x, keras_same_padding(x.shape[-1], w.shape[-1], 1))
        return F.conv1d(x, torch.cat([w, w.flip(1, 2)])).split(w.shape[0], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, 4, 110) ACGT one-hot → (B,) expression."""
        fwd, rev = self.strands(x)
        img = torch.stack([F.relu(self.bn_fwd(fwd)), F.relu(self.bn_rev(rev))], dim=2)  # (B, F, 2, L)
        img = F.pad(img, keras_same_padding(img.shape[-1], self.config.coop_width, 1))  # ZeroPadding2D
        h = F.relu(self.bn_coop(self.coop(img).squeeze(2)))
        h = F.relu(self.bn_conv(self.conv(h)))
        h = self.lstm(self.blocks(h.transpose(1, 2)))
        return self.config.to_expression(self.head(self.lstm_drop(h).flatten(1)).squeeze(-1))
