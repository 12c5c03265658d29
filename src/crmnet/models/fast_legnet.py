"""An inference-only LegNet (Penzar et al.'s architecture, :class:`~crmnet.models.legnet.LegNet`), faster on a CPU.

:class:`FastLegNet` holds rewritten copies of a LegNet's weights (folded in float64); every rewrite is
exact algebra, only float rounding differs (tested against the plain module, and in float64 to 1e-9).
What it changes, and why (one thread of the project's AMD EPYC, AVX2; per-layer figures measured one
layer at a time at 32 rows, the whole in ``benchmarks/bench_legnet.py``):

* **Batch norms folded into the preceding convolutions, SiLU fused into them**: each conv → BN → SiLU
  is one oneDNN convolution with a bias and a ``swish`` post-op (``torch.ops.mkldnn.
  _convolution_pointwise``): no separate passes over the activations for the batch norm (≈10 % of
  the plain module's time in a profile) and the SiLU (≈12 %).
* **Channels-last activations** ((B, C, 1, L) in ``torch.channels_last``, i.e. (B, L, C) in memory):
  oneDNN's 1×1 convolutions run ≈1.3–1.8× faster so than on (B, C, L).
* **The grouped convolution (2 channels per group) widened to groups of 8**, zeros in the added
  block-diagonal weights: oneDNN's kernels for 2-channel groups reach ≈3 GFLOP/s; with 8-channel
  groups the layer takes 2.5× less time despite 4× the multiply-adds (the added ones are with zeros).
* **The resize convolutions through a DFT computed as matrix products** (≥ :attr:`FastLegNet.DFT_CHANNELS`
  input channels: all six of the released architecture's, kernel 7, half the network's multiply-adds):
  transform, per-frequency channel mixing and inverse are three matrix products on the channels-last
  rows, over windows of ≈50 positions (overlap-save), ≈2(n + k) instead of n · k multiply-adds per
  channel pair in the mixing. At 64 rows the first block's 512 → 128 took ≈0.55× the time it took
  through ``torch.fft`` (whose layout changes and spectrum copies cost as much as the transforms), the
  others 0.75–0.8× the direct convolution's, whole; in windows of 50 instead of 150 positions the five
  narrower ones took another 0.75–0.9× (their transforms are cheaper), the widest the same. Their
  float32 error against a float64 convolution (≈4e-6) is below oneDNN's direct convolution's (1–2.5e-5).
* **Both strands in one batch**: the reverse complement (flag channel 1) is stacked under the forward
  strand, so every layer runs once per chunk, on twice the rows.
* **Chunks of** :attr:`FastLegNet.CHUNK` **sequences** (64 rows with both strands): the plain module's
  widest activations (512 channels × 150 positions) are 39 MB at 64 sequences and both strands, past
  the caches, and it runs ≈1.5–1.8× slower per sequence at a batch of 256 than at 64; the chunked
  module runs at the same speed at any batch.

The squeeze-excitation's small dense layers (with the released models' low-rank bilinear term) are
computed as in the plain module, the bilinear weight built once.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.data.encoding import revcomp_onehot
from crmnet.models.blocks import SqueezeExcite
from crmnet.models.fastops import conv_pointwise, frozen
from crmnet.models.legnet import BilinearSqueezeExcite, LegNet

CHANNELS_LAST = torch.channels_last


def _folded(unit: nn.Sequential) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv (no bias) → BN of ``unit`` as one convolution: weight (C_out, C_in / groups, k), bias (C_out,), float64."""
    conv, bn = unit[0], unit[1]
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    weight = conv.weight.detach().double() * scale[:, None, None]
    return weight, bn.bias.detach().double() - bn.running_mean.double() * scale


def _widened(weight: torch.Tensor, groups: int, width: int) -> tuple[torch.Tensor, int]:
    """A grouped convolution's weight (C, n, k) as one with groups of ``width`` channels, zeros elsewhere.

    Output channel c of group c // n reads input channels [n·(c // n), n·(c // n) + n); in groups of
    ``width`` those are columns ``(n·(c // n)) mod width`` onwards. Kept as it is unless n < width
    divides width, width divides C and the groups are square (n inputs and n outputs).
    """
    channels, n, k = weight.shape
    if groups == 1 or n >= width or width % n or channels % width or channels // groups != n:
        return weight, groups
    wide = weight.new_zeros(channels, width, k)
    c = torch.arange(channels)
    offset = (c // n * n) % width
    for j in range(n):
        wide[c, offset + j] = weight[:, j]
    return wide, channels // width


class _ConvSiLU(nn.Module):
    """conv → BN → SiLU of LegNet as one oneDNN convolution; x (B, C_in, 1, L) → (B, C_out, 1, L), channels-last."""

    GROUP_WIDTH = 8

    def __init__(self, unit: nn.Sequential, dtype: torch.dtype):
        super().__init__()
        weight, bias = _folded(unit)
        weight, self.groups = _widened(weight, unit[0].groups, self.GROUP_WIDTH)
        self.weight = frozen(weight.to(dtype).unsqueeze(2).contiguous(memory_format=CHANNELS_LAST))
        self.bias = frozen(bias.to(dtype))
        self.padding = unit[0].kernel_size[0] // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_pointwise(x, self.weight, self.bias, self.padding, groups=self.groups, post="swish")


class _DFTConvSiLU(nn.Module):
    """conv → BN → SiLU with the convolution as three matrix products through a discrete Fourier transform.

    x (B, C_in, 1, L) → (B, C_out, 1, L), both channels-last. The positions are cut into S segments of
    L_s = ⌈L / S⌉ (S = L / :attr:`SEGMENT`, rounded; overlap-save): segment s reads its window of
    n = L_s + k − 1 positions from s · L_s − k // 2 on (zeros outside x), and with F = n // 2 + 1
    frequencies

    1. the real DFT of every window, one product of a (2F, n) matrix (rows: frequency, then Re / Im)
       with the window's (n, C_in) positions: the spectrum lands as (B · S, F, 2 C_in), per frequency
       Re then Im of every channel;
    2. per frequency, one real product with the kernel's spectrum as the block matrix
       ``[[Re g, Im g], [−Im g, Re g]]`` (2 C_in, 2 C_out) mixes the channels (a batched product over F);
    3. the inverse transform of the L_s positions the window's circular correlation gets right (those
       that do not wrap), a (L_s, 2F) matrix on each window's (2F, C_out).

    Segments make the transforms ≈S× cheaper for S · (k − 1) more frequencies in the mixing, and give
    the mixing S× the rows per frequency. As matrix products all of it runs at MKL speed on the
    channels-last activations with no layout changes (``torch.fft`` wanted positions innermost and its
    spectra needed reordering copies). The bias is a constant signal: all of it is added at
    frequency 0. The matrices (built in float64, then cast) are cached per sequence length.
    """

    #: positions per segment, about (L = 150, k = 7, 64 rows: 3 segments of 50 took 0.75–0.9× the time of one
    #: of 150 in the five narrower resize layers, the same in the widest)
    SEGMENT = 50

    def __init__(self, unit: nn.Sequential, dtype: torch.dtype):
        super().__init__()
        weight, bias = _folded(unit)
        self.weight, self.bias = frozen(weight.to(dtype)), frozen(bias.to(dtype))
        self._matrices: dict[tuple, tuple] = {}  # (L, device, dtype) → (S, L_s, DFT, mixing, inverse)

    def _transforms(self, length: int) -> tuple:
        key = (length, self.weight.device, self.weight.dtype)
        if key not in self._matrices:
            w = self.weight.detach().double()
            segments = max(1, round(length / self.SEGMENT))
            seg = -(-length // segments)
            n = seg + w.shape[-1] - 1
            f = torch.arange(n // 2 + 1, dtype=torch.float64, device=w.device)[:, None]
            angle = 2 * torch.pi * f * torch.arange(n, dtype=torch.float64, device=w.device) / n  # (F, n)
            dft = torch.stack([angle.cos(), -angle.sin()], 1).flatten(0, 1)  # (2F, n)
            # output l of a window reads window[l + t] · w[t]: the kernel's spectrum Σ_t w[t] e^{+2πi f t / n}
            g = torch.einsum("oct,ft->fco", w.to(torch.complex128), torch.exp(1j * angle[:, : w.shape[-1]]))
            mix = torch.cat([torch.cat([g.real, g.imag], 2), torch.cat([-g.imag, g.real], 2)], 1)
            # irfft's weights: frequencies 0 and n / 2 once, every other one twice (its conjugate's share)
            weights = torch.where((f == 0) | (2 * f == n), 1.0, 2.0).to(f) / n  # (F, 1), float64
            inverse = (torch.stack([angle.cos(), -angle.sin()], 1)[:, :, :seg] * weights[:, None]).flatten(0, 1).T
            matrices = tuple(m.to(self.weight.dtype).contiguous() for m in (dft, mix, inverse))  # inverse (L_s, 2F)
            self._matrices[key] = (segments, seg, *matrices)
        return self._matrices[key]

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Map the concatenation of ``parts`` (each (B, C_i, 1, L), channels-last) → (B, C_out, 1, L)."""
        b, _, _, length = parts[0].shape
        segments, seg, dft, mix, inverse = self._transforms(length)
        freqs, width, cout = mix.shape[0], dft.shape[1], mix.shape[2] // 2
        pad = self.weight.shape[-1] // 2
        # the concatenation, written into a zero-padded (B, S · L_s + k − 1, C_in) buffer
        x = parts[0].new_zeros(b, segments * seg + width - seg, sum(part.shape[1] for part in parts))
        at = 0
        for part in parts:
            x[:, pad : pad + length, at : at + part.shape[1]] = part.squeeze(2).transpose(1, 2)
            at += part.shape[1]
        windows = x.unfold(1, width, seg).transpose(2, 3)  # (B, S, n, C_in), overlapping views
        spec = torch.matmul(dft, windows).reshape(b * segments, freqs, -1).transpose(0, 1)  # (F, B · S, 2 C_in)
        y = torch.bmm(spec, mix)  # (F, B · S, 2 C_out): Re, Im
        y[0, :, :cout] += width * self.bias
        y = y.view(freqs, b * segments, 2, cout).transpose(0, 1).reshape(b * segments, 2 * freqs, cout)
        y = torch.matmul(inverse, y).view(b, segments * seg, cout)[:, :length].contiguous()  # (B, L, C_out)
        return F.silu(y, inplace=True).transpose(1, 2).unsqueeze(2)


class _Gate(nn.Module):
    """LegNet's squeeze-excitation (plain or with the bilinear term) scaling x in place; x (B, C, 1, L)."""

    def __init__(self, se: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.fc1_w, self.fc1_b = frozen(se.fc1.weight.to(dtype)), frozen(se.fc1.bias.to(dtype))
        self.fc2_w, self.fc2_b = frozen(se.fc2.weight.to(dtype)), frozen(se.fc2.bias.to(dtype))
        self.bilinear = isinstance(se, BilinearSqueezeExcite)
        if self.bilinear:
            self.bil_w = frozen(se.bilinear.weight().to(dtype))  # (H², H/2)
            self.bil_b = frozen(se.bilinear.bias.to(dtype))
            self.fc3_w, self.fc3_b = frozen(se.fc3.weight.to(dtype)), frozen(se.fc3.bias.to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.linear(F.silu(F.linear(x.mean(dim=(2, 3)), self.fc1_w, self.fc1_b)), self.fc2_w, self.fc2_b)
        if self.bilinear:
            outer = (h.unsqueeze(-1) @ h.unsqueeze(-2)).flatten(1)  # (B, H²)
            h = torch.cat([h, outer @ self.bil_w + self.bil_b], dim=-1)
            h = F.linear(F.silu(h), self.fc3_w, self.fc3_b)
        return x.mul_(torch.sigmoid(h)[:, :, None, None])


class _Block(nn.Module):
    """A :class:`~crmnet.models.legnet.LegNetBlock`, rewritten; x (B, C_in, 1, L) → (B, C_out, 1, L)."""

    def __init__(self, block: nn.Module, dft_channels: int, dtype: torch.dtype):
        super().__init__()
        expand, grouped, se, back = block.inverted
        self.expand, self.grouped = _ConvSiLU(expand, dtype), _ConvSiLU(grouped, dtype)
        self.gate, self.back = _Gate(se, dtype), _ConvSiLU(back, dtype)
        dft = block.resize[0].in_channels >= dft_channels
        self.resize = (_DFTConvSiLU if dft else _ConvSiLU)(block.resize, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.back(self.gate(self.grouped(self.expand(x))))
        if isinstance(self.resize, _DFTConvSiLU):
            return self.resize([x, v])
        return self.resize(torch.cat([x, v], dim=1))


class FastLegNet(nn.Module):
    """Inference-only rewrite of a :class:`~crmnet.models.legnet.LegNet` (module docstring).

    Eval semantics always (batch-norm running statistics; the mean of both strands' expected bins, the
    singleton channel 0); x (B, 4, L) one-hot → (B,) float32. Gradients are not supported.
    """

    CHUNK = 32
    #: resize convolutions with at least this many input channels run through the DFT (all of the released
    #: architecture's: its narrowest, 128 → 64, in 0.8× the direct convolution's time)
    DFT_CHANNELS = 128

    def __init__(self, model: LegNet, dtype: torch.dtype = torch.float32):
        super().__init__()
        src = copy.deepcopy(model).eval().cpu().double()  # every folded weight computed in float64
        if src.config.kernel_size % 2 == 0:
            raise ValueError("FastLegNet: odd kernel sizes only ('same' padding is then symmetric)")
        if not all(isinstance(b.inverted[2], (SqueezeExcite, BilinearSqueezeExcite)) for b in src.blocks):
            raise ValueError("FastLegNet: unknown squeeze-excitation module")
        self.config, self.encoding = src.config, src.encoding
        self.stem = _ConvSiLU(src.stem, dtype)
        self.blocks = nn.ModuleList(_Block(b, self.DFT_CHANNELS, dtype) for b in src.blocks)
        mapper = src.mapper[0]
        self.mapper_w = frozen(mapper.weight.detach()[:, :, 0].to(dtype))
        self.mapper_b = frozen(mapper.bias.detach().to(dtype))
        self.register_buffer("bin_values", src.bin_values.to(dtype), persistent=False)
        self.requires_grad_(False)
        self.to(next(model.parameters()).device)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, 4, L) one-hot → (B,) the strand-averaged expected bin."""
        x = x.to(self.mapper_b.dtype)
        return x.new_empty(0) if not len(x) else torch.cat([self._chunk(p) for p in x.split(self.CHUNK)])

    def _chunk(self, x: torch.Tensor) -> torch.Tensor:
        b, _, length = x.shape
        strands = torch.cat([x, revcomp_onehot(x, self.encoding)])  # (2B, 4, L): forward, reverse complement
        flags = [x.new_zeros(2 * b, 1, length)]  # the reverse flag, then the singleton channel (0)
        flags[0][b:] = 1.0
        if self.config.singleton_channel:
            flags.append(x.new_zeros(2 * b, 1, length))
        h = torch.cat([strands, *flags], dim=1).unsqueeze(2).contiguous(memory_format=CHANNELS_LAST)
        h = self.stem(h)
        for block in self.blocks:
            h = block(h)
        # the mapper (1×1 conv + SiLU) on (2B, L, C) rows, then the mean over positions
        logits = F.silu(F.linear(h.squeeze(2).transpose(1, 2), self.mapper_w, self.mapper_b)).mean(dim=1)
        expected = (logits.softmax(dim=-1) * self.bin_values).sum(dim=-1)
        return 0.5 * (expected[:b] + expected[b:])
