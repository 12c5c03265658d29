"""Toy models with analytic answers for the design tests (imported by tests/test_design_*.py)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK
from crmnet.data.encoding import CRMNET


class LinearToy(nn.Module):
    """prediction = Σ_positions weight[channel, position] · one-hot: a mutant's Δ is a weight difference."""

    def __init__(self, seed: int = 0, encoding=CRMNET):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.encoding = encoding
        self.weight = nn.Parameter(torch.randn(encoding.n_channels, encoding.length, generator=g))
        self.calls = 0

    def forward(self, x):
        self.calls += len(x)
        return (x * self.weight).sum(dim=(1, 2))

    def base_weight(self) -> np.ndarray:
        """(5, L) weights of A, C, G, T, N (codes 0-4) at each model position."""
        w = self.weight.detach().numpy()
        return np.stack([w[self.encoding.channels.index(b)] for b in "ACGTN"])


def constructs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [LEFT_FLANK + "".join(rng.choice(list("ACGT"), 80)) + RIGHT_FLANK for _ in range(n)]
