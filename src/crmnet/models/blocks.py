"""Building blocks shared by the models, the model-config base class and Keras-style initialisation.

* :class:`ModelConfig` — base of every model config: the input-encoding fields (length, pad/truncate
  side, channel order, N fill, prefix, trim and flank) live in the model's config, so a checkpoint carries the encoding
  its model needs and :attr:`ModelConfig.encoding` rebuilds it.
* Layers that reproduce Keras semantics exactly: :class:`SameConv1d` (Keras ``padding='same'``, also
  for stride 2, where Keras pads asymmetrically), :class:`SameConvTranspose1d`, :class:`SqueezeExcite`,
  :class:`MultiHeadSelfAttention` with an explicit head size (Keras ``MultiHeadAttention(num_heads,
  key_dim)``, which ``nn.MultiheadAttention`` cannot express because it splits the width across heads).
* :func:`keras_init` — Keras default initialisers (Glorot-uniform kernels, zero biases; He-normal where
  a model asks for it; orthogonal recurrent kernels and forget-gate bias 1 for LSTMs), with Keras'
  own fan computation so a model trained from scratch starts where the original did.
"""

from __future__ import annotations

import dataclasses
import math
import typing

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.config import Config
from crmnet.data.encoding import Encoding


def _encoding_property(self) -> Encoding:
    return Encoding(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Encoding)})


def _validate_encoding(self) -> None:
    _ = self.encoding  # building the Encoding validates the fields now, not at first use


# The fields every model config has are Encoding's own, declared once there and copied here flat (with
# their resolved types, so the strict config parser checks them) so that build_model(name, length=...)
# overrides them like any other field.
ModelConfig = dataclasses.make_dataclass(
    "ModelConfig",
    [(f.name, typing.get_type_hints(Encoding)[f.name], dataclasses.field(default=f.default))
     for f in dataclasses.fields(Encoding)],
    bases=(Config,),
    namespace={
        "__doc__": "Fields every model config has: how its input is laid out and one-hot encoded — the fields "
                   "of :class:`~crmnet.data.encoding.Encoding` (length, pad, truncate, channels, unknown_fill, "
                   "prefix, trim_start, flank). ``.encoding`` is that Encoding. ``default_loss`` (a class "
                   "attribute, not a field): the loss ``--loss auto`` trains the model with, ``huber`` unless a "
                   "model family says otherwise (a model with ``compute_loss`` uses that instead).",
        "__post_init__": _validate_encoding,
        "default_loss": "huber",
        "encoding": property(_encoding_property),
    },
)
ModelConfig.__module__ = __name__


def keras_same_padding(length: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of Keras/TensorFlow ``padding='same'``: the extra one goes *after*."""
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel_size - length, 0)
    return total // 2, total - total // 2


class SameConv1d(nn.Conv1d):
    """``Conv1d`` with Keras ``'same'`` padding for any stride.

    x: (B, C_in, L) → (B, C_out, ceil(L / stride)). With stride 1 and an odd kernel the padding is
    symmetric and done by the convolution itself; otherwise (stride 2: 4 before, 5 after for width 11)
    the input is padded explicitly, because a symmetric padding gives the right length but windows
    shifted by one position.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        groups: int = 1,
    ):
        symmetric = stride == 1 and kernel_size % 2 == 1
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2 if symmetric else 0,
            bias=bias,
            groups=groups,
        )
        self.symmetric = symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C_in, L) → (B, C_out, ceil(L / stride))."""
        if not self.symmetric:
            x = F.pad(x, keras_same_padding(x.shape[-1], self.kernel_size[0], self.stride[0]))
        return super().forward(x)


class SameConvTranspose1d(nn.ConvTranspose1d):
    """``ConvTranspose1d`` with Keras ``'same'`` semantics: x (B, C_in, L) → (B, C_out, L · stride).

    Keras' transposed 'same' convolution is the gradient of a 'same' strided convolution, whose padding
    puts the odd element after; in PyTorch that is ``padding = (k - stride) // 2`` and keeping the first
    ``L · stride`` outputs (``padding=5, output_padding=1`` has the right length but is shifted by one).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 2):
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=max((kernel_size - stride) // 2, 0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C_in, L) → (B, C_out, L · stride)."""
        stride, length = self.stride[0], x.shape[-1]
        if x.device.type != "cpu":  # GPUs have fast transposed convolutions (and FLOP counts stay exact)
            return super().forward(x)[..., : length * stride]
        # On the CPU, PyTorch's transposed convolution falls back to im2col + GEMM (3x slower than a
        # oneDNN convolution in float32, 10x in bfloat16). The same arithmetic as a plain convolution:
        # stuff stride-1 zeros between the inputs and correlate with the flipped, transposed kernel.
        stuffed = x.new_zeros(*x.shape[:-1], (length - 1) * stride + 1)
        stuffed[..., ::stride] = x
        kernel = self.weight.flip(-1).transpose(0, 1)  # (C_in, C_out, k) -> (C_out, C_in, k)
        y = F.conv1d(stuffed, kernel, self.bias, padding=self.kernel_size[0] - 1 - self.padding[0])
        return y[..., : length * stride]


class SqueezeExcite(nn.Module):
    """Squeeze-excitation: x (B, C, L) → x · sigmoid(fc2(act(fc1(mean_L x)))) channel-wise.

    ``hidden`` is the bottleneck width (CRMnet: C / 2 with ReLU; LegNet: C_in / 4 with SiLU).
    """

    def __init__(self, channels: int, hidden: int, activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.act = activation()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C, L) → (B, C, L), each channel scaled by its gate."""
        gate = torch.sigmoid(self.fc2(self.act(self.fc1(x.mean(dim=-1)))))
        return x * gate.unsqueeze(-1)


class MultiHeadSelfAttention(nn.Module):
    """Keras-style multi-head self-attention with an explicit head size.

    x: (B, T, E) → (B, T, E). q, k, v: Linear(E → heads · head_dim) with bias; scores scaled by
    1/sqrt(head_dim); out: Linear(heads · head_dim → E). ``qkv_activation`` (Vaishnav's transformer
    applies ReLU to the projections) is applied to q, k and v. Attention runs through
    ``F.scaled_dot_product_attention`` on (B, heads, T, head_dim) so fused kernels are used when there.
    ``dropout`` is attention-probability dropout, active only in training.
    """

    def __init__(
        self,
        embed_dim: int,
        heads: int,
        head_dim: int,
        dropout: float = 0.0,
        qkv_activation: type[nn.Module] | None = None,
    ):
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        inner = heads * head_dim
        self.q = nn.Linear(embed_dim, inner)
        self.k = nn.Linear(embed_dim, inner)
        self.v = nn.Linear(embed_dim, inner)
        self.out = nn.Linear(inner, embed_dim)
        self.qkv_act = qkv_activation() if qkv_activation is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, T, E) → (B, T, E)."""
        b, t, _ = x.shape

        def split(proj: nn.Linear) -> torch.Tensor:  # (B, T, H·D) → (B, H, T, D)
            return self.qkv_act(proj(x)).view(b, t, self.heads, self.head_dim).transpose(1, 2)

        y = F.scaled_dot_product_attention(
            split(self.q), split(self.k), split(self.v), dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


# --- Keras default initialisation -------------------------------------------------------------------

# Keras' truncated normal (cut at 2 sd) shrinks the spread; VarianceScaling divides by this constant
# (the sd of a standard normal truncated to [-2, 2]) so the kept samples have the intended variance.
_TRUNC_NORMAL_SD = 0.87962566103423978


def _keras_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras ``compute_fans`` on a Keras-layout kernel shape."""
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _keras_shape(module: nn.Module, name: str, weight: torch.Tensor) -> tuple[int, ...]:
    """The Keras layout of a PyTorch weight (the layout Keras computes its fans on)."""
    if isinstance(module, nn.ConvTranspose1d):  # torch (in, out, k) ↔ Keras (k, out, in)
        cin, cout, k = weight.shape
        return (k, cout, cin)
    if isinstance(module, nn.Conv1d):  # torch (out, in/groups, k) ↔ Keras (k, in, out)
        cout, cin, k = weight.shape
        return (k, cin, cout)
    if isinstance(module, nn.Conv2d):
        cout, cin, kh, kw = weight.shape
        return (kh, kw, cin, cout)
    if isinstance(module, MultiHeadSelfAttention):  # EinsumDense kernels: (E, H, D) and (H, D, E)
        if name == "out":
            return (module.heads, module.head_dim, weight.shape[0])
        return (weight.shape[1], module.heads, module.head_dim)
    return (weight.shape[1], weight.shape[0])  # Linear (out, in) ↔ Dense (in, out)


def glorot_uniform_(weight: torch.Tensor, keras_shape: tuple[int, ...]) -> None:
    """Fill ``weight`` in place from Keras' Glorot-uniform initialiser.

    Parameters
    ----------
    weight : torch.Tensor
        The PyTorch parameter, any shape.
    keras_shape : tuple of int
        The same kernel's shape in Keras' layout, from which Keras computes the fans (a Dense kernel is
        (in, out), a Conv1D kernel (k, in, out)).
    """
    fan_in, fan_out = _keras_fans(keras_shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.uniform_(-limit, limit)


def he_normal_(weight: torch.Tensor, keras_shape: tuple[int, ...]) -> None:
    """Fill ``weight`` in place from Keras' He-normal initialiser (truncated normal at 2 sd).

    Parameters
    ----------
    weight : torch.Tensor
        The PyTorch parameter, any shape.
    keras_shape : tuple of int
        The same kernel's shape in Keras' layout, from which Keras computes fan-in (a Conv1D kernel is
        (k, in, out)).
    """
    fan_in, _ = _keras_fans(keras_shape)
    sd = math.sqrt(2.0 / fan_in) / _TRUNC_NORMAL_SD
    nn.init.trunc_normal_(weight, std=sd, a=-2 * sd, b=2 * sd)


def keras_init(model: nn.Module, conv: str = "glorot_uniform") -> None:
    """Initialise ``model`` in place as Keras would.

    Convolutions (plain and transposed) use ``conv`` (``"glorot_uniform"`` — the Keras default — or
    ``"he_normal"``); dense and attention kernels Glorot-uniform with Keras' fans (an attention
    projection's kernel is 3-D in Keras, which changes its fans); biases zero; norms weight 1 bias 0;
    LSTMs Glorot-uniform input kernels, orthogonal recurrent kernels and zero biases except forget-gate
    bias 1 (Keras ``unit_forget_bias``), split over PyTorch's two bias vectors.
    """
    conv_init = {"glorot_uniform": glorot_uniform_, "he_normal": he_normal_}[conv]
    projections = {
        id(getattr(m, name))
        for m in model.modules()
        if isinstance(m, MultiHeadSelfAttention)
        for name in ("q", "k", "v", "out")
    }
    for module in model.modules():
        if isinstance(module, MultiHeadSelfAttention):
            for name in ("q", "k", "v", "out"):
                lin = getattr(module, name)
                glorot_uniform_(lin.weight, _keras_shape(module, name, lin.weight))
                nn.init.zeros_(lin.bias)
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d)):
            conv_init(module.weight, _keras_shape(module, "", module.weight))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and id(module) not in projections:
            glorot_uniform_(module.weight, _keras_shape(module, "", module.weight))
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
            module.reset_parameters()
        elif isinstance(module, nn.LSTM):
            _keras_lstm_init(module)


def _keras_lstm_init(lstm: nn.LSTM) -> None:
    hidden = lstm.hidden_size
    for name, p in lstm.named_parameters():
        with torch.no_grad():
            if name.startswith("weight_ih"):
                # Keras holds the four gates in one (in, 4H) kernel: Glorot on that whole shape.
                glorot_uniform_(p, (p.shape[1], p.shape[0]))
            elif name.startswith("weight_hh"):
                # Keras: orthogonal on the (H, 4H) recurrent kernel as a whole.
                q = torch.empty(p.shape[1], p.shape[0])
                nn.init.orthogonal_(q)
                p.copy_(q.T)
            elif name.startswith("bias_ih"):
                p.zero_()
                p[hidden : 2 * hidden] = 1.0  # PyTorch gate order i, f, g, o: forget gate bias 1
            elif name.startswith("bias_hh"):
                p.zero_()


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, saved non-parameter state) of ``model``.

    The second number counts the float buffers a checkpoint stores (batch-norm running mean and
    variance); BatchNorm's integer ``num_batches_tracked`` counter is not a statistic (Keras has no
    counterpart) and non-persistent buffers (CRMnet's position gains) are not saved, so neither counts.

    Parameters
    ----------
    model : nn.Module
        Any module (one built on the meta device counts the same).

    Returns
    -------
    tuple of (int, int)
        Trainable parameters, saved float buffers.
    """
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params = {name for name, _ in model.named_parameters()}
    buffers = sum(
        t.numel() for name, t in model.state_dict().items() if name not in params and t.is_floating_point()
    )
    return trainable, buffers


def flops_per_sample(model: nn.Module) -> int:
    """Forward FLOPs for one sample in eval mode, counted by ``torch.utils.flop_counter``.

    A multiply-add counts as two FLOPs; LSTMs have no FLOP formula and count zero. The count is made on
    a copy of the architecture (rebuilt from ``model.config``) on the meta device: no memory, no
    arithmetic, and attention is counted as ``scaled_dot_product_attention`` on every backend (the CPU
    kernel would otherwise be missed). Batch of 2, halved.

    Parameters
    ----------
    model : nn.Module
        A registered model (its class is rebuilt from ``model.config``).

    Returns
    -------
    int
        FLOPs per sequence (``crmnet models`` shows them as MFLOP/seq).
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        shadow = type(model)(model.config).eval()
        x = torch.zeros(2, model.encoding.n_channels, model.encoding.length)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        shadow(x)
    return counter.get_total_flops() // 2
