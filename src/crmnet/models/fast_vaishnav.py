"""An inference-only DeepATT (Vaishnav et al.'s released Keras model) that computes the same function faster.

:class:`FastDeepATT` holds rewritten copies of a :class:`~crmnet.models.vaishnav.DeepATTKeras`'s weights;
every rewrite is exact algebra, only float32 rounding differs (tested within 1e-5 on the real weights):

* **The first convolution as a table look-up**: on one-hot input, a convolution is a sum of kernel
  columns, one per tap. :func:`kmer_table` sums them for every 3-mer of each group of 3 taps, N (every
  channel ``unknown_fill``) being a fifth symbol (10 × 125 rows of 256 for the release), so each output
  position is 10 table rows summed (``embedding_bag``) instead of 4 × 30 × 256 multiply-adds: ≈3.7×
  faster than the matrix product. Sequences with other columns (soft input) take the matrix product
  over unfolded windows through oneDNN. Either is ≈4–15× faster than the plain module's 4-channel
  direct convolution. (8 % of the test sets' sequences carry an N; when N took the matrix product, a
  batch of 64 ran ≈1.3× slower.)
* **Max-pooling before the ReLU**: ReLU is monotonic, so ``pool(relu(z)) = relu(pool(z))``, and the ReLU
  touches a third of the values; the look-up runs once per pooling offset into a running maximum, so
  the unpooled convolution output is never held.
* **Both LSTM directions in one recurrence**: the backward direction's inputs are laid out reversed in
  time beside the forward ones, so each of the 27 steps is one ``addmm`` with a block-diagonal recurrent
  kernel. Keras' ``hard_sigmoid(z) = clip(0.2 z + 0.5, 0, 1)`` is folded into the i, f, o columns of both
  kernels and the bias (scaled by 0.2, shifted by 0.5), leaving one clamp per step for the three gates;
  ``tanh(z) = 2 σ(2z) − 1`` (PyTorch's float ``tanh`` costs ≈3–4× its ``sigmoid``), with the factors of 2
  folded into the kernels (:class:`_BiLSTM`).
* **Attention**: q, k, v in one oneDNN product with ReLU fused; the score scale 1 / √(E/H) is folded into
  q's weights (exact: ReLU commutes with a positive scale), times log2(e) so that the softmax takes
  ``exp2`` (≈1.7× faster than ``exp`` in PyTorch on a CPU; ≈6e-8 relative rounding); with the release's
  2-wide heads, one key at a time, the scores of every query are elementwise products over
  (query, sequence, head) planes instead of thousands of 2-deep matrix products, and are added into the
  weighted sums of v and the softmax's denominator at once (a plane of ones, produced by the same
  product with zero weights and bias 1); the (key, query) score matrix is never held.
* **Python numbers as operands cost a tensor each call** (≈4–5 µs, more than the arithmetic on a
  64-sequence step), so the recurrence and the symbol codes compare and subtract tensors.
* **The output scaler** is folded into the last Dense layer.
* **Variants of a reference** (:meth:`FastDeepATT.mutants`, saturation mutagenesis): a one-column change
  reaches 11 of the 27 pooled positions; the convolution and the LSTM's input projection are computed
  there only and taken from the reference elsewhere (fastISM's idea for a convolutional prefix).
* **Chunks of sequences, one size per stage**: the convolution and pooling 128 sequences at a time
  (:attr:`FastDeepATT.CONV_CHUNK`) and the attention 128 (:attr:`FastDeepATT.ATTENTION_CHUNK`), so
  their activations stay in the caches, and the recurrence 256 (:attr:`FastDeepATT.CHUNK`), whose 27
  steps are small products that cost less per sequence on more rows. Compiled by TorchScript the
  recurrence costs little per call, so the recurrence's chunk no longer needs to be large: (256, 128,
  128) ran at 0.86–0.89 of the time per sequence of the previous (512, 64, 64) at batch 1,024 and
  the same at 256, interleaved. The plain module slows from ≈4,100 to ≈1,600 sequences/s per core
  between batch 64 and 1024 because the convolution's output, the ReLU pass and the softmax fall out
  of the caches.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.models.fastops import frozen, linear, scripted
from crmnet.models.vaishnav import DeepATTKeras, KerasBiLSTM


def kmer_table(weight: torch.Tensor, bias: torch.Tensor, r: int, fill: float, padding: bool = False) -> torch.Tensor:
    """The convolution of one-hot input as a table of r-mer contributions (float64 sums, float32 result).

    Parameters
    ----------
    weight : (F, 4, K) tensor
        A valid convolution's kernel over A, C, G, T; K divisible by ``r``.
    bias : (F,) tensor
    r : int
        Bases per table entry.
    fill : float
        The value of every channel of an N column (the model's ``unknown_fill``).
    padding : bool
        Add a sixth symbol (code 5), the all-zero column of a zero-padded ('same') convolution.

    Returns
    -------
    (K / r · S^r, F) tensor
        Row ``g · S^r + code`` is the sum over the r taps ``g·r … g·r + r − 1`` of the kernel column of
        each symbol of the r-mer ``code`` (base S = 5: A, C, G, T, N, or S = 6 with the padding symbol;
        first symbol most significant; N's column is ``fill`` times the sum of the four); the bias is in
        group 0's rows, so the sum of one row per group is the convolution's output.
    """
    f, _, k = weight.shape
    w = weight.detach().double()
    symbols = [w, fill * w.sum(dim=1, keepdim=True)] + ([torch.zeros_like(w[:, :1])] if padding else [])
    w = torch.cat(symbols, dim=1)  # (F, S, K): N (and padding) as further symbols
    base = w.shape[1]
    combos = torch.cartesian_prod(*[torch.arange(base)] * r).view(-1, r)  # (S^r, r), first symbol most significant
    table = torch.zeros(k // r, base**r, f, dtype=torch.float64, device=w.device)
    for g in range(k // r):
        for j in range(r):
            table[g] += w[:, combos[:, j], g * r + j].T
    table[0] += bias.detach().double()
    return table.reshape(-1, f).float()


def symbol_codes(x: torch.Tensor, fill: float) -> torch.Tensor:
    """Symbol codes of one-hot columns, the key into a :func:`kmer_table`.

    A weighted sum, not ``argmax`` over 4 (20× slower).

    Parameters
    ----------
    x : (B, 4, L) tensor
    fill : float
        The value of every channel of an N column.

    Returns
    -------
    (B, L) int64 tensor
        0–3 for a one-hot column (A, C, G, T), 4 for N, −1 for anything else.
    """
    stats = torch.stack([*torch.aminmax(x, dim=1), x.sum(dim=1)])  # (3, B, L): min, max, sum
    # one-hot: in [0, 1] with a 1 and a sum of 1 (exactly one 1, the others 0); N: every channel is fill.
    # One comparison with a tensor, not three with Python numbers: each number is wrapped into a tensor
    # on every call (≈5 µs).
    onehot = (stats == x.new_tensor([0.0, 1.0, 1.0])[:, None, None]).all(dim=0)
    unknown = (stats[:2] == fill).all(dim=0)
    codes = torch.matmul(torch.arange(4.0, dtype=x.dtype, device=x.device), x).long()
    return codes.masked_fill_(~onehot, -1).masked_fill_(unknown, 4)


def _chunked(fn, x: torch.Tensor, size: int) -> torch.Tensor:
    """``fn`` applied to ``size`` rows of x at a time, concatenated (one call, no copy, when x fits)."""
    return fn(x) if len(x) <= size else torch.cat([fn(part) for part in x.split(size)])


def _lstm_steps(steps: torch.Tensor, recurrent: torch.Tensor, one_half: torch.Tensor, units: int) -> torch.Tensor:
    """The steps of :class:`_BiLSTM`'s recurrence: ``steps`` (T, B, 8H), overwritten → H = h / 2 (T, B, 2H).

    Run through :func:`~crmnet.models.fastops.scripted` (at 64 sequences each step's 9 operations cost
    more in Python than in arithmetic: the recurrence takes about half the time compiled).
    """
    t, b = steps.shape[0], steps.shape[1]
    u = units
    out = steps.new_empty(t, b, 2 * u)
    h = steps.new_zeros(b, 2 * u)
    c = steps.new_zeros(b, 2 * u)
    for j in range(t):
        z = steps[j].addmm_(h, recurrent)  # in place: no copy of the step's inputs
        gates = z[:, : 6 * u].clamp_(0.0, 1.0)
        i = gates[:, : 2 * u]
        g = z[:, 6 * u :].sigmoid_()  # the candidate is 2g − 1
        c = torch.mul(gates[:, 2 * u : 4 * u], c).addcmul_(i, g, value=4.0).sub_(i, alpha=2.0)
        h = torch.mul(gates[:, 4 * u :], torch.sigmoid(c).sub_(one_half), out=out[j])
    return out


def _attend(q0: torch.Tensor, q1: torch.Tensor, k0: torch.Tensor, k1: torch.Tensor, v: torch.Tensor,
            shift: torch.Tensor | None) -> torch.Tensor:
    """Σ_j exp2(s_j − shift) · v_j over keys j, s_j = q0 k0_j + q1 k1_j (:meth:`FastDeepATT.attention`).

    q0, q1 (T, B, H); k0, k1 (T, B, H); v (3, T, B, H); shift (T, B, H) or None → (3, T, B, H).
    Run through :func:`~crmnet.models.fastops.scripted`, like :func:`_lstm_steps`.
    """
    y = torch.zeros_like(v)
    for j in range(k0.shape[0]):
        s = torch.mul(q0, k0[j]).addcmul_(q1, k1[j])  # (query i, B, H)
        if shift is not None:
            s.sub_(shift)
        y.addcmul_(s.exp2_(), v[:, j].unsqueeze(1))
    return y


class _BiLSTM(nn.Module):
    """:class:`KerasBiLSTM` as one recurrence; x (B, T, D) → (B, T, 2H) **halved**, [forward, backward] per step.

    ``tanh`` is computed as ``2 σ(2x) − 1`` (PyTorch's float ``tanh`` costs ≈4× its ``sigmoid`` on a CPU):
    the candidate's columns are doubled in the kernels, and the recurrence carries ``C = 2c`` and
    ``H = h / 2`` (so ``σ(C)`` is the cell's and ``H = o (σ(C) − ½)`` the output's; the recurrent kernel
    is doubled to read H). Scaling by powers of two is exact; the caller doubles its weights on H.
    """

    def __init__(self, lstm: KerasBiLSTM):
        super().__init__()
        fwd, bwd = lstm.forward_lstm, lstm.backward_lstm
        h = self.units = fwd.units
        # Keras column blocks i, f, c, o → ours (gate, direction): i, f, o (hard sigmoid), then c (σ of 2z).
        order, scale, shift = (0, 1, 3, 2), (0.2, 0.2, 0.2, 2.0), (0.5, 0.5, 0.5, 0.0)
        d = fwd.kernel.shape[0]
        kernel = torch.zeros(d, 4, 2, h, dtype=torch.float64)
        recurrent = torch.zeros(2, h, 4, 2, h, dtype=torch.float64)
        bias = torch.zeros(4, 2, h, dtype=torch.float64)
        for j, layer in enumerate((fwd, bwd)):
            k, r, b = (t.detach().double().view(*t.shape[:-1], 4, h) for t in (layer.kernel, layer.recurrent_kernel,
                                                                               layer.bias))
            for new, old in enumerate(order):
                kernel[:, new, j] = k[:, old] * scale[new]
                recurrent[j, :, new, j] = r[:, old] * scale[new] * 2.0  # it reads H = h / 2
                bias[new, j] = b[old] * scale[new] + shift[new]
        self.kernel_t = frozen(kernel.reshape(d, 8 * h).T.contiguous().float())  # (8H, D), a Linear's layout
        self.bias = frozen(bias.reshape(8 * h).float())
        self.recurrent = frozen(recurrent.reshape(2 * h, 8 * h).float())
        # a tensor, not a Python number: PyTorch wraps a number operand into a tensor on every call (≈4 µs,
        # twice the cost of the subtraction itself at 64 sequences)
        self.register_buffer("one_half", torch.tensor(0.5), persistent=False)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The input part of every step: x (B, T, D) → (B, T, 8H), columns (gate, direction, unit)."""
        return linear(x, self.kernel_t, self.bias)

    def arrange(self, proj: torch.Tensor) -> torch.Tensor:
        """Projected inputs (B, T, 8H) → time-major (T, B, 8H), the backward half reversed in time."""
        b, t, _ = proj.shape
        proj = proj.view(b, t, 4, 2, self.units).transpose(0, 1)
        out = torch.empty_like(proj)
        out[:, :, :, 0] = proj[:, :, :, 0]
        out[:, :, :, 1] = proj.flip(0)[:, :, :, 1]
        return out.view(t, b, 8 * self.units)

    def recur(self, steps: torch.Tensor) -> torch.Tensor:
        """Run the recurrence over ``steps`` (T, B, 8H) → H = h / 2 (B, T, 2H), outputs at their own positions.

        ``steps`` (what :meth:`arrange` returns) is overwritten: each step's gates are computed in place.
        """
        t, b, _ = steps.shape
        u = self.units
        out = scripted(_lstm_steps)(steps, self.recurrent, self.one_half, u)
        y = out.new_empty(b, t, 2 * u)
        y[:, :, :u] = out[:, :, :u].transpose(0, 1)
        y[:, :, u:] = out.flip(0)[:, :, u:].transpose(0, 1)
        return y


class FastDeepATT(nn.Module):
    """Inference-only rewrite of a :class:`DeepATTKeras` (module docstring); x (B, 4, L) → (B,) expression.

    Always in eval semantics (no dropout); gradients are not supported.
    """

    #: sequences per pass through the recurrence (its 27 steps are small matrix products: larger is faster)
    CHUNK = 256
    #: sequences per pass through the convolution (its output and the pooling stay in the caches)
    CONV_CHUNK = 128
    #: sequences per pass through the attention (its (27, B, 16) planes stay in the caches)
    ATTENTION_CHUNK = 128

    def __init__(self, model: DeepATTKeras):
        super().__init__()
        src = copy.deepcopy(model).eval().float()
        cfg = self.config = src.config
        self.encoding = src.encoding
        self.width, self.pool = cfg.width, cfg.pool
        w = src.conv.weight.detach()  # (F, C, K): the unfolded window is laid out (C, K) too
        self.conv_w, self.conv_b = frozen(w.reshape(w.shape[0], -1)), frozen(src.conv.bias)
        self.block = next(r for r in (3, 2, 1) if cfg.width % r == 0)
        self.fill = float(cfg.unknown_fill)
        self.table = frozen(kmer_table(w, src.conv.bias, self.block, self.fill)) if w.shape[1] == 4 else None
        # a k-mer's code (5 symbols, first most significant) and each group's first row in the table
        self.register_buffer("kmer_place", 5 ** torch.arange(self.block - 1, -1, -1), persistent=False)
        self.register_buffer("group_offsets", torch.arange(cfg.width // self.block) * 5**self.block, persistent=False)
        self.lstm = _BiLSTM(src.lstm)
        attn = src.attn
        self.heads, self.softmax_eps = attn.heads, attn.softmax_eps
        scale = math.log2(math.e) / math.sqrt(attn.q.in_features // attn.heads)  # the softmax takes exp2
        qkv_w = torch.cat([attn.q.weight * scale, attn.k.weight, attn.v.weight]) * 2.0  # reads h / 2
        qkv_b = torch.cat([attn.q.bias * scale, attn.k.bias, attn.v.bias])
        o_w = attn.o.weight
        e = attn.q.out_features
        if e == 2 * self.heads:  # 2-wide heads: see attention
            # features (head, component) → (component, head), then a plane of ones (zero weights, bias 1)
            h = self.heads
            qkv_w = torch.cat([qkv_w.view(3, h, 2, -1).transpose(1, 2).reshape(3 * e, -1), qkv_w.new_zeros(h, e)])
            qkv_b = torch.cat([qkv_b.view(3, h, 2).transpose(1, 2).reshape(3 * e), qkv_b.new_ones(h)])
            o_w = o_w.view(-1, h, 2).transpose(1, 2).reshape(-1, e)
        self.qkv_w, self.qkv_b = frozen(qkv_w), frozen(qkv_b)
        self.o_w, self.o_b = frozen(o_w), frozen(attn.o.bias)
        dense = [m for m in src.head if isinstance(m, nn.Linear)]
        last = dense[-1]
        self.dense_w = nn.ParameterList(
            [*(frozen(m.weight) for m in dense[:-1]), frozen(last.weight * cfg.output_scale)])
        self.dense_b = nn.ParameterList(
            [*(frozen(m.bias) for m in dense[:-1]), frozen(last.bias * cfg.output_scale + cfg.output_shift)])
        self.requires_grad_(False)
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Convolution, ReLU and pooling: x (B, C, L) → (B, T, F) channels-last, T = (L − K + 1) // pool.

        Sequences whose columns are all one-hot or N read the convolution from the k-mer table; the others
        take the matrix product over unfolded windows.
        """
        steps = (x.shape[-1] - self.width + 1) // self.pool
        if self.table is None:
            return self._matmul(x, steps).relu_()
        codes = symbol_codes(x, self.fill)
        coded = (codes >= 0).all(dim=1)
        if bool(coded.all()):
            return self._lookup(codes, steps).relu_()
        if not bool(coded.any()):
            return self._matmul(x, steps).relu_()
        z = x.new_empty(x.shape[0], steps, self.conv_w.shape[0])
        z[coded] = self._lookup(codes[coded], steps)
        z[~coded] = self._matmul(x[~coded], steps)
        return z.relu_()

    def _matmul(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """The max-pooled convolution at the first ``steps`` pooled positions: x (B, C, L) → (B, steps, F)."""
        positions = steps * self.pool
        windows = x.unfold(2, self.width, 1)[:, :, :positions]  # (B, C, positions, K)
        windows = windows.permute(0, 2, 1, 3).reshape(x.shape[0], positions, -1)
        z = linear(windows, self.conv_w, self.conv_b)
        return z.view(x.shape[0], steps, self.pool, -1).amax(dim=2)

    def _lookup(self, codes: torch.Tensor, steps: int) -> torch.Tensor:
        """The max-pooled convolution of coded ``codes`` (B, L) at the first ``steps`` pooled positions.

        One look-up per pooling offset, each folded into a running maximum: the full-resolution output
        (3× the pooled one, 5 MB for 64 sequences) is never held, which keeps the table in the caches
        (≈4 % faster at batch 64, 5–10 % at 256 and 1,024).

        Returns
        -------
        (B, steps, F) tensor
        """
        r, pool = self.block, self.pool
        groups = self.width // r
        kmers = codes.unfold(1, r, 1) @ self.kmer_place  # (B, L − r + 1)
        windows = kmers.unfold(1, (groups - 1) * r + 1, 1)[:, : steps * pool, ::r]  # (B, positions, groups)
        # table rows, pooling offset outermost, so that each offset's rows are one contiguous block
        index = codes.new_empty(pool, len(codes), steps, groups)
        torch.add(windows.view(len(codes), steps, pool, groups).permute(2, 0, 1, 3), self.group_offsets, out=index)
        out = F.embedding_bag(index[0].view(-1, groups), self.table, mode="sum")
        for k in range(1, pool):
            torch.maximum(out, F.embedding_bag(index[k].view(-1, groups), self.table, mode="sum"), out=out)
        return out.view(len(codes), steps, -1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """keras-multi-head self-attention: x (B, T, E) → (B, T, E).

        With 2-wide heads a batched matmul per head is mostly overhead. Instead, one key j at a time, the
        scores of every query (query i, B, H) are products of the two planes of q with key j's, and
        exp2 of them is added, times key j's planes of v and a plane of ones, into the weighted sums and
        the softmax's denominator (3, query i, B, H): every operand is contiguous over (B, H) and, at 64
        sequences, about 100 kB, so it stays in the caches; the (key, query) matrix of scores (3 MB at 64
        sequences) is never held, which also spares its fresh pages (allocating them cost up to 3 ms per
        call on a busy virtual machine). The scores are shifted only when they could overflow ``exp2``
        (the shift cancels in the ratio).
        """
        b, t, e = x.shape
        h = self.heads
        if e != 2 * h:
            return self._attention_bmm(x)
        # the weights' rows are (part, component, head): the permutation moves contiguous H-wide runs
        qkv = linear(x, self.qkv_w, self.qkv_b, relu=True).view(b, t, 7, h).permute(2, 1, 0, 3).contiguous()
        q0, q1, k0, k1 = qkv[:4]  # each (T, B, H)
        v = qkv[4:]  # (3, T, B, H): v's two planes and the ones
        # q, k ≥ 0 (ReLU), so 0 ≤ s[j, i] ≤ q_i · max_j k_j: far below exp2's overflow (128) the softmax
        # needs no shift
        bound = torch.addcmul(q0 * k0.amax(dim=0), q1, k1.amax(dim=0)).max()
        shift = self._score_max(q0, q1, k0, k1) if bound.item() > 60.0 else None
        y = scripted(_attend)(q0, q1, k0, k1, v, shift)
        y = y[:2].div_(y[2].add_(self.softmax_eps))
        return linear(y.permute(2, 1, 0, 3).reshape(b, t, e), self.o_w, self.o_b, relu=True)  # (component, head)

    @staticmethod
    def _score_max(q0, q1, k0, k1) -> torch.Tensor:
        """The largest score of each query over the keys: (T, B, H) planes of q and k → (T, B, H)."""
        top = torch.mul(q0, k0[0]).addcmul_(q1, k1[0])
        for j in range(1, len(k0)):
            torch.maximum(top, torch.mul(q0, k0[j]).addcmul_(q1, k1[j]), out=top)
        return top

    def _attention_bmm(self, x: torch.Tensor) -> torch.Tensor:
        b, t, e = x.shape
        h = self.heads
        qkv = linear(x, self.qkv_w, self.qkv_b, relu=True).view(b, t, 3, h, e // h).permute(2, 0, 3, 1, 4)
        q, k, v = (part.reshape(b * h, t, e // h) for part in qkv)
        scores = torch.bmm(q, k.transpose(1, 2))
        exp = torch.exp2(scores - scores.amax(dim=-1, keepdim=True))
        weights = exp / (exp.sum(dim=-1, keepdim=True) + self.softmax_eps)
        y = torch.bmm(weights, v).view(b, h, t, e // h).transpose(1, 2).reshape(b, t, e)
        return linear(y, self.o_w, self.o_b, relu=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, 4, L) one-hot → (B,) expression."""
        return _chunked(lambda part: self._tail(self._project(part)), x.float(), self.CHUNK)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """The LSTM's projected inputs (B, T, 8H) of x (B, C, L), :attr:`CONV_CHUNK` sequences at a time."""
        return _chunked(lambda part: self.lstm.project(self.features(part)), x, self.CONV_CHUNK)

    def _tail(self, proj: torch.Tensor) -> torch.Tensor:
        """From the LSTM's projected inputs (B, T, 8H) to the output (B,)."""
        states = self.lstm.recur(self.lstm.arrange(proj))
        h = _chunked(self.attention, states, self.ATTENTION_CHUNK).flatten(1)
        for w, bias in zip(self.dense_w[:-1], self.dense_b[:-1]):
            h = F.linear(h, w, bias).relu_()
        return F.linear(h, self.dense_w[-1], self.dense_b[-1]).squeeze(-1)

    def mutants(self, reference: torch.Tensor, row: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Predictions of variants of reference sequences, reusing each reference's convolutional prefix.

        A variant that differs from its reference in one column ``p`` changes the convolution only at
        the K offsets whose window covers ``p``, hence at most ceil(K / pool) + 1 pooled positions (11 of
        27 for the release). Those are recomputed from the variant's own columns (same kernels as
        ``forward``, so the same float results), the other pooled positions' LSTM inputs are the
        reference's; the LSTM, attention and dense layers then run in full. Variants differing in
        several columns, or not at all, run through ``forward``.

        Parameters
        ----------
        reference : (N, C, L) tensor
            One-hot reference sequences in the model's layout.
        row : (M,) int64 tensor
            Which reference each variant comes from.
        x : (M, C, L) tensor
            The variants, one-hot in the model's layout.

        Returns
        -------
        (M,) tensor
            Exactly what ``forward(x)`` returns, up to float32 rounding.
        """
        reference, x = reference.float(), x.float()
        proj_ref = self._project(reference)
        out = x.new_empty(len(x))
        for start in range(0, len(x), self.CHUNK):
            part, rows = x[start : start + self.CHUNK], row[start : start + self.CHUNK]
            out[start : start + len(part)] = self._mutant_chunk(part, proj_ref, rows, reference)
        return out

    def _mutant_chunk(self, x: torch.Tensor, proj_ref: torch.Tensor, row: torch.Tensor,
                      reference: torch.Tensor) -> torch.Tensor:
        changed = (x != reference[row]).any(dim=1)  # (M, L)
        single = changed.sum(dim=1) <= 1  # an unchanged variant (a column the model drops) is one too
        steps, k, pool = proj_ref.shape[1], self.width, self.pool
        span = min(steps, -(-k // pool) + 1)  # pooled positions a one-column change can reach
        if not bool(single.all()) or span == steps:
            return self._tail(self._project(x))
        p = changed.float().argmax(dim=1)  # (M,)
        first = ((p - k + 1).clamp(min=0) // pool).clamp(max=steps - span)  # first pooled position recomputed
        columns = first[:, None] * pool + torch.arange(span * pool + k - 1, device=x.device)  # (M, columns)
        window = x.gather(2, columns[:, None, :].expand(-1, x.shape[1], -1))
        local = self._project(window)  # (M, span, 8H)
        proj = proj_ref[row]
        at = first[:, None] + torch.arange(span, device=x.device)
        proj.scatter_(1, at[:, :, None].expand(-1, -1, proj.shape[-1]), local)
        return self._tail(proj)
