"""An inference-only CRMnet that computes the same function with fewer operations, for CPU prediction.

:func:`optimize_for_inference` turns a trained :class:`~crmnet.models.crmnet.CRMnet` into a
:class:`FastCRMnet` holding rewritten copies of its weights (the original is left untouched and keeps
training exactly as before). Every rewrite is exact algebra; only floating-point rounding differs
(≈1e-6 relative in float32, tested against the plain module):

* **Attention with head size ≥ width / 2 (the preset: 12 heads of 256 on 256 channels).** A head's
  score ``(x Wq_h + bq)(x Wk_h + bk)ᵀ / √d`` is ``(x A_h + c_h) xᵀ`` with ``A_h = Wq_h Wk_hᵀ / √d`` and
  ``c_h = Wk_h bq / √d``; the terms dropped are constant along each softmax row, which softmax ignores.
  The value and output projections fold the same way: ``Σ_h P_h (x Wv_h + bv) Wo_h + bo`` is
  ``Σ_h P_h (x B_h) + (bv Wo + bo)`` with ``B_h = Wv_h Wo_h`` (rows of ``P_h`` sum to one). Four
  ``E × H·d`` projections become two ``E × H·E`` ones and the output projection disappears: for the
  preset that halves the transformer's arithmetic (88 → 46 MFLOP per block and sequence). The sum over
  heads is one batched matmul with the heads laid side by side.
* **Transposed convolutions as polyphase convolutions.** A stride-s transposed convolution is s
  ordinary convolutions, one per output phase, each with every s-th kernel tap, interleaved — instead
  of a convolution over an input with s − 1 zeros stuffed between samples (half of whose products are
  with zeros).
* **Convolutions ≥ 32 channels wide in and out through the FFT** (all but the first; strided and
  polyphase ones included): per frequency one real matrix product mixes the channels, ≈2(L + k)
  instead of L · k multiply-adds per channel pair (1.1–3× faster per convolution on the project CPU;
  ≈3e-7 relative rounding). The FFT length is the shortest 2^a·3^b·5^c the padded input needs (120 for
  112 positions), since the mixing costs one matrix product per frequency.
* **Batch norm after squeeze-excitation** becomes one fused multiply-add ``y · (gate · γ/σ) + (β − μγ/σ)``.
* **The channels-last flattening before the MLP** is moved into the first Dense layer's columns, so no
  transpose is copied.
* **Dense layers run through oneDNN** (``torch.ops.mkldnn._linear_pointwise``, the kernel
  ``torch.compile`` uses on CPUs) when PyTorch has it: on the project's AMD CPU it runs at ≈95 GFLOP/s
  on one core where ``F.linear`` with a bias (MKL ``addmm``) reaches ≈50; elsewhere, and on GPUs,
  ``F.linear``.
* **Batches run in chunks of 64 sequences**, which keeps each layer's activations in the caches.

``dtype=torch.bfloat16`` additionally runs the whole network in bfloat16 (opt-in, for CPUs with
AVX512-BF16/AMX: ≈1.5× faster again, but outputs move by up to ≈3 % of |y| (2.6e-2 on the Keras
fixture's outputs of ≈ −0.65), so it is not the default anywhere).

The fast module is a snapshot of the weights, cached per model and rebuilt by
:func:`optimize_for_inference` once any weight changes.
"""

from __future__ import annotations

import copy
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.models.blocks import SameConv1d, SameConvTranspose1d, keras_same_padding
from crmnet.models.crmnet import CRMnet, DecoderBlock, EncoderBlock, unet_features
from crmnet.models.fast_legnet import FastLegNet
from crmnet.models.fast_narrow import FastNarrowCRMnet, narrow
from crmnet.models.fast_transformer import FastVaishnavTransformer
from crmnet.models.fast_vaishnav import FastDeepATT
from crmnet.models.fastops import TransformerRewrite, polyphase_kernel
from crmnet.models.fastops import frozen as _frozen
from crmnet.models.fastops import linear as _linear
from crmnet.models.legnet import LegNet
from crmnet.models.vaishnav import DeepATTKeras, VaishnavTransformerKeras

#: convolutions at least this wide in and out run through the FFT (measured on one core at length 112,
#: batch 64: 128 → 64 channels 3.1×, 64 → 32 2.9× faster than direct; 5 → 128 twice as slow)
FFT_CHANNELS = 32


def _fft_size(n: int) -> int:
    """The smallest 2^a·3^b·5^c ≥ n.

    The channel mixing costs one matrix product per frequency, so the shortest fast FFT length beats the
    next power of two.
    """
    size = n
    while True:
        m = size
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return size
        size += 1


class _Conv(nn.Module):
    """A correlation with ``weight`` (C_out, C_in, k), bias and optional ReLU; x (B, C_in, L) → (B, C_out, L').

    x is padded by ``padding`` (before, after), or by Keras' 'same' padding for its length where that is
    None, and read with ``stride``: L' = (L + before + after − k) // stride + 1.

    Float32 convolutions at least :data:`FFT_CHANNELS` wide in and out run as FFT convolutions (measured
    1.3–3× faster than the direct ones on a CPU; strided ones keep every s-th output of the full
    correlation). Per frequency, the channel mixing is one real matrix product of x's spectrum (real and
    imaginary parts interleaved per channel) with the kernel's spectrum as 2 × 2 blocks
    ``[[Re, Im], [−Im, Re]]`` (B × 2C_in by 2C_in × 2C_out), batched over the frequencies: about
    2(L + k) instead of L · k multiply-adds per channel pair. The FFT's rounding is ≈3e-7 relative per
    convolution (tested).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride: int = 1,
                 padding: tuple[int, int] | None = None, relu: bool = True):
        super().__init__()
        self.weight, self.bias = _frozen(weight), _frozen(bias)
        self.stride, self.padding, self.relu = stride, padding, relu
        self.fft = min(weight.shape[:2]) >= FFT_CHANNELS
        self._spectra: dict[tuple, tuple[int, torch.Tensor]] = {}  # (L, device) → (N, mixing matrices)

    def _pads(self, length: int) -> tuple[int, int]:
        k = self.weight.shape[-1]
        return keras_same_padding(length, k, self.stride) if self.padding is None else self.padding

    def _spectrum(self, length: int) -> tuple[int, torch.Tensor]:
        key = (length, self.weight.device)
        if key not in self._spectra:
            before, after = self._pads(length)
            # The circular correlation of length N equals the padded one where every index it reads
            # outside x, from −before to L − 1 + after, wraps onto x's zero tail.
            n = _fft_size(length + max(before, after, 0))
            # Correlation with w = convolution with w flipped; its output is shifted by k − 1.
            g = torch.fft.rfft(self.weight.detach().flip(-1).double(), n=n).permute(
                2, 1, 0
            )  # (F, C_in, C_out)
            re, im = g.real, g.imag  # rows (C_in, Re|Im of x), columns (C_out, Re|Im of y), interleaved
            mix = torch.stack([torch.stack([re, im], -1), torch.stack([-im, re], -1)], 2)
            self._spectra[key] = (n, mix.reshape(g.shape[0], 2 * g.shape[1], 2 * g.shape[2]).float())
        return self._spectra[key]

    def _fft_conv(self, x: torch.Tensor) -> torch.Tensor:
        b, cin, length = x.shape
        n, mix = self._spectrum(length)
        spec = _transposed(torch.fft.rfft(x, n=n).reshape(b * cin, -1))  # (F, B·C_in) complex
        f = spec.shape[0]
        # Complex numbers as (Re, Im) pairs: (F, B, 2 C_in) reals times (F, 2 C_in, 2 C_out).
        y = torch.bmm(torch.view_as_real(spec).view(f, b, 2 * cin), mix)  # (F, B, 2 C_out), Re/Im interleaved
        y = y.view(f, b, -1, 2)
        y[0, :, :, 0] += n * self.bias  # the bias is a constant signal: all of it at frequency 0
        y = _transposed(torch.view_as_complex(y).view(f, -1)).view(b, -1, f)  # (B, C_out, F)
        # irfft[j] = Σ_t x[j − (k − 1) + t] w[t]; output m reads x from s·m − before.
        k, s = self.weight.shape[-1], self.stride
        before, after = self._pads(length)
        start = k - 1 - before
        out = (length + before + after - k) // s + 1
        return torch.fft.irfft(y, n=n)[..., start : start + s * (out - 1) + 1 : s]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C_in, L) → (B, C_out, L'); a strided view where it comes from the FFT."""
        if self.fft and x.dtype == torch.float32:
            y = self._fft_conv(x)
        else:
            before, after = self._pads(x.shape[-1])
            if before != after:
                x, before = F.pad(x, (before, after)), 0
            y = F.conv1d(x, self.weight, self.bias, stride=self.stride, padding=before)
        return y.relu_() if self.relu else y


def _transposed(m: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of the transpose of the contiguous matrix m (R, C) → (C, R).

    A 2-D transposed copy is one PyTorch tiles for the caches; the same copy as a 3-D permutation strides
    through memory (measured 2-5× slower for the (B, C, F) ↔ (F, B, C) spectra here).
    """
    return torch.empty(m.shape[1], m.shape[0], dtype=m.dtype, device=m.device).copy_(m.t())


def _same_conv(conv: SameConv1d) -> _Conv:
    """A :class:`SameConv1d` with ReLU fused, as CRMnet always applies it."""
    return _Conv(conv.weight, conv.bias, conv.stride[0])


class _SENorm(nn.Module):
    """Squeeze-excitation then (optional) batch norm as one multiply-add; x (B, C, L) → (B, C, L)."""

    def __init__(self, se: nn.Module, bn: nn.Module):
        super().__init__()
        if not isinstance(se, nn.Identity):
            self.fc1_w, self.fc1_b = _frozen(se.fc1.weight), _frozen(se.fc1.bias)
            self.fc2_w, self.fc2_b = _frozen(se.fc2.weight), _frozen(se.fc2.bias)
        self.has_se = not isinstance(se, nn.Identity)
        self.has_bn = isinstance(bn, nn.BatchNorm1d)
        if self.has_bn:
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            self.scale = _frozen(scale[:, None])
            self.shift = _frozen((bn.bias - bn.running_mean * scale)[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.has_se:
            return torch.addcmul(self.shift, x, self.scale) if self.has_bn else x
        gate = torch.sigmoid(
            _linear(_linear(x.mean(dim=-1), self.fc1_w, self.fc1_b, relu=True), self.fc2_w, self.fc2_b)
        )
        gate = gate[:, :, None]
        if self.has_bn:
            return torch.addcmul(self.shift, x, gate * self.scale)
        return x * gate


class _Unit(nn.Module):
    """conv (ReLU) → SE → BN of CRMnet, rewritten; x (B, C_in, L) → (B, C_out, L)."""

    def __init__(self, conv: SameConv1d, se: nn.Module, bn: nn.Module):
        super().__init__()
        self.conv, self.norm = _same_conv(conv), _SENorm(se, bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class _Polyphase(nn.Module):
    """:class:`SameConvTranspose1d` as ``stride`` interleaved convolutions; x (B, C_in, L) → (B, C_out, s·L).

    One convolution with ``s · C_out`` outputs, one group per output phase (:func:`polyphase_kernel`;
    an FFT convolution where wide enough), whose result is interleaved into the output's positions.
    """

    def __init__(self, up: SameConvTranspose1d):
        super().__init__()
        weight, bias, pad = polyphase_kernel(up)
        self.conv = _Conv(weight, bias, padding=pad, relu=False)
        self.stride = up.stride[0]

    def forward(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """Write the up-sampled x into ``out`` (B, C_out, s·L), e.g. a slice of a concatenation buffer."""
        b, _, length = x.shape
        y = self.conv(x)  # (B, s·C_out, L), phase-major
        out.view(b, -1, length, self.stride).copy_(y.unflatten(1, (self.stride, -1)).permute(0, 2, 3, 1))


class _Encoder(nn.Module):
    def __init__(self, block: EncoderBlock):
        super().__init__()
        self.unit1 = _Unit(block.conv1, block.se1, block.bn1)
        self.unit2 = _Unit(block.conv2, block.se2, block.bn2)
        self.down = _same_conv(block.down) if block.down is not None else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.unit2(self.unit1(x))
        return skip, (self.down(skip) if self.down is not None else skip)


class _Decoder(nn.Module):
    def __init__(self, block: DecoderBlock):
        super().__init__()
        self.up = _Polyphase(block.up)
        self.unit1 = _Unit(block.conv1, block.se1, block.bn1)
        self.unit2 = _Unit(block.conv2, block.se2, block.bn2)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up.conv.bias.shape[0] // self.up.stride
        cat = x.new_empty(x.shape[0], up + skip.shape[1], skip.shape[-1])
        self.up(x, cat[:, :up])  # the concatenation [up, skip] is filled in place
        cat[:, up:] = skip
        return self.unit2(self.unit1(cat))


class FastCRMnet(nn.Module):
    """Inference-only rewrite of a :class:`CRMnet` (see the module docstring); x (B, C, L) → (B,).

    Always in eval semantics (no dropout, batch-norm running statistics); gradients are not supported.
    """

    CHUNK = 64

    def __init__(self, model: CRMnet, dtype: torch.dtype = torch.float32):
        super().__init__()
        src = copy.deepcopy(model).eval().float()
        self.config, self.encoding = src.config, src.encoding
        self.encoder = nn.ModuleList(_Encoder(b) for b in src.encoder)
        self.transformer = (
            None if src.transformer is None else nn.ModuleList(TransformerRewrite(b) for b in src.transformer)
        )
        if self.transformer is not None:
            self.register_buffer("position", src.position.clone(), persistent=False)
        self.decoder = nn.ModuleList(_Decoder(b) for b in src.decoder)
        self.head = nn.ModuleList(_Unit(b.conv, b.se, nn.Identity()) for b in src.head)
        first, *rest = src.mlp
        cin, length = src.head[-1].conv.out_channels, self.config.length
        # Keras flattens (L, C) channels-last; reorder the columns to read the (C, L) activations as they are.
        w0 = first.weight.detach().view(-1, length, cin).transpose(1, 2).reshape(first.weight.shape)
        self.mlp_w = nn.ParameterList([_frozen(w0), *(_frozen(m.weight) for m in rest)])
        self.mlp_b = nn.ParameterList(_frozen(m.bias) for m in src.mlp)
        self.to(dtype)
        self.requires_grad_(False)
        self.eval()

    def _bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        t = x.transpose(1, 2).contiguous()
        t = t * self.position if self.config.position == "multiplicative" else t + self.position
        blocks = self.transformer
        t = blocks[0](t)
        for j in range(1, len(blocks) - 1, 2):
            t = blocks[j + 1](t) + blocks[j](t)
        return blocks[-1](t).transpose(1, 2).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, C, L) one-hot → (B,) expression."""
        # Samples are independent; chunks of CHUNK keep each layer's activations in the CPU's caches
        # (a batch of 256 at once is ≈20 % slower per sequence than four of 64).
        return torch.cat([self._forward(part) for part in x.split(self.CHUNK)])

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.mlp_b[0].dtype
        x = unet_features(self, x.to(dtype))
        x = x.flatten(1)
        slope = self.config.leaky_slope
        for w, b in zip(self.mlp_w[:-1], self.mlp_b[:-1]):
            x = F.leaky_relu(_linear(x, w, b), slope)
        return _linear(x, self.mlp_w[-1], self.mlp_b[-1]).squeeze(-1).float()


# model → (weights' identity and versions, dtype, fast module): building one takes seconds for the
# full model, and predict_file calls predict once per chunk.
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_key(model: nn.Module) -> tuple:
    """Changes whenever a weight or statistic is replaced or modified in place (optimiser steps, loads)."""
    return tuple((t.data_ptr(), t.device, t._version) for t in (*model.parameters(), *model.buffers()))


#: below this many parameters the wide rewrite does not pay on a CPU (measured: crmnet-tiny 7,800 → 5,500 and
#: crmnet-small 4,100 → 3,100 seq/s, as its batch chunking and FFT set-up outweigh small layers' savings);
#: narrow models take :class:`~crmnet.models.fast_narrow.FastNarrowCRMnet` instead
WORTHWHILE_PARAMETERS = 5_000_000


def worthwhile(model: nn.Module) -> bool:
    """Whether :func:`optimize_for_inference` speeds ``model`` up on a CPU (CRMnets, DeepATT, transformer, LegNet).

    Full-width CRMnets (≥ :data:`WORTHWHILE_PARAMETERS`) through :class:`FastCRMnet`; narrow ones
    (crmnet-tiny, crmnet-small: 1.5-1.7x the plain module's rate at batch 1,024 on one core) through
    :class:`~crmnet.models.fast_narrow.FastNarrowCRMnet`.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    bool
    """
    if type(model) in (DeepATTKeras, VaishnavTransformerKeras) or narrow(model) or _fast_legnet(model):
        return True
    return type(model) is CRMnet and sum(p.numel() for p in model.parameters()) >= WORTHWHILE_PARAMETERS


def _fast_legnet(model: nn.Module) -> bool:
    """A LegNet that :class:`FastLegNet` rewrites (odd kernels: symmetric 'same' padding)."""
    return type(model) is LegNet and model.config.kernel_size % 2 == 1


def _rewrite_of(model: nn.Module, dtype: torch.dtype):
    """The constructor of ``model``'s exact inference rewrite, or None where it has none."""
    if type(model) is CRMnet:
        return (lambda m: FastNarrowCRMnet(m, dtype)) if narrow(model) else (lambda m: FastCRMnet(m, dtype))
    if _fast_legnet(model):
        return FastLegNet
    return {DeepATTKeras: FastDeepATT, VaishnavTransformerKeras: FastVaishnavTransformer}.get(type(model))


def optimize_for_inference(model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The fastest exact inference form of ``model``: a CRMnet, DeepATT, transformer or LegNet rewrite.

    ``FastCRMnet`` (full width), ``FastNarrowCRMnet`` (narrow CRMnets), ``FastDeepATT``,
    ``FastVaishnavTransformer`` or ``FastLegNet``.

    model: any registered model (others are returned as they are). dtype: ``torch.float32`` (default;
    same outputs within float rounding, ≈1e-6 relative) or ``torch.bfloat16`` (opt-in, CRMnet only;
    ≈2e-2 relative; the others stay float32).
    Returns a module in eval mode on the model's device mapping x (B, C, L) → (B,) float32. The model
    itself is not modified; the result is cached per model and rebuilt once its weights change.
    """
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"optimize_for_inference: dtype must be float32 or bfloat16, not {dtype}")
    rewrite = _rewrite_of(model, dtype)
    if rewrite is None:
        return model
    key = (_weights_key(model), dtype)
    cached = _CACHE.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    fast = rewrite(model).to(next(model.parameters()).device)
    _CACHE[model] = (key, fast)
    return fast
