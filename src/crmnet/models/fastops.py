"""Small kernels shared by the exact CPU inference rewrites.

Dense layers and convolutions (activations fused) through oneDNN, frozen weight copies and TorchScript
for small-op loops, for :mod:`~crmnet.models.fastpath`, :mod:`~crmnet.models.fast_narrow`,
:mod:`~crmnet.models.fast_vaishnav`, :mod:`~crmnet.models.fast_transformer` and
:mod:`~crmnet.models.fast_legnet`; CRMnet's transformer block with its attention folded (the algebra
is in :mod:`~crmnet.models.fastpath`'s docstring), for the two CRMnet rewrites.
"""

from __future__ import annotations

import functools
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.models.blocks import MultiHeadSelfAttention, SameConvTranspose1d
from crmnet.models.crmnet import TransformerBlock

ONEDNN_LINEAR = hasattr(torch.ops.mkldnn, "_linear_pointwise") and torch.backends.mkldnn.is_available()
ONEDNN_CONV = hasattr(torch.ops.mkldnn, "_convolution_pointwise") and torch.backends.mkldnn.is_available()
#: the activations oneDNN can fuse into a convolution (its post-op names), and the same applied after F.conv2d
POST_OPS = {"none": lambda y: y, "relu": torch.relu_, "swish": lambda y: F.silu(y, inplace=True)}


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, relu: bool = False) -> torch.Tensor:
    """``F.linear`` (+ ReLU fused) through oneDNN on the CPU.

    Parameters
    ----------
    x : (..., in) tensor
    weight : (out, in) tensor
    bias : (out,) tensor or None
    relu : bool
        Apply ReLU to the result (inside the oneDNN kernel where it runs).

    Returns
    -------
    (..., out) tensor
    """
    # float32 only: oneDNN has no bfloat16 inner product on CPUs without AVX-512 (it raises), F.linear does
    if (ONEDNN_LINEAR and x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and not torch.is_grad_enabled()):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu" if relu else "none", [], "")
    y = F.linear(x, weight, bias)
    return F.relu(y) if relu else y


def conv_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int, stride: int = 1,
                   groups: int = 1, post: str = "none") -> torch.Tensor:
    """A convolution along the last axis of (B, C, 1, L) data, an activation fused into it on the CPU.

    Through oneDNN (``torch.ops.mkldnn._convolution_pointwise``, the activation as its post-op: no second
    pass over the output) for float32 on the CPU; elsewhere ``F.conv2d`` and the activation after it.

    Parameters
    ----------
    x : (B, C_in, 1, L) tensor
        Channels-last memory is what the rewrites pass (oneDNN's fast layout at their widths).
    weight : (C_out, C_in / groups, 1, k) tensor
    bias : (C_out,) tensor
    padding, stride, groups : int
        Zeros on each side of L, the step along L, channel groups.
    post : {"none", "relu", "swish"}
        The activation.

    Returns
    -------
    (B, C_out, 1, L') tensor
    """
    if ONEDNN_CONV and x.device.type == "cpu" and x.dtype == torch.float32:
        return torch.ops.mkldnn._convolution_pointwise(
            x, weight, bias, [0, padding], [1, stride], [1, 1], groups, post, [], "")
    return POST_OPS[post](F.conv2d(x, weight, bias, stride=(1, stride), padding=(0, padding), groups=groups))


@functools.cache
def scripted(fn):
    """``fn`` compiled by TorchScript, or ``fn`` itself where TorchScript cannot compile it.

    For loops of many small tensor operations (a recurrence's steps): TorchScript runs them without
    Python's cost per operation (argument parsing, a Python object per result), which at 64 sequences is
    most of each step. TorchScript is deprecated (a warning, silenced here) but present in every torch
    crmnet supports; the function computes the same either way.

    Parameters
    ----------
    fn : callable
        A function TorchScript can compile (typed arguments).

    Returns
    -------
    callable
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(fn)
    except (AttributeError, RuntimeError):  # TorchScript gone or unable to compile: the eager function
        return fn


def frozen(t: torch.Tensor | None) -> nn.Parameter | None:
    """A detached copy (a frozen parameter, so ``.to(dtype)`` / ``.to(device)`` move it with the module)."""
    return None if t is None else nn.Parameter(t.detach().clone(), requires_grad=False)


def polyphase_kernel(up: SameConvTranspose1d) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """A Keras-'same' transposed convolution of stride s as one convolution with s · C_out outputs.

    Output ``y[s·m + r] = Σ_t x[m + (r + p − t) / s] · W[:, :, t]`` over the taps ``t ≡ r + p (mod s)``: phase
    r is a correlation of x with its own taps at offsets ``d = (r + p − t) / s``; all phases share one
    offset window (missing taps are zero).

    Parameters
    ----------
    up : SameConvTranspose1d
        Weight (C_in, C_out, k).

    Returns
    -------
    weight : (s · C_out, C_in, taps) tensor
        Phase-major rows: row ``r · C_out + c`` makes channel c of output position ``s·m + r``.
    bias : (s · C_out,) tensor
    padding : (before, after)
        Zeros around x (B, C_in, L) before the correlation, which then yields L positions.
    """
    w = up.weight.detach()
    k, s, p = w.shape[-1], up.stride[0], up.padding[0]
    offsets = {r: {(r + p - t) // s: t for t in range(k) if (r + p - t) % s == 0} for r in range(s)}
    lo = min(min(o) for o in offsets.values())
    hi = max(max(o) for o in offsets.values())
    kernel = w.new_zeros(s, w.shape[1], w.shape[0], hi - lo + 1)  # (phase, C_out, C_in, taps)
    for r, taps in offsets.items():
        for d, t in taps.items():
            kernel[r, :, :, d - lo] = w[:, :, t].T
    return kernel.reshape(s * w.shape[1], w.shape[0], hi - lo + 1), up.bias.detach().repeat(s), (-lo, hi)


class FoldedAttention(nn.Module):
    """:class:`MultiHeadSelfAttention` with q·k and v·out folded (see :mod:`~crmnet.models.fastpath`).

    x (B, T, E) → (B, T, E).
    """

    def __init__(self, attn: MultiHeadSelfAttention):
        super().__init__()
        h, d, e = attn.heads, attn.head_dim, attn.q.in_features
        f64 = {"dtype": torch.float64}
        wq, wk, wv = (lin.weight.detach().to(**f64).view(h, d, e) for lin in (attn.q, attn.k, attn.v))
        wo = attn.out.weight.detach().to(**f64).view(e, h, d).permute(1, 2, 0)  # (H, d, E)
        bq = attn.q.bias.detach().to(**f64).view(h, 1, d)
        scale = 1.0 / math.sqrt(d)
        # Linear weights (out, in): the folded query of head h is x ↦ x (Wq_hᵀ Wk_h) / √d + Wk_hᵀ bq_h / √d,
        # its folded value x ↦ x (Wo_h Wv_h)ᵀ. One matmul makes both, interleaved per head as
        # [q'_0, v'_0, q'_1, v'_1, ...], so that each is a (B, T·H, E) matrix with a uniform row stride.
        q_weight = wk.transpose(1, 2) @ wq * scale  # (H, E, E)
        v_weight = wo.transpose(1, 2) @ wv
        self.qv_weight = frozen(torch.stack([q_weight, v_weight], 1).reshape(2 * h * e, e).float())
        q_bias = (bq @ wk * scale).view(h, e)
        self.qv_bias = frozen(torch.stack([q_bias, torch.zeros_like(q_bias)], 1).reshape(2 * h * e).float())
        out_bias = attn.out.bias.detach().to(**f64) + attn.out.weight.detach().to(
            **f64
        ) @ attn.v.bias.detach().to(**f64)
        self.out_bias = frozen(out_bias.float())
        self.heads = h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, T, E) → (B, T, E)."""
        b, t, e = x.shape
        h = self.heads
        qv = linear(x, self.qv_weight, self.qv_bias).view(b, t * h, 2 * e)  # rows (token, head)
        queries, values = qv[..., :e], qv[..., e:]
        # Scores transposed, (B, key j, (query i, head h)): the softmax over the keys then runs along a
        # non-innermost axis of length T, which PyTorch vectorises over the T·H inner elements.
        probs = torch.softmax(torch.bmm(x, queries.transpose(1, 2)), dim=1)
        probs = probs.view(b, t, t, h)
        if h == 2 and probs.dtype == torch.float32:
            # a copy that moves 4-byte elements in pairs is ≈6× slower than the same bytes as 8-byte ones
            probs = probs.view(torch.int64).squeeze(-1).transpose(1, 2).contiguous().view(torch.float32)
        else:
            probs = probs.transpose(1, 2).reshape(b, t, t * h)  # (B, i, (j, h))
        return torch.baddbmm(self.out_bias, probs, values)


def foldable(attn: MultiHeadSelfAttention) -> bool:
    """Folding is exact only without a q/k/v activation and cheaper only when the head size is ≥ width / 2."""
    return isinstance(attn.qkv_act, nn.Identity) and 2 * attn.head_dim >= attn.q.in_features


class TransformerRewrite(nn.Module):
    """A :class:`TransformerBlock` with folded attention (where it pays) and oneDNN dense layers; (B, T, E) → (B, T, E)."""

    def __init__(self, block: TransformerBlock):
        super().__init__()
        self.attn = FoldedAttention(block.attn) if foldable(block.attn) else block.attn
        self.ln1, self.ln2 = block.ln1, block.ln2
        self.ff1_w, self.ff1_b = frozen(block.ff1.weight), frozen(block.ff1.bias)
        self.ff2_w, self.ff2_b = frozen(block.ff2.weight), frozen(block.ff2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, T, E) → (B, T, E)."""
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + linear(linear(x, self.ff1_w, self.ff1_b, relu=True), self.ff2_w, self.ff2_b))
