"""An inference-only rewrite of narrow CRMnets (crmnet-tiny, crmnet-small) that runs channels-last.

:class:`FastNarrowCRMnet` computes what a :class:`~crmnet.models.crmnet.CRMnet` whose convolutions are
all narrower than 128 channels computes (``≈1e-6`` relative rounding in float32, tested against the plain
module). The full-width rewrite, :class:`~crmnet.models.fastpath.FastCRMnet`, spends its effort on FFT
convolutions and on folding 12 wide heads; here the time goes to many small convolutions (8-48 channels),
which oneDNN runs about twice as fast on channels-last data (positions outer, channels inner) as on
PyTorch's (B, C, L) layout. So every activation is kept as (B, L, C):

* **Convolutions** run as 2-D oneDNN convolutions over a (B, C, 1, L) view in channels-last memory
  format, the ReLU fused in as oneDNN's post-op (no second pass over the output). Keras' asymmetric
  'same' padding (stride 2: one more zero after than before) becomes a symmetric padding with a zero tap
  added to the kernel, so no padded copy is made. oneDNN computes output channels in blocks of 8, so a
  convolution with at most 4 outputs runs on groups of positions instead (:func:`_grouped`: channels-last,
  (B, L, C) *is* (B, L/g, g·C)).
* **Transposed convolutions** are polyphase convolutions (one output group per phase,
  :func:`~crmnet.models.fastops.polyphase_kernel`); channels-last, the phase-major output (B, L, s·C) *is*
  the interleaved up-sampled signal (B, s·L, C), with no copy.
* **Squeeze-excitation then batch norm** is one fused multiply-add per unit, as in ``FastCRMnet``,
  written over the convolution's output.
* **The input** is read as (B, L, C): a (B, C, L) view of (B, L, C) memory (what
  :meth:`~crmnet.design.oracle.ModelPredictor.onehot` makes for a runner with ``CHANNELS_LAST``) costs no copy.
* **The transformer** reads (B, T, E), which is the bottleneck's channels-last layout, so no transposes;
  its attention is folded where that pays (:class:`~crmnet.models.fastops.TransformerRewrite`).
* **The flattening before the MLP** is channels-last in Keras too, so the first Dense layer keeps its
  weights.
* **Batches run in chunks** of :attr:`FastNarrowCRMnet.CHUNK` sequences, which keeps each layer's
  activations in the caches.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.models.blocks import SameConv1d, SameConvTranspose1d, keras_same_padding
from crmnet.models.crmnet import CRMnet, DecoderBlock, EncoderBlock, unet_features
from crmnet.models.fastops import TransformerRewrite, conv_pointwise, frozen, linear, polyphase_kernel

#: narrower than this in every convolution (the width at which ``FastCRMnet`` switches to FFTs)
NARROW_CHANNELS = 128


def _symmetric(weight: torch.Tensor, before: int, after: int) -> tuple[torch.Tensor, int]:
    """A kernel (C_out, C_in, k) and symmetric padding P that correlate like ``weight`` padded (before, after).

    Zero taps are added on the shorter side: output m then reads the same inputs with the same weights
    (``P − before`` zeros first, ``P − after`` last) and has the same length.
    """
    pad = max(before, after)
    return F.pad(weight, (pad - before, pad - after)), pad


def _as_nchw(x: torch.Tensor) -> torch.Tensor:
    """(B, L, C) contiguous → the same memory as a (B, C, 1, L) tensor in channels-last format."""
    return x.unsqueeze(1).permute(0, 3, 1, 2)


def _as_nlc(y: torch.Tensor) -> torch.Tensor:
    """(B, C, 1, L) channels-last → (B, L, C), a view."""
    return y.permute(0, 2, 3, 1).flatten(1, 2)


def _grouped(weight: torch.Tensor, before: int, group: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """A stride-1 kernel (C_out, C_in, k), padded ``before``, as one over groups of ``group`` positions.

    Channels-last, (B, L, C) *is* (B, L/g, g·C): position g·m + r is channel block r of group m. Output
    phase r of group m reads position g·m + r + t − before = g·(m + τ) + ρ, i.e. tap τ of the grouped
    kernel (g·C_out, g·C_in, taps) from block ρ. Returns it and its (before, after) padding.
    """
    c_out, c_in, k = weight.shape
    offsets = [(r, t, r + t - before) for r in range(group) for t in range(k)]
    lo, hi = min(d // group for *_, d in offsets), max(d // group for *_, d in offsets)
    kernel = weight.new_zeros(group, c_out, group, c_in, hi - lo + 1)
    for r, t, d in offsets:
        kernel[r, :, d % group, :, d // group - lo] = weight[:, :, t]
    return kernel.reshape(group * c_out, group * c_in, hi - lo + 1), (-lo, hi)


class _Conv(nn.Module):
    """A convolution (ReLU optional) on channels-last data; x (B, L, C_in) → (B, L', C_out).

    ``weight`` (C_out, C_in, k) correlates x padded by ``padding`` = (before, after) with ``stride``.
    With ``group`` > 1 (stride 1, L divisible by it) it runs on groups of positions (:func:`_grouped`).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, padding: tuple[int, int], stride: int,
                 relu: bool, group: int = 1):
        super().__init__()
        weight, bias = weight.detach(), bias.detach()
        if group > 1:
            weight, padding = _grouped(weight, padding[0], group)
            bias = bias.repeat(group)
        kernel, self.pad = _symmetric(weight, *padding)
        self.weight = frozen(kernel[:, :, None, :].contiguous(memory_format=torch.channels_last))
        self.bias = frozen(bias)
        self.stride, self.relu, self.group = stride, relu, group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, L, C_in) → (B, L', C_out)."""
        if self.group == 1:
            return self._run(x)
        b, n, c = x.shape
        return self._run(x.reshape(b, n // self.group, self.group * c)).reshape(b, n, -1)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        post = "relu" if self.relu else "none"
        return _as_nlc(conv_pointwise(_as_nchw(x), self.weight, self.bias, self.pad, self.stride, post=post))


def _same_conv(conv: SameConv1d, length: int) -> _Conv:
    """A :class:`SameConv1d` (+ ReLU, as CRMnet always applies) for inputs of ``length`` positions."""
    k, s = conv.kernel_size[0], conv.stride[0]
    # oneDNN computes output channels in blocks of 8 (AVX2): crmnet-tiny's last 8 → 4 convolution took
    # longer than an 8 → 8 one; on pairs of positions (16 → 8) it ran 1.8x faster. Wider ones gained nothing.
    group = 1
    while s == 1 and 2 * group * conv.out_channels <= 8 and length % (2 * group) == 0:
        group *= 2
    return _Conv(conv.weight, conv.bias, keras_same_padding(length, k, s), s, relu=True, group=group)


class _Polyphase(nn.Module):
    """:class:`SameConvTranspose1d` channels-last; x (B, L, C_in) → (B, s·L, C_out)."""

    def __init__(self, up: SameConvTranspose1d):
        super().__init__()
        weight, bias, padding = polyphase_kernel(up)
        self.conv = _Conv(weight, bias, padding, 1, relu=False)
        self.stride = up.stride[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, L, C_in) → (B, s·L, C_out)."""
        y = self.conv(x)  # (B, L, s·C_out), phase-major: position s·m + r, channel c at [m, r·C_out + c]
        return y.reshape(y.shape[0], -1, y.shape[-1] // self.stride)  # a view when y is channels-last


class _Unit(nn.Module):
    """conv (ReLU) → squeeze-excitation → batch norm, channels-last; x (B, L, C_in) → (B, L, C_out)."""

    def __init__(self, conv: SameConv1d, se: nn.Module, bn: nn.Module, length: int):
        super().__init__()
        self.conv = _same_conv(conv, length)
        self.has_se = not isinstance(se, nn.Identity)
        if self.has_se:
            self.fc1_w, self.fc1_b = frozen(se.fc1.weight), frozen(se.fc1.bias)
            self.fc2_w, self.fc2_b = frozen(se.fc2.weight), frozen(se.fc2.bias)
        self.has_bn = isinstance(bn, nn.BatchNorm1d)
        if self.has_bn:
            scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
            self.scale, self.shift = frozen(scale), frozen(bn.bias - bn.running_mean * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, L, C_in) → (B, L, C_out)."""
        x = self.conv(x)
        if not self.has_se:
            return torch.addcmul(self.shift, x, self.scale, out=x) if self.has_bn else x
        hidden = linear(x.mean(dim=1), self.fc1_w, self.fc1_b, relu=True)
        gate = torch.sigmoid(linear(hidden, self.fc2_w, self.fc2_b))
        if self.has_bn:  # BN(x · gate) = x · (gate · γ/σ) + (β − μγ/σ)
            return torch.addcmul(self.shift, x, (gate * self.scale).unsqueeze(1), out=x)
        return x.mul_(gate.unsqueeze(1))


class _Encoder(nn.Module):
    def __init__(self, block: EncoderBlock, length: int):
        super().__init__()
        self.unit1 = _Unit(block.conv1, block.se1, block.bn1, length)
        self.unit2 = _Unit(block.conv2, block.se2, block.bn2, length)
        self.down = _same_conv(block.down, length) if block.down is not None else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.unit2(self.unit1(x))
        return skip, (self.down(skip) if self.down is not None else skip)


class _Decoder(nn.Module):
    def __init__(self, block: DecoderBlock, length: int):
        super().__init__()
        self.up = _Polyphase(block.up)
        self.unit1 = _Unit(block.conv1, block.se1, block.bn1, length)
        self.unit2 = _Unit(block.conv2, block.se2, block.bn2, length)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.unit2(self.unit1(torch.cat([self.up(x), skip], dim=-1)))


def narrow(model: nn.Module) -> bool:
    """Whether ``model`` is a CRMnet with every convolution narrower than :data:`NARROW_CHANNELS`.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    bool
    """
    if type(model) is not CRMnet:
        return False
    cfg = model.config
    return max(*cfg.encoder_channels, cfg.decoder_channels, *cfg.head_channels) < NARROW_CHANNELS


class FastNarrowCRMnet(nn.Module):
    """Inference-only channels-last rewrite of a narrow :class:`CRMnet` (module docstring); x (B, C, L) → (B,).

    Always in eval semantics (no dropout, batch-norm running statistics); gradients are not supported.
    """

    CHUNK = 1024
    #: it reads x (B, C, L) as (B, L, C): an x that is a view of (B, L, C) memory is used without a copy
    CHANNELS_LAST = True

    def __init__(self, model: CRMnet, dtype: torch.dtype = torch.float32):
        super().__init__()
        src = copy.deepcopy(model).eval().float()
        self.config, self.encoding = src.config, src.encoding
        lengths = [self.config.length // 2**i for i in range(len(src.encoder))]
        self.encoder = nn.ModuleList(_Encoder(b, n) for b, n in zip(src.encoder, lengths))
        self.transformer = (
            None if src.transformer is None else nn.ModuleList(TransformerRewrite(b) for b in src.transformer)
        )
        if self.transformer is not None:
            self.register_buffer("position", src.position.clone(), persistent=False)
        self.decoder = nn.ModuleList(_Decoder(b, n) for b, n in zip(src.decoder, reversed(lengths[:-1])))
        self.head = nn.ModuleList(_Unit(b.conv, b.se, nn.Identity(), lengths[0]) for b in src.head)
        self.mlp_w = nn.ParameterList(frozen(m.weight) for m in src.mlp)
        self.mlp_b = nn.ParameterList(frozen(m.bias) for m in src.mlp)
        self.to(dtype)
        self.requires_grad_(False)
        self.eval()

    def _bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """Position encoding, T1, the parallel pairs, T_last: x (B, T, E) → (B, T, E)."""
        t = x * self.position if self.config.position == "multiplicative" else x + self.position
        blocks = self.transformer
        t = blocks[0](t)
        for j in range(1, len(blocks) - 1, 2):
            t = blocks[j + 1](t) + blocks[j](t)
        return blocks[-1](t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C, L) one-hot → (B,) expression."""
        # The per-call cost of oneDNN's small convolutions (tens of µs) outweighs the cache misses of a
        # large chunk: per sequence, crmnet-tiny ran ≈1.5x faster in chunks of 1,024 than of 128, and alike
        # (within ±5 %, interleaved) in chunks of 2,048 and 4,096, which hold more memory. glibc may hand
        # freed activations back to the system and fault them in again on the next forward, at any of these
        # sizes, depending on what else the process allocated; removing those faults measured no gain
        # (docs/speed.md, "The memory allocator").
        parts = [self._forward(part) for part in x.split(self.CHUNK)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.mlp_b[0].dtype
        x = unet_features(self, x.to(dtype).transpose(1, 2).contiguous())  # (B, L, C) throughout
        x = x.flatten(1)
        slope = self.config.leaky_slope
        for w, b in zip(self.mlp_w[:-1], self.mlp_b[:-1]):
            x = F.leaky_relu(linear(x, w, b), slope)
        return linear(x, self.mlp_w[-1], self.mlp_b[-1]).squeeze(-1).float()
