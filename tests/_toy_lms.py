"""Language models whose likelihoods are known in closed form (shared by the probe tests)."""

from __future__ import annotations

import torch
from torch import nn


class Unigram(nn.Module):
    """Every position predicts the same distribution softmax(w)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.w.expand(*ids.shape, -1)
