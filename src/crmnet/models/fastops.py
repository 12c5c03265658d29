"""Small kernels shared by the exact CPU inference rewrites.

Dense layers through oneDNN and frozen weight copies, for :mod:`~crmnet.models.fastpath`,
:mod:`~crmnet.models.fast_vaishnav` and :mod:`~crmnet.models.fast_transformer`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ONEDNN_LINEAR = hasattr(torch.ops.mkldnn, "_linear_pointwise") and torch.backends.mkldnn.is_available()


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


def frozen(t: torch.Tensor | None) -> nn.Parameter | None:
    """A detached copy (a frozen parameter, so ``.to(dtype)`` / ``.to(device)`` move it with the module)."""
    return None if t is None else nn.Parameter(t.detach().clone(), requires_grad=False)
