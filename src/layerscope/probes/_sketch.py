"""A fixed random projection of parameter-shaped vectors to a low dimension.

CountSketch (Charikar, Chen & Farach-Colton 2002), the sparse Johnson-Lindenstrauss
embedding with one non-zero per column (Kane & Nelson 2014, arXiv 1012.1577): each
coordinate j of a parameter vector goes to one of ``dim`` buckets h(j) with a random
sign s(j), (Sx)_k = Σ_{h(j)=k} s(j)·x_j. It preserves inner products in expectation,
E⟨Sx, Sy⟩ = ⟨x, y⟩, with Var ≤ 2‖x‖²‖y‖²/dim, the same order as a dense Rademacher
projection, at O(#parameters) per vector instead of O(#parameters · dim): on a CPU the
dense projection of one gradient of a 100M-parameter model to 1024 dimensions would
draw 10¹¹ random numbers.

The hash of each parameter is drawn from a generator seeded by (seed, the parameter's
name), so the same name always maps the same way, whatever order the parameters come
in; it is cached (4 bytes per parameter: the sign is folded into a bucket index in
[0, 2·dim), and the two halves are subtracted at the end).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import torch


class CountSketch:
    """S: R^P → R^dim, a seeded CountSketch over named parameter tensors."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        if dim < 1:
            raise ValueError(f"projection dimension must be >= 1, got {dim}")
        self.dim = dim
        self.seed = seed
        self._buckets: dict[str, torch.Tensor] = {}

    def _hash(self, name: str, numel: int, device: torch.device) -> torch.Tensor:
        buckets = self._buckets.get(name)
        if buckets is None or buckets.numel() != numel:
            key = (self.seed * 0x9E3779B1 + zlib.crc32(name.encode())) % 2**63
            gen = torch.Generator().manual_seed(key)
            buckets = torch.randint(0, 2 * self.dim, (numel,), generator=gen, dtype=torch.int64)
            buckets = buckets.to(torch.int32)
            self._buckets[name] = buckets
        return buckets.to(device)

    def project(self, tensors: Iterable[tuple[str, torch.Tensor]]) -> torch.Tensor:
        """S·x for x the concatenation of the named tensors (float64, length ``dim``)."""
        out: torch.Tensor | None = None
        for name, tensor in tensors:
            flat = tensor.detach().reshape(-1).double()
            if out is None:
                out = torch.zeros(2 * self.dim, dtype=torch.float64, device=flat.device)
            out.index_add_(0, self._hash(name, flat.numel(), flat.device), flat)
        if out is None:
            raise ValueError("nothing to project: no tensors")
        return (out[: self.dim] - out[self.dim :]).cpu()
