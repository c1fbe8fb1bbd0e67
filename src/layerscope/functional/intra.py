"""Intra-layer analysis: the spectrum of the product of two consecutive weight matrices.

WeightWatcher 0.7.7 (``analyze(intra=True)``, ``WWIntraLayerIterator``) looks at the
correlations *between* consecutive layers: for layers W₀ then W₁, aligned so that the
product exists (W₀ is a×k, W₁ is k×b, k the shared dimension), it analyses

    X = W₀ · W₁ / (‖W₀‖_F · ‖W₁‖_F)

and, unlike for a single layer, takes the *singular values* of X as its ESD, not
their squares ("for intra-layer fits, we need the singular values of X, not the
eigenvalues", ``WWIntraLayerIterator``): X is already of degree two in the weights,
as WᵀW is for one layer. The power-law fit and every other metric then run on those
values. X has rank at most min(a, k, b); WeightWatcher keeps that many singular values
(its ``n_comp`` is the smaller side of W₁), so structural zeros never enter the ESD.
Source of the idea: Martin & Mahoney, JMLR 22(165) 2021 (correlations across layers);
the convention is WeightWatcher's.

WeightWatcher's default ``sparsify=True`` inserts a random 0/1 matrix S (k×k, every
entry Bernoulli(½), meant to "simulate ReLUs between layers") and uses
X = W₀·S·W₁ / (‖W₀‖_F‖W₁‖_F + √‖S‖_F). A dense S is not a ReLU (that would be a
diagonal 0/1 mask) and its mean ½·11ᵀ adds a rank-one term, so layerscope's scan uses
the direct product (WeightWatcher ``sparsify=False``); :func:`product` accepts a mask
to reproduce the sparsified variant exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def shared_dim(shape0: tuple[int, int], shape1: tuple[int, int]) -> int | None:
    """The dimension WeightWatcher multiplies over (``align_mats``), or ``None``.

    Among the four sides, the sizes that occur more than once are candidates; the
    largest is taken. Two matrices with no common size have no product.
    """
    sides = [*shape0, *shape1]
    repeated = [s for s in set(sides) if sides.count(s) > 1]
    return max(repeated) if repeated else None


def align(W0: NDArray[Any], W1: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]] | None:
    """(W₀, W₁) transposed as needed so that W₀ @ W₁ multiplies over :func:`shared_dim`.

    ``None`` when the pair has no product (WeightWatcher skips such a pair). Both are
    transposed as in WeightWatcher 0.7.7's ``align_mats``: W₀ if its columns are not the
    shared size, W₁ if its rows are not.
    """
    k = shared_dim(W0.shape, W1.shape)
    if k is None:
        return None
    if W0.shape[1] != k:
        W0 = W0.T
    if W1.shape[0] != k:
        W1 = W1.T
    if W0.shape[1] != W1.shape[0]:
        return None
    return W0, W1


def product(
    W0: NDArray[Any], W1: NDArray[Any], mask: NDArray[Any] | None = None
) -> FloatArray | None:
    """X = W₀·W₁/(‖W₀‖_F‖W₁‖_F), or W₀·S·W₁/(‖W₀‖_F‖W₁‖_F + √‖S‖_F) with ``mask`` S.

    The pair is aligned first (:func:`align`); ``None`` if it has no product. Computed
    in float64.
    """
    pair = align(np.asarray(W0, dtype=np.float64), np.asarray(W1, dtype=np.float64))
    if pair is None:
        return None
    A, B = pair
    scale = float(np.linalg.norm(A) * np.linalg.norm(B))
    if mask is None:
        return np.asarray((A @ B) / scale)
    S = np.asarray(mask, dtype=np.float64)
    return np.asarray((A @ S @ B) / (scale + np.sqrt(np.linalg.norm(S))))


def num_components(W0_shape: tuple[int, int], W1_shape: tuple[int, int]) -> int:
    """Largest possible rank of the aligned product: min(a, k, b)."""
    return min(*W0_shape, *W1_shape)


def singular_values(gram_evals: NDArray[Any], rank: int) -> FloatArray:
    """The intra-layer ESD: the ``rank`` largest singular values of X, ascending.

    ``gram_evals`` are the eigenvalues of XᵀX (or XXᵀ); σ = √λ of the largest ``rank``
    (:func:`num_components`), the convention described in the module docstring.
    """
    lam = np.sort(np.clip(np.asarray(gram_evals, dtype=np.float64), 0.0, None))
    return np.asarray(np.sqrt(lam[-rank:]))


__all__ = ["align", "num_components", "product", "shared_dim", "singular_values"]
