"""Inputs and the parity check shared by the tests of the exact inference rewrites (imported by
tests/test_fast_vaishnav.py and tests/test_fast_transformer.py)."""

from __future__ import annotations

import torch

from crmnet.data.encoding import onehot

TOL = 1e-5  # in the network's own (standardised) output units


def onehot_inputs(model, n: int, seed: int, n_rate: float = 0.0) -> torch.Tensor:
    """(n, 4, L) one-hot in the model's encoding; a fraction ``n_rate`` of positions are N."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 4, (n, model.encoding.length), generator=g)
    codes[torch.rand(codes.shape, generator=g) < n_rate] = 4
    return onehot(codes, model.encoding)


def assert_same(model, fast, x: torch.Tensor, tol: float = TOL) -> None:
    """``fast(x)`` equals the plain ``model(x)`` (B,) within ``tol`` of the model's output units."""
    with torch.inference_mode():
        want, got = model.eval()(x), fast(x)
    assert got.shape == want.shape == (len(x),)
    assert ((got - want).abs() / abs(model.config.output_scale)).max().item() < tol
