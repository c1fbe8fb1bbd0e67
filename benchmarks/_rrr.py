"""Reduced-rank regression fixtures for the LLC tests: a trained w* and its data."""

from __future__ import annotations

import torch
from torch import nn


def gaussian_nll(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Unit-variance Gaussian negative log-likelihood per sample, up to a constant."""
    x, y = batch
    return 0.5 * ((model(x) - y) ** 2).sum(1).mean()


def rrr_problem(
    M: int, H: int, N: int, r: int, n: int = 4000, seed: int = 0, train_steps: int = 600
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A two-layer linear net M → H → N at the empirical minimum near a rank-r truth.

    x ~ N(0, I_M), y = B₀A₀x + N(0, I_N) with B₀A₀ of rank r; w* is Adam-trained on the
    full data starting from the true parameter (so it sits on the minimum set nearby).
    """
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(M, H, bias=False), nn.Linear(H, N, bias=False))
    A, B = torch.randn(H, M, generator=g), torch.randn(N, H, generator=g)
    A[r:], B[:, r:] = 0.0, 0.0
    with torch.no_grad():
        model[0].weight.copy_(A)
        model[1].weight.copy_(B)
    x = torch.randn(n, M, generator=g)
    y = x @ (B @ A).T + torch.randn(n, N, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(train_steps):
        opt.zero_grad()
        gaussian_nll(model, (x, y)).backward()
        opt.step()
    return model, x, y
