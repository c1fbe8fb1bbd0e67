"""K independent MLPs trained at once as stacked weight tensors.

AdamW is elementwise, so K models (seeds × weight decays) stacked as ``[K, out, in]``
tensors and trained with one optimizer follow exactly the maths of K separate runs:
the loss is the sum of the K per-model mean losses (each model's gradient is its own),
and the decoupled weight decay ``w ← w (1 − lr·wd_k)`` is applied per model before the
Adam step, as ``torch.optim.AdamW`` does. One ``torch.bmm`` per layer replaces K small
matrix products (less Python overhead per model).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

INIT_SCALE = 8.0  # all weights and biases ×8 after the default init (Prakash & Martin 2025)


def reference_mlp(sizes: Sequence[int], seed: int, scale: float = INIT_SCALE) -> nn.Sequential:
    """The recipe's MLP as a plain ``nn.Sequential`` (float64, ReLU, default init × scale)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out, dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


def linears(model: nn.Sequential) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of ``model`` in order."""
    return [m for m in model if isinstance(m, nn.Linear)]


class StackedMLP(nn.Module):
    """K ReLU MLPs of the same shape; parameters ``weight{i}`` ``[K, out, in]``, ``bias{i}``."""

    def __init__(self, models: Sequence[nn.Sequential]) -> None:
        super().__init__()
        self.sizes = [lin.in_features for lin in linears(models[0])]
        self.sizes.append(linears(models[0])[-1].out_features)
        self.num_layers = len(self.sizes) - 1
        for i in range(self.num_layers):
            w = torch.stack([linears(m)[i].weight.detach() for m in models]).clone()
            b = torch.stack([linears(m)[i].bias.detach() for m in models]).clone()
            self.register_parameter(f"weight{i}", nn.Parameter(w))
            self.register_parameter(f"bias{i}", nn.Parameter(b))

    @property
    def K(self) -> int:
        return int(self.weight0.shape[0])

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"weight{i}"), getattr(self, f"bias{i}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[K, B, in]`` -> outputs ``[K, B, out]``."""
        h = x
        for i in range(self.num_layers):
            w, b = self.layer(i)
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            if i < self.num_layers - 1:
                h = torch.relu(h)
        return h

    @torch.no_grad()
    def decay_(self, lr: float, weight_decay: torch.Tensor) -> None:
        """Decoupled weight decay per model: ``p ← p (1 − lr · wd_k)`` (AdamW's first step)."""
        for p in self.parameters():
            p.mul_((1.0 - lr * weight_decay).view(-1, *([1] * (p.dim() - 1))))

    def view(self, k: int) -> nn.Sequential:
        """Model ``k`` as an ``nn.Sequential`` whose parameters share storage with the stack.

        It follows training without copying (for scans and probes); do not train it.
        """
        layers: list[nn.Module] = []
        for i in range(self.num_layers):
            w, b = self.layer(i)
            lin = nn.Linear(1, 1, dtype=w.dtype)
            lin.weight = nn.Parameter(w.detach()[k], requires_grad=False)
            lin.bias = nn.Parameter(b.detach()[k], requires_grad=False)
            lin.in_features, lin.out_features = int(w.shape[2]), int(w.shape[1])
            layers.append(lin)
            if i < self.num_layers - 1:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)
