"""SVD smoothing and sharpening of weight matrices (WeightWatcher 0.7.7 ``SVDSmoothing`` and
``SVDSharpness``).

Write a matrix (or a stack of matrices, e.g. the kernel-position slices of a convolution)
by its singular value decomposition W = Σ_i s_i u_i v_iᵀ with s_1 ≥ s_2 ≥ … ≥ s_M.

* **smoothing** keeps the k largest components, the best rank-k approximation
  (Eckart–Young):  W_k = Σ_{i≤k} s_i u_i v_iᵀ.  With k the size of the heavy-tailed part of
  the spectrum (the power-law tail, the ERG/detX tail or the spikes above the
  Marchenko–Pastur bulk edge) this keeps the correlations learned in training and drops
  the random-like bulk (Martin & Mahoney, "Implicit Self-Regularization in Deep Neural
  Networks", JMLR 22(165), 2021, arXiv 1810.01075, for the tail/bulk split).
* **sharpening** removes the k largest components:  W − W_k = Σ_{i>k} s_i u_i v_iᵀ, with k
  the number of correlation traps (eigenvalues of the element-wise shuffled matrix above
  its MP bulk edge), as WeightWatcher's ``SVDSharpness`` does.

Convolutions: WeightWatcher pools the eigenvalues of the r kernel-position slices of a
conv layer to choose k, then truncates every slice to ⌈k / r⌉ components
(:func:`per_slice_rank`).

Source of the conventions: WeightWatcher 0.7.7 ``WeightWatcher.apply_svd_smoothing``,
``smooth_W_alt`` and ``apply_svd_sharpness``. WeightWatcher computes W_k on the CPU with
scikit-learn's randomized ``TruncatedSVD`` (7 power iterations); this module uses the exact
SVD (LAPACK), so results agree to the accuracy of that randomized solver.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def _svd(W: NDArray[Any]) -> tuple[FloatArray, FloatArray, FloatArray]:
    if W.ndim < 2:
        raise ValueError(f"need a matrix or a stack of matrices, got shape {W.shape}")
    u, s, vh = np.linalg.svd(np.asarray(W, dtype=np.float64), full_matrices=False)
    return u, s, vh


def _check_rank(k: int, W: NDArray[Any]) -> None:
    if k < 0 or k > min(W.shape[-2:]):
        raise ValueError(f"rank k must be in [0, {min(W.shape[-2:])}] for shape {W.shape}, got {k}")


def keep_top(W: NDArray[Any], k: int) -> FloatArray:
    """Best rank-k approximation W_k = Σ_{i≤k} s_i u_i v_iᵀ (SVD smoothing).

    Args:
        W: a matrix, or a stack of matrices in the last two axes (each truncated alone).
        k: number of the largest singular components kept, 0 ≤ k ≤ min(rows, cols).

    Returns:
        W_k in float64, the shape of ``W``.
    """
    _check_rank(k, W)
    u, s, vh = _svd(W)
    return np.asarray((u[..., :, :k] * s[..., None, :k]) @ vh[..., :k, :])


def drop_top(W: NDArray[Any], k: int) -> FloatArray:
    """W − W_k = Σ_{i>k} s_i u_i v_iᵀ: the k largest singular components removed (sharpening).

    Args:
        W: a matrix, or a stack of matrices in the last two axes (each treated alone).
        k: number of the largest singular components removed, 0 ≤ k ≤ min(rows, cols).

    Returns:
        W − W_k in float64, the shape of ``W``.
    """
    _check_rank(k, W)
    u, s, vh = _svd(W)
    return np.asarray((u[..., :, k:] * s[..., None, k:]) @ vh[..., k:, :])


def per_slice_rank(k: int, num_slices: int) -> int:
    """⌈k / r⌉: the rank kept (or removed) in each of the r slices of a conv layer whose
    pooled spectrum has a tail of k eigenvalues (WeightWatcher's ``apply_svd_smoothing``).

    Args:
        k: tail size found on the pooled spectrum of all slices.
        num_slices: r, the number of kernel positions (1 for a dense layer).
    """
    if num_slices < 1:
        raise ValueError(f"num_slices must be >= 1, got {num_slices}")
    return math.ceil(k / num_slices)


def percent_rank(percent: float, M: int, num_slices: int) -> int:
    """⌊percent · M · r⌋: the rank of WeightWatcher's ``method="svd"`` (a fixed fraction of the
    M·r pooled eigenvalues; ``percent=0.8`` by default there).

    Args:
        percent: fraction of the components kept, in (0, 1].
        M: the smaller dimension of each slice.
        num_slices: r, the number of slices pooled into the spectrum.
    """
    if not 0.0 < percent <= 1.0:
        raise ValueError(f"percent must be in (0, 1], got {percent}")
    return int(percent * M * num_slices)


__all__ = ["drop_top", "keep_top", "per_slice_rank", "percent_rank"]
