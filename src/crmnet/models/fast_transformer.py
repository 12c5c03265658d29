"""An inference-only Vaishnav et al. transformer that computes the same function faster on a CPU.

:class:`FastVaishnavTransformer` holds rewritten copies of a
:class:`~crmnet.models.vaishnav.VaishnavTransformerKeras`'s weights; every rewrite is exact algebra, only
float32 rounding differs (tested within 1e-5 on the fixture's weights). Gains are per stage against the
plain module's, 64 sequences, one thread, medians of 7 interleaved calls on the project's shared 2-core CPU:

* **Batch norms folded into the convolutions before them** (all four convolutions are bias-free and
  followed by an inference batch norm: the kernel's output channels scaled by γ/σ, the bias β − μγ/σ).
* **The reverse-complement motif scan as a table look-up** (3.1×, 0.32 → 0.11 ms per sequence with its
  batch norms and ReLU): on one-hot input, each 'same' output position is the sum of 10 rows of a
  :func:`~crmnet.models.fast_vaishnav.kmer_table` (3-mers over A, C, G, T, N and the zero column of the
  padding: 10 × 216 rows of 512, both strands) instead of 4 × 30 × 512 multiply-adds. Other input (soft
  values) takes the matrix product over unfolded windows.
* **The cooperativity Conv2D and the Conv1D in the frequency domain** (3.7×, 2.52 → 0.71 ms, and 2.8×,
  0.33 → 0.12 ms): the 2 × 30 Conv2D over the two stacked strands is a 30-wide convolution over their
  512 channels. Both are circular convolutions of length 128 (≥ L + 15, so no wanted output wraps): one
  complex 512 × 64 (64 × 64) matrix product per frequency, 65 · 512 · 64 complex multiply-adds (≈8.5 M
  real) instead of 110 · 30 · 512 · 64 (108 M) per sequence. Activations run time-major, (L, B, C), so
  the forward transform is one matrix product with the real DFT's cosine and sine rows that leaves the
  spectrum frequency-major for the per-frequency products; ``torch.fft.rfft`` needed a padded,
  re-strided and transposed copy of the 512 channels (the whole model was ≈1.08× slower with it).
* **Attention** (4.3× per block, 2.11 → 0.52 ms): q, k, v in one oneDNN product with ReLU fused, then
  PyTorch's fused CPU attention (``scaled_dot_product_attention``: scores, softmax and the weighted sum
  in cache-sized blocks; 1.3–1.7× faster than batched products and a softmax for 8-wide heads).
  The authors' softmax divides by ``sum + 1e-7`` where the sum of the shifted exponentials is ≥ 1, so
  it differs from softmax by a factor within 1e-7 of 1, float32 rounding's order (configurations with
  an epsilon over 1e-6 keep the plain attention).
* **BiLSTM** (2.5×, 0.30 → 0.12 ms) as one recurrence of both directions (``fast_vaishnav``'s: hard
  sigmoid folded into the kernels, tanh as 2σ(2x) − 1); the first Dense layer reads its halved output
  with doubled weights, and the output scaler is folded into the last Dense layer.
* **Chunks**: the convolutions and the transformer blocks run :attr:`FastVaishnavTransformer.CONV_CHUNK`
  sequences at a time (their activations stay in the caches), the recurrence
  :attr:`FastVaishnavTransformer.CHUNK` (its 110 steps are small products whose per-call cost falls
  with the batch).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.models.blocks import keras_same_padding
from crmnet.models.fast_vaishnav import _BiLSTM, _chunked, kmer_table, symbol_codes
from crmnet.models.fastops import frozen, linear
from crmnet.models.vaishnav import VaishnavTransformerKeras, VaishnavTransformerKerasBlock


def _bn_affine(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """An inference batch norm as y = scale · x + shift, per channel (C,) each, float64."""
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    return scale, bn.bias.detach().double() - bn.running_mean.detach().double() * scale


def _fold_bn(weight: torch.Tensor, bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """A bias-free convolution's kernel (C_out, ...) followed by ``bn`` → folded kernel and bias, float64."""
    scale, shift = _bn_affine(bn)
    w = weight.detach().double()
    return w * scale.view(-1, *[1] * (w.dim() - 1)), shift


class _FFTConv(nn.Module):
    """Keras 'same' convolution + bias + ReLU in the frequency domain; x (L, B, C_in) → (L, B, C_out), time-major.

    Output ``y[m] = Σ_t w[t] x[m − p + t]`` (p: the padding before) is the circular convolution of length
    n of x with ``h[d mod n] = w[p − d]`` for d in [−(k − 1 − p), p], exact when n ≥ L + max(p, k − 1 − p):
    then no output m < L receives a wrapped term. The forward transform of the zero-padded input is one
    matrix product with the L columns of the real DFT (cosine and sine rows), which leaves the spectrum
    frequency-major, (F, B, C), for the per-frequency channel products, with no copy.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, length: int):
        super().__init__()
        cout, cin, k = weight.shape
        before, after = keras_same_padding(length, k, 1)
        self.n = n = 1 << (length + max(before, after) - 1).bit_length()
        h = weight.new_zeros(cout, cin, n)
        for t in range(k):
            h[:, :, (before - t) % n] = weight[:, :, t]
        g = torch.fft.rfft(h, dim=-1).permute(2, 1, 0)  # (F, C_in, C_out)
        angle = 2 * torch.pi * torch.outer(torch.arange(g.shape[0], dtype=torch.float64), torch.arange(length)) / n
        self.dft = frozen(torch.cat([torch.cos(angle), -torch.sin(angle)]).float())  # (2F, L): Re and Im rows
        # (Re x + i Im x)(Re g + i Im g), outputs interleaved (Re, Im) for irfft: from Re x and from Im x
        self.from_re = frozen(torch.stack([g.real, g.imag], -1).reshape(g.shape[0], cin, 2 * cout).float())
        self.from_im = frozen(torch.stack([-g.imag, g.real], -1).reshape(g.shape[0], cin, 2 * cout).float())
        self.bias0 = frozen((bias * n).float())  # a constant signal: all of it at frequency 0 (irfft divides by n)
        self.length = length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length, b, cin = x.shape
        spec = torch.mm(self.dft, x.reshape(length, b * cin)).view(2, -1, b, cin)  # (Re | Im, F, B, C_in)
        y = torch.baddbmm(torch.bmm(spec[0], self.from_re), spec[1], self.from_im).view(spec.shape[1], b, -1, 2)
        y[0, :, :, 0] += self.bias0
        return torch.fft.irfft(torch.view_as_complex(y), n=self.n, dim=0)[:length].relu_()


class _MotifScan(nn.Module):
    """rc_Conv1D, both strands' batch norms and ReLU: x (B, 4, L) → (L, B, 2F) time-major, [forward, reverse]."""

    R = 3  # bases per table row

    def __init__(self, model: VaishnavTransformerKeras):
        super().__init__()
        w = model.motif.weight.detach()
        both = torch.cat([w, w.flip(1, 2)])  # (2F, 4, K): the kernel and its reverse complement
        (scale_f, shift_f), (scale_r, shift_r) = _bn_affine(model.bn_fwd), _bn_affine(model.bn_rev)
        weight = both.double() * torch.cat([scale_f, scale_r])[:, None, None]
        bias = torch.cat([shift_f, shift_r])
        self.width = k = w.shape[-1]
        self.fill = float(model.config.unknown_fill)
        self.r = next(r for r in (self.R, 2, 1) if k % r == 0)
        self.table = frozen(kmer_table(weight, bias, self.r, self.fill, padding=True))
        self.conv_w, self.conv_b = frozen(weight.reshape(weight.shape[0], -1).float()), frozen(bias.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = symbol_codes(x, self.fill)
        coded = (codes >= 0).all(dim=1)
        if bool(coded.all()):
            return self._lookup(codes).relu_()
        if not bool(coded.any()):
            return self._matmul(x).relu_()
        z = x.new_empty(x.shape[-1], x.shape[0], self.conv_w.shape[0])
        z[:, coded] = self._lookup(codes[coded])
        z[:, ~coded] = self._matmul(x[~coded])
        return z.relu_()

    def _matmul(self, x: torch.Tensor) -> torch.Tensor:
        """Soft input: the convolution over unfolded windows, x (B, 4, L) → (L, B, 2F)."""
        windows = F.pad(x, keras_same_padding(x.shape[-1], self.width, 1)).unfold(2, self.width, 1)  # (B, 4, L, K)
        return linear(windows.permute(2, 0, 1, 3).reshape(x.shape[-1], x.shape[0], -1), self.conv_w, self.conv_b)

    def _lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """One-hot ``codes`` (B, L) → the convolution (L, B, 2F); the padding is symbol 5."""
        r, k, (b, length) = self.r, self.width, codes.shape
        groups = k // r
        padded = F.pad(codes, keras_same_padding(length, k, 1), value=5)  # (B, L + K − 1)
        kmers = padded.unfold(1, r, 1) @ (6 ** torch.arange(r - 1, -1, -1, device=codes.device))
        windows = kmers.unfold(1, (groups - 1) * r + 1, 1)[:, :length, ::r]  # (B, L, groups)
        index = windows.transpose(0, 1) + torch.arange(groups, device=codes.device) * 6**r  # (L, B, groups)
        return F.embedding_bag(index.reshape(-1, groups), self.table, mode="sum").view(length, b, -1)


#: the largest softmax epsilon whose omission stays below float32 rounding's order (a relative 1e-6 at most)
FUSED_SOFTMAX_EPS = 1e-6


class _Block(nn.Module):
    """A post-norm transformer block; x (B, T, E) → (B, T, E).

    Attention runs fused when the softmax's epsilon is at most :data:`FUSED_SOFTMAX_EPS` (the release's
    is 1e-7), through the plain module's attention otherwise.
    """

    def __init__(self, block: VaishnavTransformerKerasBlock):
        super().__init__()
        attn = block.attn
        self.plain = attn if attn.softmax_eps > FUSED_SOFTMAX_EPS else None
        self.heads = attn.heads
        self.scale = (attn.q.in_features // attn.heads) ** -0.5
        self.qkv_w = frozen(torch.cat([attn.q.weight, attn.k.weight, attn.v.weight]))
        self.qkv_b = frozen(torch.cat([attn.q.bias, attn.k.bias, attn.v.bias]))
        self.o_w, self.o_b = frozen(attn.o.weight), frozen(attn.o.bias)
        self.ff1_w, self.ff1_b = frozen(block.ff[0].weight), frozen(block.ff[0].bias)
        self.ff2_w, self.ff2_b = frozen(block.ff[2].weight), frozen(block.ff[2].bias)
        self.ln1, self.ln2 = block.ln1, block.ln2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.plain(x) if self.plain is not None else self._attention(x)
        x = self.ln1(a.add_(x))
        return self.ln2(linear(linear(x, self.ff1_w, self.ff1_b, relu=True), self.ff2_w, self.ff2_b).add_(x))

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        b, t, e = x.shape
        qkv = linear(x, self.qkv_w, self.qkv_b, relu=True).view(b, t, 3, self.heads, e // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).contiguous()  # each (B, H, T, E / H); contiguous: ≈20 % faster
        y = F.scaled_dot_product_attention(q, k, v, scale=self.scale).transpose(1, 2).reshape(b, t, e)
        return linear(y, self.o_w, self.o_b, relu=True)


class FastVaishnavTransformer(nn.Module):
    """Inference-only rewrite of a :class:`VaishnavTransformerKeras` (module docstring); x (B, 4, L) → (B,).

    Always in eval semantics (no dropout, batch-norm running statistics); gradients are not supported.
    """

    #: sequences per pass through the recurrence (its steps are small products: larger is faster)
    CHUNK = 512
    #: sequences per pass through the convolutions and the transformer blocks (activations stay in the caches)
    CONV_CHUNK = 64

    def __init__(self, model: VaishnavTransformerKeras):
        super().__init__()
        src = copy.deepcopy(model).eval().float()
        cfg = self.config = src.config
        self.encoding = src.encoding
        self.motif = _MotifScan(src)
        coop = src.coop.weight.detach()  # (C_out, F, 2, K): a 1-D kernel over [forward, reverse] channels
        self.coop = _FFTConv(*_fold_bn(torch.cat([coop[:, :, 0], coop[:, :, 1]], dim=1), src.bn_coop), cfg.length)
        self.conv = _FFTConv(*_fold_bn(src.conv.weight, src.bn_conv), cfg.length)
        self.blocks = nn.Sequential(*(_Block(b) for b in src.blocks))
        self.lstm = _BiLSTM(src.lstm)
        dense = [m for m in src.head if isinstance(m, nn.Linear)]
        weights, biases = [m.weight.detach() for m in dense], [m.bias.detach() for m in dense]
        weights[0] = weights[0] * 2.0  # the first Dense layer reads the recurrence's halved output
        weights[-1], biases[-1] = weights[-1] * cfg.output_scale, biases[-1] * cfg.output_scale + cfg.output_shift
        self.dense_w = nn.ParameterList(frozen(w) for w in weights[:-1])
        self.dense_b = nn.ParameterList(frozen(b) for b in biases[:-1])
        self.out_w, self.out_b = frozen(weights[-1]), frozen(biases[-1])
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, 4, L) one-hot → (B,) expression."""
        return _chunked(lambda part: self._tail(self._project(part)), x.float(), self.CHUNK)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """The LSTM's projected inputs (B, T, 8H) of x (B, 4, L), :attr:`CONV_CHUNK` sequences at a time."""
        return _chunked(lambda part: self.lstm.project(self.features(part)), x, self.CONV_CHUNK)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Convolutions and transformer blocks: x (B, 4, L) → (B, L, E)."""
        return self.blocks(self.conv(self.coop(self.motif(x))).transpose(0, 1).contiguous())

    def _tail(self, proj: torch.Tensor) -> torch.Tensor:
        """From the LSTM's projected inputs (B, T, 8H) to the output (B,)."""
        h = self.lstm.recur(self.lstm.arrange(proj)).flatten(1)
        for w, bias in zip(self.dense_w, self.dense_b):
            h = linear(h, w, bias, relu=True)
        return F.linear(h, self.out_w, self.out_b).squeeze(-1)
