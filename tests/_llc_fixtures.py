"""Importable pieces for the ``layerscope llc`` / ``track --llc-data`` CLI tests.

The CLI tests put this directory on ``sys.path`` and name these as ``_llc_fixtures:NAME``.
The data are realizable: y = teacher(x) + 0.1·noise, and :func:`trained` is the teacher.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

NOT_A_MODEL = 3


def build_model(seed: int = 0) -> nn.Module:
    """The architecture: 4 -> 8 -> 2 tanh MLP (initialised with ``seed``)."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model


def trained() -> nn.Module:
    """The teacher that generated the data (a minimum of the population loss)."""
    return build_model(seed=1)


def tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """64 samples (x, y) with y = teacher(x) + 0.1·noise."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(64, 4, generator=gen)
    with torch.no_grad():
        y = trained()(x) + 0.1 * torch.randn(64, 2, generator=gen)
    return x, y


def make_loader() -> DataLoader[Any]:
    """The data as a shuffling DataLoader, batch 16."""
    return DataLoader(TensorDataset(*tensors()), batch_size=16, shuffle=True)


def wrong_targets() -> tuple[torch.Tensor, torch.Tensor]:
    """Targets of shape (n,) for a model with two outputs."""
    x, y = tensors()
    return x, y[:, 0]


def half_sq_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """A user loss: the unit-variance Gaussian NLL written out."""
    x, y = batch
    return 0.5 * ((model(x) - y) ** 2).sum(1).mean()


def failing_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    raise RuntimeError("this loss always fails")


def no_data() -> str:
    return "not data"
