"""Identical or near-identical matrices within one model (layer replication, merge artefacts).

Every matrix gets a cheap sketch: its Frobenius norm and a fixed random subset of its
entries (the same positions for all matrices of one shape, seeded by the shape). Two
matrices are candidates when the distance of their sketches, scaled to the full size,
is below ten times the tolerance; candidates are then confirmed on the full matrices:

    d(W₁, W₂) = ‖W₁ − W₂‖_F / max(‖W₁‖_F, ‖W₂‖_F) ≤ tol

so the work is one pass over the weights plus an exact check of the few candidates.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

SKETCH_ENTRIES = 4096
CANDIDATE_FACTOR = 10.0


@dataclass(frozen=True)
class Sketch:
    """A matrix's fingerprint plus a way to reload it for the exact check."""

    name: str
    shape: tuple[int, ...]
    norm: float
    sample: NDArray[np.float64]
    load: Callable[[], torch.Tensor]


def _positions(shape: tuple[int, ...]) -> NDArray[np.int64]:
    size = int(np.prod(shape))
    rng = np.random.default_rng(zlib.crc32(repr(shape).encode()))
    if size <= SKETCH_ENTRIES:
        return np.arange(size, dtype=np.int64)
    return np.sort(rng.choice(size, SKETCH_ENTRIES, replace=False)).astype(np.int64)


def sketch(name: str, matrix: torch.Tensor, load: Callable[[], torch.Tensor]) -> Sketch:
    """Fingerprint of ``matrix`` (any shape); ``load`` returns it again for confirmation."""
    flat = matrix.detach().reshape(-1).to(torch.float64)
    idx = torch.from_numpy(_positions(tuple(matrix.shape)))
    norm = float(torch.linalg.vector_norm(flat))
    return Sketch(name, tuple(matrix.shape), norm, flat[idx].numpy(), load)


def distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖_F / max(‖a‖_F, ‖b‖_F) (0 for two zero matrices)."""
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    scale = max(float(torch.linalg.vector_norm(a64)), float(torch.linalg.vector_norm(b64)))
    return 0.0 if scale == 0.0 else float(torch.linalg.vector_norm(a64 - b64)) / scale


def _estimate(a: Sketch, b: Sketch) -> float:
    scale = max(a.norm, b.norm)
    if scale == 0.0:
        return 0.0
    size = float(np.prod(a.shape))
    return float(np.linalg.norm(a.sample - b.sample) * np.sqrt(size / a.sample.size)) / scale


def find_duplicates(sketches: Iterable[Sketch], tol: float) -> list[tuple[str, str, float]]:
    """Pairs (name_a, name_b, distance) of same-shaped matrices with distance ≤ ``tol``."""
    groups: dict[tuple[int, ...], list[Sketch]] = {}
    for s in sketches:
        groups.setdefault(s.shape, []).append(s)
    pairs = []
    for group in groups.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if abs(a.norm - b.norm) > tol * max(a.norm, b.norm, 1e-300) * CANDIDATE_FACTOR:
                    continue
                if _estimate(a, b) > tol * CANDIDATE_FACTOR:
                    continue
                d = distance(a.load(), b.load())
                if d <= tol:
                    pairs.append((a.name, b.name, d))
    return pairs
